"""The `resnet-lab` command line: `main.py` dispatches to the subcommands, `train.py` is `resnet-lab train`.

`resnet-lab = resnet_lab.cli:main` (pyproject.toml) and `python -m resnet_lab` both enter `main`.
"""

from .main import main

__all__ = ["main"]
