"""The one in-memory form every source ends up in: uint8 HWC images, int64 labels, the class names.

`LabDataset` serves them through the item path torchvision's `CIFAR10` uses (array -> PIL image
-> transform), so timings measure the lab's pipeline whatever the files looked like on disk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import DataError
from .transforms import IMAGE_SHAPE, NUM_CLASSES


def one_line(exc: BaseException) -> str:
    """An exception's text on one line: the CLI prints DataError messages as a single line."""
    return " ".join(str(exc).split()) or type(exc).__name__


def require_int(name: str, value: Any, minimum: int) -> None:
    # bool is an int subclass; `train_size=True` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise DataError(f"{name} must be >= {minimum}, got {value}")


class LabDataset(Dataset):
    """Images in memory, served like torchvision's CIFAR10: uint8 HWC -> PIL image -> transform."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        classes: Sequence[str],
        source: str,
        transform: Callable[[Image.Image], Any] | None = None,
    ) -> None:
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
            raise DataError(f"images must be uint8 of shape (N, 32, 32, 3), got {images.dtype} {images.shape}")
        if labels.shape != (len(images),):
            raise DataError(f"labels must have shape ({len(images)},), got {labels.shape}")
        self.images = np.ascontiguousarray(images)  # no copy when already contiguous
        self.labels = labels.astype(np.int64, copy=False)
        self.classes = tuple(classes)
        self.source = source
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | Image.Image, int]:  # an Image without a transform
        image = Image.fromarray(self.images[index])
        label = int(self.labels[index])
        if self.transform is not None:
            image = self.transform(image)
        return image, label

    def __repr__(self) -> str:
        return f"LabDataset(source={self.source!r}, items={len(self)}, classes={len(self.classes)})"


@dataclass(frozen=True)
class Splits:
    """Both splits of a source as arrays; what a cache file holds."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: tuple[str, ...]
    source: str


def splits_problem(s: Splits) -> str | None:
    for images, labels in ((s.train_images, s.train_labels), (s.test_images, s.test_labels)):
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE or len(images) == 0:
            return f"images {images.dtype} {images.shape}"
        if labels.dtype != np.int64 or labels.shape != (len(images),):
            return f"labels {labels.dtype} {labels.shape}"
        if labels.min() < 0 or labels.max() >= len(s.classes):
            return "label out of range"
    if len(s.classes) != NUM_CLASSES:
        return f"{len(s.classes)} classes"
    return None
