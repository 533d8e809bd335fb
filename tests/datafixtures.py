"""Miniature data sources written into tmp_path, with the arrays a correct reader must return.

Each writer builds its expectation independently of resnet_lab.data: the torchvision root from the
CIFAR pickle format (rows of 1024 R, then G, then B bytes), image folders from the pixels written
(PNG is lossless; JPEG expectations are PIL's decode of the file written).
"""

from __future__ import annotations

import hashlib
import pickle
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class Expected:
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: tuple[str, ...]


def random_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------- torchvision root


def write_cifar_root(root: Path, per_batch: int = 10, test_count: int = 20, seed: int = 0) -> Expected:
    """A torchvision-format CIFAR-10 root: five data batches, a test batch and batches.meta."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    images = {"train": random_images(5 * per_batch, seed), "test": random_images(test_count, seed + 1)}
    labels = {split: rng.integers(0, 10, size=len(images[split])).astype(np.int64) for split in images}
    batches = [(f"data_batch_{k + 1}", "train", slice(k * per_batch, (k + 1) * per_batch)) for k in range(5)]
    batches.append(("test_batch", "test", slice(0, test_count)))
    for name, split, rows in batches:
        hwc = images[split][rows]
        # CIFAR's format: each row is the R plane, then G, then B, each 32x32 row-major.
        chw_rows = hwc.transpose(0, 3, 1, 2).reshape(len(hwc), 3072)
        entry = {
            "batch_label": name,
            "labels": labels[split][rows].tolist(),
            "data": chw_rows,
            "filenames": [f"{name}_{i}.png" for i in range(len(hwc))],
        }
        (folder / name).write_bytes(pickle.dumps(entry))
    (folder / "batches.meta").write_bytes(
        pickle.dumps({"label_names": list(CLASSES), "num_cases_per_batch": per_batch, "num_vis": 3072})
    )
    return Expected(images["train"], labels["train"], images["test"], labels["test"], CLASSES)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def accept_cifar_root(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Point torchvision's md5 table at the miniature files, so its integrity check passes for them."""
    folder = root / "cifar-10-batches-py"
    cls = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", [[f"data_batch_{k}", md5(folder / f"data_batch_{k}")] for k in range(1, 6)])
    monkeypatch.setattr(cls, "test_list", [["test_batch", md5(folder / "test_batch")]])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(folder / "batches.meta")})


# ----------------------------------------------------------------------------- image folders


def write_image_folder(
    root: Path,
    classes: tuple[str, ...] = CLASSES,
    train_per_class: int = 2,
    test_per_class: int = 1,
    seed: int = 0,
) -> Expected:
    """train/<class>/NNNN.{png,jpg} and test/<class>/...: even-numbered files PNG, odd JPEG.

    Expected arrays are in sorted class order, then file-name order, as ImageFolder lists them.
    """
    out: dict[str, tuple[list[np.ndarray], list[int]]] = {"train": ([], []), "test": ([], [])}
    counter = seed
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        for label, name in enumerate(sorted(classes)):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                counter += 1
                pixels = random_images(1, counter)[0]
                if i % 2 == 0:
                    path = folder / f"{i:04d}.png"
                    Image.fromarray(pixels).save(path)
                    expected = pixels
                else:
                    path = folder / f"{i:04d}.jpg"
                    Image.fromarray(pixels).save(path, quality=90)
                    with Image.open(path) as image:
                        expected = np.asarray(image.convert("RGB"))
                out[split][0].append(expected)
                out[split][1].append(label)
    return Expected(
        np.stack(out["train"][0]),
        np.array(out["train"][1], dtype=np.int64),
        np.stack(out["test"][0]),
        np.array(out["test"][1], dtype=np.int64),
        tuple(sorted(classes)),
    )


def write_tar(folder: Path, archive: Path, wrapper: str | None = None) -> Path:
    """Archive folder's train/ and test/ (compression from the suffix), optionally under one wrapping directory."""
    mode = "w" if archive.name.endswith(".tar") else "w:gz"
    with tarfile.open(archive, mode) as tar:
        for split in ("train", "test"):
            if (folder / split).exists():
                tar.add(folder / split, arcname=f"{wrapper}/{split}" if wrapper else split)
    return archive


def assert_matches(train, test, expected: Expected, source: str) -> None:
    np.testing.assert_array_equal(train.images, expected.train_images)
    np.testing.assert_array_equal(train.labels, expected.train_labels)
    np.testing.assert_array_equal(test.images, expected.test_images)
    np.testing.assert_array_equal(test.labels, expected.test_labels)
    assert train.classes == test.classes == expected.classes
    assert train.source == test.source == source
    for dataset in (train, test):
        assert dataset.images.dtype == np.uint8 and dataset.images.flags["C_CONTIGUOUS"]
        assert dataset.labels.dtype == np.int64


class CountingLoader:
    """In-memory batches that count how many the current epoch pulled."""

    def __init__(self, n: int, size: int = 4, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.batches = [
            (torch.randn(size, 3, 32, 32, generator=gen), torch.randint(0, 10, (size,), generator=gen))
            for _ in range(n)
        ]
        self.served = 0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.served = 0
        for batch in self.batches:
            self.served += 1
            yield batch
