"""resnet_lab: ResNet-18 on CIFAR-10, where does training time go? The lab as a library and a benchmark suite.

The top level imports nothing heavy: `resnet-lab --help`, `report` and `compare` never load torch.
The model helpers below are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "resnet18": "resnet_lab.model",
    "conv_counts": "resnet_lab.structure",
    "final_linear_input_width": "resnet_lab.structure",
    "trainable_parameters": "resnet_lab.structure",
    "gradient_stats": "resnet_lab.structure",
    "optimizer_state_stats": "resnet_lab.structure",
}
__all__ = list(_LAZY)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'resnet_lab' has no attribute '{name}'")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
