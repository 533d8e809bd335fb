"""Loads the suite's `--lab-*` options (resnet_lab/suite/plugin.py) for every pytest session here.

The benchmarks' own hooks and fixtures are loaded by benchmarks/conftest.py, so they apply to
benchmarks/ only.
"""

pytest_plugins = ["resnet_lab.suite.plugin"]
