"""The results layer: reading saved runs, compare, the report, plots, short answers, estimate, derived figures.

Nothing here imports torch (tests/test_layering.py checks it), so `resnet-lab report`,
`compare` and `estimate` start at once.
"""
