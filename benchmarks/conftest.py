"""Loads the benchmark session's fixtures and hooks (resnet_lab/suite/session.py) for benchmarks/ only.

Put in this conftest's namespace, not registered as a plugin in the top-level conftest.py, so that they apply to the
modules in this folder and `python -m pytest` (the unit tests, under xdist) runs without them. Every one of them,
derived by `hooks_and_fixtures` (tests/test_layering.py checks against the source that none is missing).
"""

from resnet_lab.suite.session import hooks_and_fixtures

globals().update(hooks_and_fixtures())
