"""Image-folder sources: `train/<class>/*`, `test/<class>/*` as files, or a `.tar.gz`/`.tgz`/`.tar` of them.

Decoded once (in parallel for large sources) into the in-memory form and cached (`cache.py`).
Labels follow sorted class-folder names, as torchvision's ImageFolder numbers them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import multiprocessing
import os
import tarfile
import warnings
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS

from ..errors import DataError
from ..machine import cpu_count
from .cache import CACHE_FORMAT_VERSION, cache_file, cached_splits
from .dataset import Splits, one_line
from .transforms import IMAGE_SHAPE, NUM_CLASSES

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
SPLITS = ("train", "test")


def has_split_dir(path: Path) -> bool:
    # Either split is enough to recognize the layout; a missing one is reported by name later.
    return any((path / split).is_dir() for split in SPLITS)


def load_folder(root: Path, cache_dir: Path) -> Splits:
    listing = _list_folder(root)
    key = _folder_key(listing)
    return cached_splits(
        cache_file(cache_dir, "imagefolder", root),
        key,
        "imagefolder",
        lambda: (key, _splits_from_files(_folder_files(root, listing), root, "imagefolder")),
    )


def load_archive(archive: Path, cache_dir: Path) -> Splits:
    def build() -> tuple[str, Splits]:
        data = archive.read_bytes()
        # The key of exactly the bytes decoded, even if the file just changed.
        return _archive_key(data), _splits_from_files(_archive_files(archive, data), archive, "imagefolder-tar")

    return cached_splits(
        cache_file(cache_dir, "imagefolder-tar", archive), _archive_key(archive), "imagefolder-tar", build
    )


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
    for split in SPLITS:
        # os.walk like ImageFolder's make_dataset; we do not call make_dataset because the same rules
        # must also apply to archive members, which it cannot read without extracting to disk.
        for dirpath, filenames in _walk_once(root / split):
            for filename in filenames:
                path = Path(dirpath, filename)
                name = path.relative_to(root).as_posix()
                if _is_image_name(name):
                    found.append((name, path, path.stat()))
    return sorted(found, key=lambda item: item[0])


def _walk_once(top: Path) -> list[tuple[str, list[str]]]:
    """(folder, file names) of every folder under `top`, symlinks followed, each real folder once.

    A symlink back to a folder above it (`train/c0/again -> .`) would make os.walk go round the
    loop until the path is too long (and count its images many times); a folder reached a second
    time by any route is skipped, identified by (st_dev, st_ino), so the walk always ends.
    """
    seen: set[tuple[int, int]] = set()
    folders = []
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        try:
            info = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        key = (info.st_dev, info.st_ino)
        if key in seen:
            dirnames[:] = []  # prune: its subfolders were walked when it was first reached
            continue
        seen.add(key)
        dirnames.sort()  # the first route to a folder is the one by sorted names, on every run
        folders.append((dirpath, filenames))
    return folders


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


def check_archive(archive: Path) -> None:
    """Read the archive through to its end (streamed, nothing kept): DataError if it is truncated or corrupt.

    A start-up check, so that a bad archive is one usage error instead of every benchmark's error.
    """
    try:
        with tarfile.open(archive, mode="r|*") as tar:
            for member in tar:
                if member.isfile():
                    handle = tar.extractfile(member)
                    while handle is not None and handle.read(1 << 20):
                        pass
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataError(
            f"cannot read archive {archive}: it is truncated or corrupted ({one_line(exc)}); copy it again"
        ) from exc


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
        raise DataError(
            f"cannot read archive {archive}: it is truncated or corrupted ({one_line(exc)}); copy it again"
        ) from exc
    wrappers = {parts[0] for parts, _, _ in members if parts[0] not in SPLITS}
    strip = 1 if len(wrappers) == 1 and not any(parts[0] in SPLITS for parts, _, _ in members) else 0
    files = []
    for parts, name, payload in members:
        rest = parts[strip:]
        if len(rest) >= 3 and rest[0] in SPLITS:
            files.append(_ImageFile(name, rest[0], rest[1], payload))
    return _check_layout(files, archive)


def _check_layout(files: list[_ImageFile], origin: Path) -> list[_ImageFile]:
    """Both splits present, the same class folders in each, exactly ten of them; files sorted by name."""
    if not files:
        from .sources import accepted  # the registry lists every layout (a module-level import would be circular)

        raise DataError(f"no images found in {origin} under train/<class>/ or test/<class>/; {accepted()}")
    classes = {split: sorted({f.class_name for f in files if f.split == split}) for split in SPLITS}
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


def _splits_from_files(files: list[_ImageFile], origin: Path, kind: str) -> Splits:
    # Labels by sorted class-folder name, as torchvision's ImageFolder numbers them.
    classes = tuple(sorted({f.class_name for f in files}))
    index = {name: i for i, name in enumerate(classes)}
    images = _decode_images([f.payload for f in files], [f.name for f in files], origin)
    labels = np.array([index[f.class_name] for f in files], dtype=np.int64)
    is_train = np.array([f.split == "train" for f in files])
    return Splits(
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
    workers = cpu_count() if "fork" in multiprocessing.get_all_start_methods() else 1
    if len(payloads) < _POOL_MIN_IMAGES:
        workers = 1
    # About four tasks per worker, so that uneven chunks still finish close together.
    size = -(-len(payloads) // (4 * workers)) if workers > 1 else max(1, len(payloads))
    starts = range(0, len(payloads), size)
    chunks = [list(payloads[s : s + size]) for s in starts]
    results = _decode_in_pool(chunks, workers) if workers > 1 else [_decode_chunk(chunk) for chunk in chunks]
    images = np.empty((len(payloads), *IMAGE_SHAPE), dtype=np.uint8)
    for start, (array, errors) in zip(starts, results, strict=True):
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
        warnings.filterwarnings(
            "ignore", message=r".*use of fork\(\) may lead to deadlocks", category=DeprecationWarning
        )
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
            errors.append((i, f"not a readable image, truncated or corrupted ({one_line(exc)})"))
    return out, errors
