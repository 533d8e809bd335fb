"""Test images that carry their own coordinates, and the decoder that reads the augmentation back.

Channel 0 holds row + 1, channel 1 holds column + 1 (so 0 only where zero padding shows), channel 2
random bytes unique to the image (`coded_images`) or the image's index (`indexed_images`, for at most
256 images). From one output pixel the crop offset and flip can be read back (`decode`); from a
normalized float batch the pixels first (`unnormalize`).
"""

from __future__ import annotations

import numpy as np
import torch

from resnet_lab.data import CIFAR10_MEAN, CIFAR10_STD


def coded_images(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    images = np.empty((n, 32, 32, 3), dtype=np.uint8)
    images[..., 0] = np.arange(1, 33)[None, :, None]
    images[..., 1] = np.arange(1, 33)[None, None, :]
    images[..., 2] = rng.integers(0, 256, size=(n, 32, 32), dtype=np.uint8)
    return images


def decode(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(shift_y, shift_x, flipped) of each output of coded images.

    Pixel (16, 16) is inside the source for every shift in -4..4. Output row r
    shows source row r + shift_y; unflipped, column c shows source column
    c + shift_x; flipped, column c shows crop column 31 - c.
    """
    x = x.cpu().long()
    flipped = x[:, 1, 16, 17] < x[:, 1, 16, 16]
    shift_y = x[:, 0, 16, 16] - 1 - 16
    shift_x = x[:, 1, 16, 16] - 1 - torch.where(flipped, 15, 16)
    return shift_y, shift_x, flipped


def indexed_images(n: int) -> np.ndarray:
    """coded_images whose channel 2 is the image's index everywhere, so any output names its source."""
    if n > 256:
        raise ValueError("indexed_images holds at most 256 images (the index is one byte)")
    images = coded_images(n)
    images[..., 2] = np.arange(n, dtype=np.uint8)[:, None, None]
    return images


def source_index(x: torch.Tensor) -> torch.Tensor:
    """The index of the source image of each output of indexed_images (pixel (16, 16) is never padding)."""
    return x.cpu().long()[:, 2, 16, 16]


def unnormalize(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels back from a ToTensor + Normalize batch (exact: the float error is far below half a level)."""
    mean = torch.tensor(CIFAR10_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD, dtype=torch.float64).view(1, 3, 1, 1)
    return ((x.double() * std + mean) * 255).round().to(torch.uint8)
