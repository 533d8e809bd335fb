"""CIFAR-10 data: sources, transforms and loaders for the lab.

Every source ends up as the same in-memory form: uint8 HWC images and int64
labels, served by `LabDataset` through the item path torchvision's `CIFAR10`
uses (array -> PIL image -> transform), so timings measure the lab's pipeline
whatever the files looked like on disk.

Sources (`DataConfig.source`):

- ``"synthetic"``: a built-in, deterministic CIFAR-10 stand-in with learnable
  class structure, so every command runs offline on a fresh machine.
- a torchvision CIFAR-10 root (holding ``cifar-10-batches-py/``), read by
  `torchvision.datasets.CIFAR10` itself so its md5 integrity check applies.
- an image folder ``train/<class>/*``, ``test/<class>/*`` or a ``.tar.gz``/
  ``.tgz``/``.tar`` of one: decoded once, then cached as one ``.npz`` per source.
"""

from __future__ import annotations

import colorsys
import contextlib
import gzip
import hashlib
import io
import multiprocessing
import os
import random
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence, Sized
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.error import URLError

import filelock
import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision import transforms
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.datasets.utils import check_integrity

from .errors import DataError
from .fileio import atomic_open

# LAB_SPEC's normalization constants (the lab's values, as used by kuangliu/pytorch-cifar;
# the std is not the exact per-channel std of CIFAR-10, but the lab prescribes it).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_SHAPE = (32, 32, 3)
NUM_CLASSES = len(CIFAR10_CLASSES)

# Bump whenever the cache file's contents or meaning change: older files are then rebuilt.
CACHE_FORMAT_VERSION = 1

ACCEPTED_LAYOUTS = (
    '"synthetic" (built in, no files needed)',
    "a torchvision CIFAR-10 root holding cifar-10-batches-py/",
    "an image folder with train/<class>/ and test/<class>/",
    "a .tar.gz/.tgz/.tar of such an image folder",
)
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_TORCHVISION_DIR = torchvision.datasets.CIFAR10.base_folder  # "cifar-10-batches-py"
_SPLITS = ("train", "test")


def _accepted() -> str:
    return "accepted: " + "; ".join(ACCEPTED_LAYOUTS)


def _one_line(exc: BaseException) -> str:
    """An exception's text on one line: the CLI prints DataError messages as a single line."""
    return " ".join(str(exc).split()) or type(exc).__name__


# ----------------------------------------------------------------------------- transforms


def train_transform() -> transforms.Compose:
    """LAB_SPEC's training augmentation: pad-4 random crop, horizontal flip, then normalize."""
    return transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(0.5),
            transforms.ToTensor(),
            transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD),
        ]
    )


def test_transform() -> transforms.Compose:
    """LAB_SPEC's evaluation transform: no augmentation, same normalization."""
    return transforms.Compose([transforms.ToTensor(), transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD)])


# Not a test: keep pytest from collecting it when a test module imports it by name.
test_transform.__test__ = False  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- configuration


def _require_int(name: str, value: Any, minimum: int) -> None:
    # bool is an int subclass; `train_size=True` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise DataError(f"{name} must be >= {minimum}, got {value}")


@dataclass(frozen=True)
class DataConfig:
    """Which data to load. Sizes apply to the synthetic source only; real sources have their own."""

    source: str = "synthetic"  # "synthetic" or a filesystem path (see ACCEPTED_LAYOUTS)
    seed: int = 0  # synthetic generation seed
    train_size: int = 50_000  # synthetic only; labels balanced as evenly as possible
    test_size: int = 10_000  # synthetic only
    download: bool = False  # torchvision root only: download only when explicitly asked
    cache_dir: str | None = None  # decoded image-folder caches; default $RESNET_LAB_CACHE or ~/.cache/resnet_lab

    def __post_init__(self) -> None:
        if not isinstance(self.source, (str, os.PathLike)) or not os.fspath(self.source).strip():
            raise DataError(f"data source must be \"synthetic\" or a path, got {self.source!r}")
        _require_int("seed", self.seed, 0)
        _require_int("train_size", self.train_size, 1)
        _require_int("test_size", self.test_size, 1)


@dataclass(frozen=True)
class LoaderConfig:
    """DataLoader settings; defaults are the lab's (train batch 128 shuffled, test batch 100, 2 workers)."""

    batch_size: int = 128
    test_batch_size: int = 100
    num_workers: int = 2
    pin_memory: bool | None = None  # None: True exactly when the device is CUDA
    persistent_workers: bool = False
    prefetch_factor: int | None = None  # DataLoader's default when None
    seed: int = 0  # seeds the shuffling generator and, through it, the workers
    drop_last: bool = False
    # Seconds to wait for one batch from the workers before raising (a hung worker would otherwise
    # hang the run forever); 0 waits forever. Ignored with num_workers=0. A killed worker is
    # detected without it.
    timeout: float = 120.0

    def __post_init__(self) -> None:
        _require_int("batch_size", self.batch_size, 1)
        _require_int("test_batch_size", self.test_batch_size, 1)
        _require_int("num_workers", self.num_workers, 0)
        _require_int("seed", self.seed, 0)
        if self.prefetch_factor is not None:
            _require_int("prefetch_factor", self.prefetch_factor, 1)
            if self.num_workers == 0:
                raise DataError("prefetch_factor needs worker processes: set num_workers >= 1 or leave prefetch_factor unset")
        if self.persistent_workers and self.num_workers == 0:
            raise DataError("persistent_workers needs worker processes: set num_workers >= 1 or persistent_workers=False")
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)) or not 0 <= self.timeout < float("inf"):
            raise DataError(f"timeout must be a number of seconds >= 0 (0 waits forever), got {self.timeout!r}")


# ----------------------------------------------------------------------------- dataset


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

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = Image.fromarray(self.images[index])
        label = int(self.labels[index])
        if self.transform is not None:
            image = self.transform(image)
        return image, label

    def __repr__(self) -> str:
        return f"LabDataset(source={self.source!r}, items={len(self)}, classes={len(self.classes)})"


@dataclass(frozen=True)
class _Splits:
    """Both splits of a source as arrays; what a cache file holds."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: tuple[str, ...]
    source: str


def load_datasets(config: DataConfig = DataConfig()) -> tuple[LabDataset, LabDataset]:
    """(train, test) datasets for `config.source`, with the lab's train and test transforms."""
    splits = _load_splits(config)
    train = LabDataset(splits.train_images, splits.train_labels, splits.classes, splits.source, train_transform())
    test = LabDataset(splits.test_images, splits.test_labels, splits.classes, splits.source, test_transform())
    return train, test


def describe_source(source: str) -> str:
    """The layout `source` is recognized as: "synthetic", "cifar10-torchvision", "imagefolder" or
    "imagefolder-tar" (the names `LabDataset.source` records); DataError listing the accepted layouts otherwise."""
    return _resolve(source, download=False)[0]


def _load_splits(config: DataConfig) -> _Splits:
    kind, path = _resolve(config.source, config.download)
    if config.download and kind != "cifar10-torchvision":
        raise DataError(f"download applies only to a torchvision CIFAR-10 root, but {config.source} is {kind}; drop the download option")
    if kind == "synthetic":
        return synthetic_splits(config.seed, config.train_size, config.test_size)
    if kind == "cifar10-torchvision":
        return _load_torchvision(path, config.download)
    return _load_cached_image_folder(kind, path, _cache_dir(config))


# ----------------------------------------------------------------------------- layout detection


def _resolve(source: str | os.PathLike[str], download: bool) -> tuple[str, Path]:
    """(kind, path) for a source: the root a reader needs, after unwrapping one wrapping directory."""
    text = os.fspath(source)
    if text == "synthetic":
        return "synthetic", Path()
    path = Path(text).expanduser()
    if not path.exists():
        if download:  # torchvision creates the root and downloads into it
            return "cifar10-torchvision", path
        raise DataError(
            f"data path {path} does not exist; pass --data synthetic or a path to a torchvision CIFAR-10 root "
            f"(holding {_TORCHVISION_DIR}/), an image folder (train/<class>/, test/<class>/) or a .tar.gz of one"
        )
    if path.is_file():
        if path.name.lower().endswith(_ARCHIVE_SUFFIXES):
            return "imagefolder-tar", path
        raise DataError(f"data path {path} is a file but not a .tar.gz/.tgz/.tar archive; {_accepted()}")
    if not path.is_dir():  # a device, a socket, a FIFO: /dev/null, say
        raise DataError(f"data path {path} is neither a folder nor a .tar.gz/.tgz/.tar archive; {_accepted()}")
    if path.name == _TORCHVISION_DIR:
        return "cifar10-torchvision", path.parent
    if (path / _TORCHVISION_DIR).is_dir():
        return "cifar10-torchvision", path
    if _has_split_dir(path):
        return "imagefolder", path
    children = [child for child in path.iterdir() if not child.name.startswith(".")]
    if len(children) == 1 and children[0].is_dir() and _has_split_dir(children[0]):
        return "imagefolder", children[0]  # one wrapping directory, as archives often have
    if not children:
        if download:
            return "cifar10-torchvision", path
        raise DataError(f"data directory {path} is empty; {_accepted()}")
    shown = ", ".join(sorted(child.name for child in children)[:5])
    raise DataError(f"data directory {path} has an unrecognized layout (it holds {shown}); {_accepted()}")


def _has_split_dir(path: Path) -> bool:
    # Either split is enough to recognize the layout; a missing one is reported by name later.
    return any((path / split).is_dir() for split in _SPLITS)


# ----------------------------------------------------------------------------- synthetic source

_SYNTH_PAD = 4  # same as RandomCrop's padding: each image is a random 32x32 window of a 40x40 class canvas
_SYNTH_CHUNK = 2048  # images per vectorized step: bounds float32 scratch memory to ~25 MB


def synthetic_splits(seed: int, train_size: int, test_size: int) -> _Splits:
    """Built-in CIFAR-10 stand-in: per-class colour and stripe pattern, plus per-image shift, brightness and noise.

    The class cue (a distinct hue per class, plus a low-frequency stripe pattern) survives crop and
    flip augmentation, so a ResNet-18 learns it within a few hundred steps; the per-image jitter keeps
    the images from being constant. Train and test share the class canvases but draw different images.
    """
    canvas_seq, train_seq, test_seq = np.random.SeedSequence(seed).spawn(3)
    canvases = _synthetic_canvases(np.random.default_rng(canvas_seq))
    train_images, train_labels = _synthetic_images(canvases, train_size, np.random.default_rng(train_seq))
    test_images, test_labels = _synthetic_images(canvases, test_size, np.random.default_rng(test_seq))
    return _Splits(train_images, train_labels, test_images, test_labels, CIFAR10_CLASSES, "synthetic")


def _synthetic_canvases(rng: np.random.Generator) -> np.ndarray:
    """(10, 40, 40, 3) float32 class canvases on the 0-255 scale."""
    size = 32 + 2 * _SYNTH_PAD
    hue_offset = rng.random()
    # Ten evenly spaced hues: colour alone separates the classes (10 iterations, not a per-image loop).
    base = np.array([colorsys.hsv_to_rgb((k + hue_offset) / NUM_CLASSES % 1.0, 0.6, 0.65) for k in range(NUM_CLASSES)])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    freq = rng.integers(1, 4, size=(NUM_CLASSES, 2)).astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, size=NUM_CLASSES)
    stripes = np.sin(
        2 * np.pi * (freq[:, 0, None, None] * xx + freq[:, 1, None, None] * yy) / size + phase[:, None, None]
    )
    tint = rng.uniform(-1.0, 1.0, size=(NUM_CLASSES, 3))
    canvases = base[:, None, None, :] + 0.2 * stripes[..., None] * tint[:, None, None, :]
    return (255.0 * canvases).astype(np.float32)


def _synthetic_images(canvases: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = _balanced_labels(n, rng)
    images = np.empty((n, *IMAGE_SHAPE), dtype=np.uint8)
    # windows[c, dy, dx] is canvas c shifted by (dy, dx): a view, so no per-shift copies.
    windows = np.lib.stride_tricks.sliding_window_view(canvases, (32, 32), axis=(1, 2))  # (10, 9, 9, 3, 32, 32)
    shifts = 2 * _SYNTH_PAD + 1
    for start in range(0, n, _SYNTH_CHUNK):
        stop = min(start + _SYNTH_CHUNK, n)
        count = stop - start
        dy, dx = rng.integers(0, shifts, size=(2, count))
        batch = windows[labels[start:stop], dy, dx].transpose(0, 2, 3, 1)  # (count, 32, 32, 3), a copy
        batch *= rng.uniform(0.75, 1.25, size=(count, 1, 1, 1)).astype(np.float32)  # brightness
        batch += rng.uniform(-12, 12, size=(count, 1, 1, 3)).astype(np.float32)  # colour cast
        # Uniform noise in [-48, 48] from uint8 draws: ~5x faster than float normals, same purpose.
        noise = rng.integers(0, 256, size=batch.shape, dtype=np.uint8)
        batch += noise.astype(np.float32) * np.float32(96 / 255) - np.float32(48)
        np.clip(batch, 0, 255, out=batch)
        images[start:stop] = batch  # float -> uint8 truncation is fine for noise-jittered pixels
    return images, labels


def _balanced_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    """Labels 0..9, counts differing by at most one (exactly equal when n % 10 == 0), shuffled."""
    return rng.permutation(np.arange(n, dtype=np.int64) % NUM_CLASSES)


# ----------------------------------------------------------------------------- torchvision CIFAR-10 root


def _load_torchvision(root: Path, download: bool) -> _Splits:
    """Read through torchvision.datasets.CIFAR10 so its md5 check guards every batch file."""
    cls = torchvision.datasets.CIFAR10
    try:
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=False)
    except (URLError, OSError) as exc:  # URLError is an OSError; listed for the reader
        raise DataError(
            f"downloading CIFAR-10 into {root} failed ({_one_line(exc)}); check the network, or download "
            f"{cls.filename} by hand and extract it there, or pass --data synthetic"
        ) from exc
    except RuntimeError as exc:  # torchvision's "Dataset not found or corrupted"
        bad = _failed_cifar_files(root)
        raise DataError(
            f"CIFAR-10 at {root} failed torchvision's integrity check (md5): {bad} missing, truncated or altered; "
            "replace the files with a fresh copy of cifar-10-batches-py (or download into an empty directory)"
        ) from exc
    return _Splits(
        np.ascontiguousarray(train.data),  # torchvision's transpose to HWC leaves a strided view
        np.asarray(train.targets, dtype=np.int64),
        np.ascontiguousarray(test.data),
        np.asarray(test.targets, dtype=np.int64),
        tuple(train.classes),
        "cifar10-torchvision",
    )


def _failed_cifar_files(root: Path) -> str:
    cls = torchvision.datasets.CIFAR10
    files = [*cls.train_list, *cls.test_list, [cls.meta["filename"], cls.meta["md5"]]]
    bad = [name for name, md5 in files if not check_integrity(str(root / cls.base_folder / name), md5)]
    return ", ".join(f"{cls.base_folder}/{name}" for name in bad) or "a batch file"


# ----------------------------------------------------------------------------- image folders and archives


@dataclass(frozen=True)
class _ImageFile:
    name: str  # path inside the source, for messages
    split: str
    class_name: str
    payload: str | bytes  # a filesystem path, or the file's bytes from an archive


def _is_image_name(name: str) -> bool:
    # torchvision's ImageFolder rule: image extensions count, other files (README, .DS_Store) are ignored.
    return not PurePosixPath(name).name.startswith(".") and name.lower().endswith(IMG_EXTENSIONS)


def _list_folder(root: Path) -> list[tuple[str, Path, os.stat_result]]:
    """(relative name, path, stat) of every image file under root/train and root/test, sorted by name."""
    found = []
    for split in _SPLITS:
        # os.walk like ImageFolder's make_dataset; we do not call make_dataset because the same rules
        # must also apply to archive members, which it cannot read without extracting to disk.
        for dirpath, _, filenames in os.walk(root / split, followlinks=True):
            for filename in filenames:
                path = Path(dirpath, filename)
                name = path.relative_to(root).as_posix()
                if _is_image_name(name):
                    found.append((name, path, path.stat()))
    return sorted(found, key=lambda item: item[0])


def _folder_key(listing: list[tuple[str, Path, os.stat_result]]) -> str:
    # Listing hash, not content hash: reading 60,000 files to hash them would cost as much as decoding.
    digest = hashlib.sha256(f"imagefolder:v{CACHE_FORMAT_VERSION}\n".encode())
    for name, _, stat in listing:
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _archive_key(data_or_path: bytes | Path) -> str:
    digest = hashlib.sha256(f"imagefolder-tar:v{CACHE_FORMAT_VERSION}\n".encode())
    if isinstance(data_or_path, bytes):
        digest.update(data_or_path)
    else:
        with open(data_or_path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _folder_files(root: Path, listing: list[tuple[str, Path, os.stat_result]]) -> list[_ImageFile]:
    files = []
    for name, path, _ in listing:
        parts = PurePosixPath(name).parts
        if len(parts) >= 3:  # train/<class>/.../file; images directly in train/ belong to no class
            files.append(_ImageFile(name, parts[0], parts[1], str(path)))
    return _check_layout(files, root)


def _archive_files(archive: Path, data: bytes) -> list[_ImageFile]:
    """Image members of an in-memory archive, as (split, class) files; one wrapping directory allowed."""
    members: list[tuple[tuple[str, ...], str, bytes]] = []
    try:
        if data[:2] == b"\x1f\x8b":
            # One C-level gunzip is ~3x faster than tarfile's small reads through GzipFile.
            data = gzip.decompress(data)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            for member in tar:
                if not member.isfile() or not _is_image_name(member.name):
                    continue
                handle = tar.extractfile(member)
                if handle is None:
                    continue
                # Read from memory instead of extracting: no temp files, no path traversal to guard against.
                parts = tuple(p for p in member.name.split("/") if p not in ("", "."))
                members.append((parts, member.name, handle.read()))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataError(f"cannot read archive {archive}: it is truncated or corrupted ({_one_line(exc)}); copy it again") from exc
    wrappers = {parts[0] for parts, _, _ in members if parts[0] not in _SPLITS}
    strip = 1 if len(wrappers) == 1 and not any(parts[0] in _SPLITS for parts, _, _ in members) else 0
    files = []
    for parts, name, payload in members:
        rest = parts[strip:]
        if len(rest) >= 3 and rest[0] in _SPLITS:
            files.append(_ImageFile(name, rest[0], rest[1], payload))
    return _check_layout(files, archive)


def _check_layout(files: list[_ImageFile], origin: Path) -> list[_ImageFile]:
    """Both splits present, the same class folders in each, exactly ten of them; files sorted by name."""
    if not files:
        raise DataError(f"no images found in {origin} under train/<class>/ or test/<class>/; {_accepted()}")
    classes = {split: sorted({f.class_name for f in files if f.split == split}) for split in _SPLITS}
    for split, other in (("train", "test"), ("test", "train")):
        if not classes[split]:
            raise DataError(f"{origin} has no {split}/<class>/ images; an image folder needs both train/ and test/")
        missing = sorted(set(classes[other]) - set(classes[split]))
        if missing:
            raise DataError(
                f"class folder {other}/{missing[0]} in {origin} has no counterpart {split}/{missing[0]} "
                f"(missing from {split}/: {', '.join(missing)}); train/ and test/ need the same class folders"
            )
    if len(classes["train"]) != NUM_CLASSES:
        raise DataError(
            f"found {len(classes['train'])} class folders in {origin}: {', '.join(classes['train'])}; "
            f"CIFAR-10 has {NUM_CLASSES} (the model has {NUM_CLASSES} outputs)"
        )
    return sorted(files, key=lambda f: f.name)


def _splits_from_files(files: list[_ImageFile], origin: Path, kind: str) -> _Splits:
    # Labels by sorted class-folder name, as torchvision's ImageFolder numbers them.
    classes = tuple(sorted({f.class_name for f in files}))
    index = {name: i for i, name in enumerate(classes)}
    images = _decode_images([f.payload for f in files], [f.name for f in files], origin)
    labels = np.array([index[f.class_name] for f in files], dtype=np.int64)
    is_train = np.array([f.split == "train" for f in files])
    return _Splits(
        np.ascontiguousarray(images[is_train]),
        labels[is_train],
        np.ascontiguousarray(images[~is_train]),
        labels[~is_train],
        classes,
        kind,
    )


# ----------------------------------------------------------------------------- decoding

_POOL_MIN_IMAGES = 4000  # below this, worker start-up costs more than it saves: decode in-process


def _decode_images(payloads: Sequence[str | bytes], names: Sequence[str], origin: Path) -> np.ndarray:
    """(N, 32, 32, 3) uint8 RGB, in order; DataError naming the first file that is not a 32x32 image."""
    workers = _cpu_count() if "fork" in multiprocessing.get_all_start_methods() else 1
    if len(payloads) < _POOL_MIN_IMAGES:
        workers = 1
    # About four tasks per worker, so that uneven chunks still finish close together.
    size = -(-len(payloads) // (4 * workers)) if workers > 1 else max(1, len(payloads))
    starts = range(0, len(payloads), size)
    chunks = [list(payloads[s : s + size]) for s in starts]
    results = _decode_in_pool(chunks, workers) if workers > 1 else [_decode_chunk(chunk) for chunk in chunks]
    images = np.empty((len(payloads), *IMAGE_SHAPE), dtype=np.uint8)
    for start, (array, errors) in zip(starts, results):
        if errors:
            offset, problem = errors[0]
            raise DataError(f"cannot use {names[start + offset]} in {origin}: {problem}")
        images[start : start + len(array)] = array
    return images


def _decode_in_pool(chunks: list[list[str | bytes]], workers: int) -> list[tuple[np.ndarray, list[tuple[int, str]]]]:
    # Processes, not threads: PIL's per-image Python overhead holds the GIL, and threads measured
    # slower than one core. Fork, not spawn: a spawned child re-imports torch (~4 s here), which
    # costs more than the decode it would share. The children only run PIL and numpy, never torch,
    # so forking a process whose torch threads are running is safe here; Python >= 3.12 warns about
    # it in general, and that warning (an error under pytest's filterwarnings=error) is silenced.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*use of fork\(\) may lead to deadlocks", category=DeprecationWarning)
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=context) as pool:
            return list(pool.map(_decode_chunk, chunks))


def _decode_chunk(payloads: list[str | bytes]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Decode one chunk; problems are returned as (offset, message) so the parent names the file."""
    out = np.zeros((len(payloads), *IMAGE_SHAPE), dtype=np.uint8)
    errors: list[tuple[int, str]] = []
    for i, payload in enumerate(payloads):
        try:
            source = io.BytesIO(payload) if isinstance(payload, bytes) else payload
            with Image.open(source) as image:
                if image.size != (32, 32):
                    errors.append((i, f"it is {image.size[0]}x{image.size[1]} pixels; CIFAR-10 images must be 32x32"))
                    continue
                out[i] = np.asarray(image.convert("RGB"))  # convert() forces the full decode
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            # UnidentifiedImageError (not an image) and "image file is truncated" are OSErrors.
            errors.append((i, f"not a readable image, truncated or corrupted ({_one_line(exc)})"))
    return out, errors


def _cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))  # honours taskset/cgroup CPU masks
    return os.cpu_count() or 1


# ----------------------------------------------------------------------------- cache


def _cache_dir(config: DataConfig) -> Path:
    if config.cache_dir is not None:
        return Path(config.cache_dir).expanduser()
    env = os.environ.get("RESNET_LAB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "resnet_lab"


def _cache_file(cache_dir: Path, kind: str, path: Path) -> Path:
    # One file per source location; the content key is stored inside, so a changed source
    # overwrites its stale cache instead of leaving it behind.
    location = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    return cache_dir / f"{kind}-{path.name.split('.')[0] or 'data'}-{location}.npz"


def _load_cached_image_folder(kind: str, path: Path, cache_dir: Path) -> _Splits:
    cache_file = _cache_file(cache_dir, kind, path)
    if kind == "imagefolder":
        listing = _list_folder(path)
        key = _folder_key(listing)
    else:
        key = _archive_key(path)
    cached = _read_cache(cache_file, key, kind)
    if cached is not None:
        return cached
    with _cache_lock(cache_file):
        cached = _read_cache(cache_file, key, kind)  # another process may have built it while we waited
        if cached is not None:
            return cached
        if kind == "imagefolder":
            files = _folder_files(path, listing)
        else:
            data = path.read_bytes()
            key = _archive_key(data)  # the key of exactly the bytes decoded, even if the file just changed
            files = _archive_files(path, data)
        splits = _splits_from_files(files, path, kind)
        _write_cache(cache_file, key, splits)
        return splits


@contextlib.contextmanager
def _cache_lock(cache_file: Path) -> Iterator[None]:
    """Let one process build a cache while others wait; never wait forever.

    The atomic rename already keeps the file valid when two processes race; the lock only saves
    the duplicate decode. flock-based, so a killed holder releases it; after the timeout we build anyway.
    """
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create cache directory {cache_file.parent} ({_one_line(exc)}); set RESNET_LAB_CACHE to a writable directory") from exc
    lock = filelock.FileLock(str(cache_file) + ".lock", timeout=300)
    try:
        lock.acquire()
    except filelock.Timeout:
        yield
        return
    try:
        yield
    finally:
        lock.release()


def _cache_arrays(key: str, splits: _Splits) -> dict[str, np.ndarray]:
    return {
        "format_version": np.array(CACHE_FORMAT_VERSION, dtype=np.int64),
        "source_key": np.array(key),
        "classes": np.array(splits.classes),
        "train_images": splits.train_images,
        "train_labels": splits.train_labels,
        "test_images": splits.test_images,
        "test_labels": splits.test_labels,
    }


def _write_cache(cache_file: Path, key: str, splits: _Splits) -> None:
    try:
        with atomic_open(cache_file, "wb") as handle:
            np.savez(handle, **_cache_arrays(key, splits))  # uncompressed: loading is a plain copy
    except OSError as exc:
        raise DataError(f"cannot write cache file {cache_file} ({_one_line(exc)}); set RESNET_LAB_CACHE to a writable directory") from exc


def _read_cache(cache_file: Path, key: str, kind: str) -> _Splits | None:
    """The cached splits, or None when the file is absent, stale, from another format version or damaged."""
    try:
        # Our own handle: np.load leaks the file it opened when the zip directory is unreadable.
        with open(cache_file, "rb") as handle, np.load(handle, allow_pickle=False) as npz:
            # Check the small header members first, so a stale cache costs no large read.
            if int(npz["format_version"]) != CACHE_FORMAT_VERSION or str(npz["source_key"]) != key:
                return None
            # Reading a whole member makes zipfile verify its CRC-32: flipped bytes are caught, not served.
            splits = _Splits(
                npz["train_images"],
                npz["train_labels"],
                npz["test_images"],
                npz["test_labels"],
                tuple(str(c) for c in npz["classes"]),
                kind,
            )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError, zipfile.BadZipFile, zlib.error):
        # Truncated, damaged or not an .npz at all (np.load then returns an array, without
        # the context-manager methods): rebuild, never trust.
        return None
    return splits if _splits_problem(splits) is None else None


def _splits_problem(s: _Splits) -> str | None:
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


# ----------------------------------------------------------------------------- loaders


def seed_worker(worker_id: int) -> None:
    """worker_init_fn: seed numpy and `random` from the worker's torch seed (PyTorch's reproducibility recipe).

    The DataLoader derives each worker's torch seed from its generator, so these follow `LoaderConfig.seed`.
    torch >= 1.9 already seeds both in its worker loop; this states the contract here instead of relying on it.
    """
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def make_train_loader(
    dataset: Dataset, config: LoaderConfig, device: torch.device | str = "cpu", *, sampler: Sampler | None = None
) -> DataLoader:
    """Shuffled training loader; order and worker seeds follow `config.seed`.

    `sampler` replaces the shuffle (a `DistributedSampler` gives each data-parallel rank its shard).
    """
    return _make_loader(
        dataset, config, config.batch_size, "batch_size", shuffle=sampler is None, drop_last=config.drop_last, device=device, sampler=sampler
    )


def make_test_loader(
    dataset: Dataset, config: LoaderConfig, device: torch.device | str = "cpu", *, sampler: Sampler | None = None
) -> DataLoader:
    """Evaluation loader: fixed order, `test_batch_size`, every item kept (`sampler`: this rank's shard)."""
    return _make_loader(
        dataset, config, config.test_batch_size, "test_batch_size", shuffle=False, drop_last=False, device=device, sampler=sampler
    )


def _make_loader(
    dataset: Dataset,
    config: LoaderConfig,
    batch_size: int,
    batch_name: str,
    shuffle: bool,
    drop_last: bool,
    device: torch.device | str,
    sampler: Sampler | None = None,
) -> DataLoader:
    if not isinstance(dataset, Sized) or len(dataset) == 0:
        raise DataError("the dataset is empty; check the data source")
    if batch_size > len(dataset):
        raise DataError(f"{batch_name} {batch_size} is larger than the dataset ({len(dataset)} items); use a smaller {batch_name}")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DataError(f"unknown device {device!r} ({_one_line(exc)}); use cpu, cuda or cuda:N") from exc
    pin_memory = device.type == "cuda" if config.pin_memory is None else config.pin_memory
    extra: dict[str, Any] = {}
    if config.prefetch_factor is not None:
        extra["prefetch_factor"] = config.prefetch_factor
    if config.num_workers > 0:
        extra["timeout"] = float(config.timeout)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        num_workers=config.num_workers,
        pin_memory=pin_memory,
        drop_last=drop_last,
        persistent_workers=config.persistent_workers,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(config.seed),
        **extra,
    )
