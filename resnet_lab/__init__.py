"""resnet_lab: ResNet-18 on CIFAR-10, where does training time go? The lab as a library and a benchmark suite."""

from .model import resnet18
from .structure import conv_counts, final_linear_input_width, gradient_stats, optimizer_state_stats, trainable_parameters

__all__ = [
    "resnet18",
    "conv_counts",
    "final_linear_input_width",
    "trainable_parameters",
    "gradient_stats",
    "optimizer_state_stats",
]
__version__ = "0.1.0"
