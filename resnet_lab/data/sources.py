"""CIFAR-10 sources: what `--data`/`--lab-data` accept, recognized and loaded through one registry.

Every source ends up as the same in-memory form (`dataset.Splits`), served by `LabDataset`
with the lab's PIL transforms. The kinds (`SOURCES`, in the order they are tried):

- ``"synthetic"``: the built-in, deterministic CIFAR-10 stand-in (`synthetic.py`), so every
  command runs offline on a fresh machine.
- a torchvision CIFAR-10 root (holding ``cifar-10-batches-py/``), read by
  `torchvision.datasets.CIFAR10` itself so its md5 integrity check applies.
- an image folder ``train/<class>/*``, ``test/<class>/*`` or a ``.tar.gz``/``.tgz``/``.tar``
  of one (`imagefolder.py`): decoded once, then cached as one ``.npz`` per source (`cache.py`).

A new kind of source is one `Source` entry here: how to recognize it, how it is described in
messages and help, how to load it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError

import numpy as np
import torchvision
from torchvision.datasets.utils import check_integrity

from ..errors import DataError
from .dataset import LabDataset, Splits, one_line, require_int
from .imagefolder import ARCHIVE_SUFFIXES, check_archive, has_split_dir, load_archive, load_folder
from .synthetic import synthetic_splits
from .transforms import test_transform, train_transform

SYNTHETIC = "synthetic"  # the one source that is a name, not a path
_TORCHVISION_DIR = torchvision.datasets.CIFAR10.base_folder  # "cifar-10-batches-py"


@dataclass(frozen=True)
class DataConfig:
    """Which data to load. Sizes apply to the synthetic source only; real sources have their own."""

    source: str = SYNTHETIC  # "synthetic" or a filesystem path (see ACCEPTED_LAYOUTS)
    seed: int = 0  # synthetic generation seed
    train_size: int = 50_000  # synthetic only; labels balanced as evenly as possible
    test_size: int = 10_000  # synthetic only
    download: bool = False  # torchvision root only: download only when explicitly asked
    cache_dir: str | None = None  # decoded image-folder caches; default $RESNET_LAB_CACHE or ~/.cache/resnet_lab

    def __post_init__(self) -> None:
        if not isinstance(self.source, (str, os.PathLike)) or not os.fspath(self.source).strip():
            raise DataError(f'data source must be "synthetic" or a path, got {self.source!r}')
        require_int("seed", self.seed, 0)
        require_int("train_size", self.train_size, 1)
        require_int("test_size", self.test_size, 1)

    def cache_folder(self) -> Path:
        if self.cache_dir is not None:
            return Path(self.cache_dir).expanduser()
        env = os.environ.get("RESNET_LAB_CACHE")
        return Path(env).expanduser() if env else Path.home() / ".cache" / "resnet_lab"


# ----------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Source:
    """One kind of source: how it is recognized, described and loaded."""

    kind: str  # the name `LabDataset.source` records
    short: str  # in option help: "'synthetic', a torchvision CIFAR-10 root, ..."
    layout: str  # in error messages that list what is accepted
    match: Callable[[str, bool], Path | None]  # (source text, download) -> the root to read, or None
    load: Callable[[Path, DataConfig], Splits]
    downloads: bool = False  # whether DataConfig.download applies


def _match_synthetic(text: str, download: bool) -> Path | None:
    return Path() if text == SYNTHETIC else None


def _match_torchvision(text: str, download: bool) -> Path | None:
    path = Path(text).expanduser()
    if not path.exists():
        return path if download else None  # torchvision creates the root and downloads into it
    if not path.is_dir():
        return None
    if path.name == _TORCHVISION_DIR:
        return path.parent
    if (path / _TORCHVISION_DIR).is_dir():
        return path
    return path if download and not _visible_children(path) else None


def _match_folder(text: str, download: bool) -> Path | None:
    path = Path(text).expanduser()
    if not path.is_dir():
        return None
    if has_split_dir(path):
        return path
    children = _visible_children(path)
    if len(children) == 1 and children[0].is_dir() and has_split_dir(children[0]):
        return children[0]  # one wrapping directory, as archives often have
    return None


def _match_archive(text: str, download: bool) -> Path | None:
    path = Path(text).expanduser()
    return path if path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES) else None


def _visible_children(path: Path) -> list[Path]:
    return [child for child in path.iterdir() if not child.name.startswith(".")]


def _load_torchvision(root: Path, config: DataConfig) -> Splits:
    """Read through torchvision.datasets.CIFAR10 so its md5 check guards every batch file."""
    cls = torchvision.datasets.CIFAR10
    try:
        train = cls(str(root), train=True, download=config.download)
        test = cls(str(root), train=False, download=False)
    except (URLError, OSError) as exc:  # URLError is an OSError; listed for the reader
        raise DataError(
            f"downloading CIFAR-10 into {root} failed ({one_line(exc)}); check the network, or download "
            f"{cls.filename} by hand and extract it there, or pass --data synthetic"
        ) from exc
    except RuntimeError as exc:  # torchvision's "Dataset not found or corrupted"
        bad = _failed_cifar_files(root)
        raise DataError(
            f"CIFAR-10 at {root} failed torchvision's integrity check (md5): {bad} missing, truncated or altered; "
            "replace the files with a fresh copy of cifar-10-batches-py (or download into an empty directory)"
        ) from exc
    return Splits(
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


SOURCES: dict[str, Source] = {
    source.kind: source
    for source in (
        Source(
            SYNTHETIC,
            "'synthetic'",
            '"synthetic" (built in, no files needed)',
            _match_synthetic,
            lambda _, c: synthetic_splits(c.seed, c.train_size, c.test_size),
        ),
        Source(
            "cifar10-torchvision",
            "a torchvision CIFAR-10 root",
            f"a torchvision CIFAR-10 root holding {_TORCHVISION_DIR}/",
            _match_torchvision,
            _load_torchvision,
            downloads=True,
        ),
        Source(
            "imagefolder",
            "an image folder (train/<class>/, test/<class>/)",
            "an image folder with train/<class>/ and test/<class>/",
            _match_folder,
            lambda root, c: load_folder(root, c.cache_folder()),
        ),
        Source(
            "imagefolder-tar",
            "a .tar.gz of one",
            "a .tar.gz/.tgz/.tar of such an image folder",
            _match_archive,
            lambda archive, c: load_archive(archive, c.cache_folder()),
        ),
    )
}
ACCEPTED_LAYOUTS = tuple(source.layout for source in SOURCES.values())


def _either(items: list[str]) -> str:
    return ", ".join(items[:-1]) + " or " + items[-1] if len(items) > 1 else items[0]


SOURCES_HELP = _either([source.short for source in SOURCES.values()])  # for --data / --lab-data help


def accepted() -> str:
    return "accepted: " + "; ".join(ACCEPTED_LAYOUTS)


# ----------------------------------------------------------------------------- resolving and loading


def resolve(source: str | os.PathLike[str], download: bool = False) -> tuple[Source, Path]:
    """The kind of `source` and the root its loader reads; DataError saying why when no kind matches."""
    text = os.fspath(source)
    for kind in SOURCES.values():
        root = kind.match(text, download)
        if root is not None:
            return kind, root
    raise _unrecognized(Path(text).expanduser())


def _unrecognized(path: Path) -> DataError:
    if not path.exists():
        paths = _either([source.short for source in SOURCES.values() if source.kind != SYNTHETIC])
        return DataError(f"data path {path} does not exist; pass --data {SYNTHETIC} or a path to {paths}")
    if path.is_file():
        return DataError(f"data path {path} is a file but not a .tar.gz/.tgz/.tar archive; {accepted()}")
    if not path.is_dir():  # a device, a socket, a FIFO: /dev/null, say
        return DataError(f"data path {path} is neither a folder nor a .tar.gz/.tgz/.tar archive; {accepted()}")
    children = _visible_children(path)
    if not children:
        return DataError(f"data directory {path} is empty; {accepted()}")
    shown = ", ".join(sorted(child.name for child in children)[:5])
    return DataError(f"data directory {path} has an unrecognized layout (it holds {shown}); {accepted()}")


def check_source(source: str) -> str:
    """`describe_source`, and an archive read through to its end: what a run checks before it starts."""
    kind, root = resolve(source)
    if kind.kind == "imagefolder-tar":
        check_archive(root)
    return kind.kind


def describe_source(source: str) -> str:
    """The kind `source` is recognized as: "synthetic", "cifar10-torchvision", "imagefolder" or
    "imagefolder-tar" (the names `LabDataset.source` records); DataError listing the accepted layouts otherwise."""
    return resolve(source)[0].kind


def load_splits(config: DataConfig) -> Splits:
    source, root = resolve(config.source, config.download)
    if config.download and not source.downloads:
        raise DataError(
            "download applies only to a torchvision CIFAR-10 root, but "
            f"{config.source} is {source.kind}; drop the download option"
        )
    return source.load(root, config)


def load_datasets(config: DataConfig = DataConfig()) -> tuple[LabDataset, LabDataset]:
    """(train, test) datasets for `config.source`, with the lab's train and test transforms."""
    splits = load_splits(config)
    train = LabDataset(splits.train_images, splits.train_labels, splits.classes, splits.source, train_transform())
    test = LabDataset(splits.test_images, splits.test_labels, splits.classes, splits.source, test_transform())
    return train, test
