"""The decoded-source cache: one `.npz` per source location, keyed by the source's content, written atomically.

Used by the sources that must decode files (image folders and their archives); later loads take a
fraction of a second. The folder is `DataConfig.cache_dir`, else $RESNET_LAB_CACHE, else
~/.cache/resnet_lab.
"""

from __future__ import annotations

import contextlib
import hashlib
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import filelock
import numpy as np

from ..errors import DataError
from ..fileio import atomic_open
from .dataset import Splits, one_line, splits_problem

# Bump whenever the cache file's contents or meaning change: older files are then rebuilt.
CACHE_FORMAT_VERSION = 1


def cache_file(cache_dir: Path, kind: str, path: Path) -> Path:
    # One file per source location; the content key is stored inside, so a changed source
    # overwrites its stale cache instead of leaving it behind.
    location = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    return cache_dir / f"{kind}-{path.name.split('.')[0] or 'data'}-{location}.npz"


def cached_splits(path: Path, key: str, kind: str, build: Callable[[], tuple[str, Splits]]) -> Splits:
    """The splits cached in `path` under `key`; else `build()` -> (its key, splits), then cached."""
    cached = read_cache(path, key, kind)
    if cached is not None:
        return cached
    with cache_lock(path):
        cached = read_cache(path, key, kind)  # another process may have built it while we waited
        if cached is not None:
            return cached
        key, splits = build()
        write_cache(path, key, splits)
        return splits


@contextlib.contextmanager
def cache_lock(cache_file: Path) -> Iterator[None]:
    """Let one process build a cache while others wait; never wait forever.

    The atomic rename already keeps the file valid when two processes race; the lock only saves
    the duplicate decode. flock-based, so a killed holder releases it; after the timeout we build anyway.
    """
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create cache directory {cache_file.parent} ({one_line(exc)}); "
            "set RESNET_LAB_CACHE to a writable directory"
        ) from exc
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


def cache_arrays(key: str, splits: Splits) -> dict[str, np.ndarray]:
    return {
        "format_version": np.array(CACHE_FORMAT_VERSION, dtype=np.int64),
        "source_key": np.array(key),
        "classes": np.array(splits.classes),
        "train_images": splits.train_images,
        "train_labels": splits.train_labels,
        "test_images": splits.test_images,
        "test_labels": splits.test_labels,
    }


def write_cache(cache_file: Path, key: str, splits: Splits) -> None:
    try:
        with atomic_open(cache_file, "wb") as handle:
            # uncompressed: loading is a plain copy
            np.savez(handle, **cache_arrays(key, splits))  # type: ignore[arg-type]  # numpy's stub maps **kwds onto allow_pickle
    except OSError as exc:
        raise DataError(
            f"cannot write cache file {cache_file} ({one_line(exc)}); set RESNET_LAB_CACHE to a writable directory"
        ) from exc


def read_cache(cache_file: Path, key: str, kind: str) -> Splits | None:
    """The cached splits, or None when the file is absent, stale, from another format version or damaged."""
    try:
        # Our own handle: np.load leaks the file it opened when the zip directory is unreadable.
        with open(cache_file, "rb") as handle, np.load(handle, allow_pickle=False) as npz:
            # Check the small header members first, so a stale cache costs no large read.
            if int(npz["format_version"]) != CACHE_FORMAT_VERSION or str(npz["source_key"]) != key:
                return None
            # Reading a whole member makes zipfile verify its CRC-32: flipped bytes are caught, not served.
            splits = Splits(
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
    return splits if splits_problem(splits) is None else None
