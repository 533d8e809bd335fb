"""`resnet-lab report`: the answer sheet, one module per question (the order is `spec.groups.QUESTIONS`).

`sheet.py` assembles answers.md and is the subcommand; `format.py` and `values.py` are what
every section writes and reads with. No torch here.
"""
