"""The lab's CIFAR ResNet-18.

Follows He et al., "Deep Residual Learning for Image Recognition" (2016), with
the CIFAR adaptation used by the lab (and by kuangliu/pytorch-cifar): a 3x3
stride-1 stem and no max-pool, so the 32x32 input reaches the last group as a
4x4 map that `avg_pool2d(., 4)` reduces to 512 features.

Layout mirrors torchvision's `models/resnet.py`: helpers, block, model, factory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Widths and strides of the four groups (He et al., Table 1, CIFAR variant).
GROUP_WIDTHS = (64, 128, 256, 512)
GROUP_STRIDES = (1, 2, 2, 2)
BLOCKS_PER_GROUP = 2


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (a following BatchNorm makes one redundant)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 projection convolution for shortcuts, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


def norm(planes: int, batch_norm: bool) -> nn.Module:
    # The lab's no-BN variant (C7) drops BatchNorm but keeps the convs bias-free,
    # so it has exactly the BN affine parameters fewer (11,164,362).
    return nn.BatchNorm2d(planes) if batch_norm else nn.Identity()


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus shortcut, then ReLU (He et al., Fig. 2)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, batch_norm: bool = True) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = norm(planes, batch_norm)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm(planes, batch_norm)
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or in_planes != planes:
            # Projection shortcut, option (B) of He et al.
            self.shortcut = nn.Sequential(conv1x1(in_planes, planes, stride), norm(planes, batch_norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet: stem, four groups of BasicBlocks, 4x4 average pool, linear head."""

    def __init__(self, blocks_per_group: tuple[int, ...], num_classes: int = 10, batch_norm: bool = True) -> None:
        super().__init__()
        self.conv1 = conv3x3(3, GROUP_WIDTHS[0])
        self.bn1 = norm(GROUP_WIDTHS[0], batch_norm)
        in_planes = GROUP_WIDTHS[0]
        groups = []
        for width, stride, count in zip(GROUP_WIDTHS, GROUP_STRIDES, blocks_per_group, strict=False):
            blocks = []
            for block_stride in [stride] + [1] * (count - 1):
                blocks.append(BasicBlock(in_planes, width, block_stride, batch_norm))
                in_planes = width
            groups.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = groups
        self.linear = nn.Linear(in_planes * BasicBlock.expansion, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 4)
        return self.linear(torch.flatten(out, 1))


def resnet18(batch_norm: bool = True, num_classes: int = 10) -> ResNet:
    """The lab's ResNet-18: 4 groups x 2 BasicBlocks; `batch_norm=False` is the C7 variant."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return ResNet((BLOCKS_PER_GROUP,) * len(GROUP_WIDTHS), num_classes=num_classes, batch_norm=batch_norm)
