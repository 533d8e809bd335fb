"""Loads the benchmark session's fixtures and hooks (resnet_lab/suite/session.py) for benchmarks/ only.

Imported here, not registered in the top-level conftest.py, so that they apply to the modules
in this folder and `python -m pytest` (the unit tests) runs without them.
"""

from resnet_lab.suite.session import *  # noqa: F401,F403
