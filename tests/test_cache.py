"""The decoded-data cache's defences (resnet_lab/data/cache.py): truncated, corrupted, older-format and stale files
are rebuilt, and two processes building one cache at once both get the right arrays and leave a valid file.
"""

from __future__ import annotations

import hashlib
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
from datafixtures import (
    assert_matches,
    write_image_folder,
    write_tar,
)

from resnet_lab.data import (
    DataConfig,
    cache,
    imagefolder,
    load_datasets,
)

pytestmark = pytest.mark.usefixtures("private_cache")  # conftest.py: no test touches the user's cache


@pytest.fixture()
def built_cache(tmp_path: Path, private_cache: Path):
    """A miniature archive, its expected arrays, and the one cache file a first load leaves."""
    expected = write_image_folder(tmp_path / "folder", train_per_class=2, test_per_class=1)
    archive = write_tar(tmp_path / "folder", tmp_path / "mini.tar.gz")
    load_datasets(DataConfig(source=str(archive)))
    (cache_file,) = private_cache.glob("*.npz")
    return archive, expected, cache_file


class DecodeCounter:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self._decode = imagefolder._decode_images
        monkeypatch.setattr(imagefolder, "_decode_images", self)

    def __call__(self, *args: object) -> np.ndarray:
        self.calls += 1
        return self._decode(*args)


def reload_and_check(archive: Path, expected, cache_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = DecodeCounter(monkeypatch)
    train, test = load_datasets(DataConfig(source=str(archive)))
    assert counter.calls == 1, "a bad cache must be rebuilt, never served"
    assert_matches(train, test, expected, "imagefolder-tar")
    load_datasets(DataConfig(source=str(archive)))
    assert counter.calls == 1, "the rebuilt cache is valid and used"


def test_truncated_cache_is_rebuilt(built_cache, monkeypatch: pytest.MonkeyPatch) -> None:
    archive, expected, cache_file = built_cache
    cache_file.write_bytes(cache_file.read_bytes()[:-2000])
    reload_and_check(archive, expected, cache_file, monkeypatch)


def test_corrupted_cache_is_rebuilt(built_cache, monkeypatch: pytest.MonkeyPatch) -> None:
    archive, expected, cache_file = built_cache
    payload = bytearray(cache_file.read_bytes())
    with np.load(cache_file) as npz:
        first_pixels = npz["train_images"].tobytes()[:64]
    at = bytes(payload).index(first_pixels)  # inside the stored image bytes: only the CRC can tell
    payload[at : at + 8] = bytes(b ^ 0x55 for b in payload[at : at + 8])
    cache_file.write_bytes(bytes(payload))
    reload_and_check(archive, expected, cache_file, monkeypatch)


def rewrite_cache(cache_file: Path, **changes: np.ndarray) -> None:
    with np.load(cache_file) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays.update(changes)
    with open(cache_file, "wb") as handle:
        np.savez(handle, **arrays)


def test_older_format_version_is_rebuilt(built_cache, monkeypatch: pytest.MonkeyPatch) -> None:
    archive, expected, cache_file = built_cache
    # Same key and valid shapes, but poisoned pixels: only the version check keeps them out.
    rewrite_cache(
        cache_file,
        format_version=np.array(cache.CACHE_FORMAT_VERSION - 1),
        train_images=np.zeros_like(expected.train_images),
    )
    reload_and_check(archive, expected, cache_file, monkeypatch)


@pytest.mark.parametrize(
    "change",
    ["labels-out-of-range", "short-labels", "wrong-image-shape", "missing-member", "stale-key"],
)
def test_inconsistent_cache_is_rebuilt(built_cache, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    archive, expected, cache_file = built_cache
    n = len(expected.train_labels)
    changes = {
        "labels-out-of-range": {"train_labels": np.full(n, 10, dtype=np.int64)},
        "short-labels": {"test_labels": expected.test_labels[:-1]},
        "wrong-image-shape": {"train_images": np.zeros((n, 32, 32, 4), dtype=np.uint8)},
        "stale-key": {"source_key": np.array("0" * 64), "train_images": np.zeros_like(expected.train_images)},
        "missing-member": {},
    }[change]
    if change == "missing-member":
        with np.load(cache_file) as npz:
            arrays = {name: npz[name] for name in npz.files if name != "classes"}
        with open(cache_file, "wb") as handle:
            np.savez(handle, **arrays)
    else:
        rewrite_cache(cache_file, **changes)
    reload_and_check(archive, expected, cache_file, monkeypatch)


def _load_in_child(source: str, cache: str, barrier, results, decodes) -> None:
    """Child process: wait for the sibling, load, report a digest of what it got and how often it decoded."""
    decode = imagefolder._decode_images

    def counted(*args: object) -> np.ndarray:
        with decodes.get_lock():
            decodes.value += 1
        return decode(*args)

    imagefolder._decode_images = counted  # this process's own copy of the module (fork)
    barrier.wait(timeout=30)
    train, test = load_datasets(DataConfig(source=source, cache_dir=cache))
    digest = hashlib.sha256()
    for array in (train.images, train.labels, test.images, test.labels):
        digest.update(np.ascontiguousarray(array).tobytes())
    results.put(digest.hexdigest())


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method")
@pytest.mark.filterwarnings(r"ignore:.*use of fork\(\) may lead to deadlocks:DeprecationWarning")
def test_two_processes_build_one_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = write_image_folder(tmp_path / "folder", train_per_class=20, test_per_class=5)
    archive = write_tar(tmp_path / "folder", tmp_path / "mini.tar.gz")
    cache = tmp_path / "shared-cache"
    context = multiprocessing.get_context("fork")
    barrier, results, decodes = context.Barrier(2), context.Queue(), context.Value("i", 0)
    children = [
        context.Process(target=_load_in_child, args=(str(archive), str(cache), barrier, results, decodes))
        for _ in range(2)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=60)
    alive = [child for child in children if child.is_alive()]
    for child in alive:
        child.kill()
    assert not alive, "a loader process hung"
    assert [child.exitcode for child in children] == [0, 0]
    digests = [results.get(timeout=5) for _ in children]
    want = hashlib.sha256()
    for array in (expected.train_images, expected.train_labels, expected.test_images, expected.test_labels):
        want.update(array.tobytes())
    assert digests == [want.hexdigest()] * 2
    assert decodes.value == 1, "the second process waits for the first one's cache instead of decoding again"
    (_cache_file,) = cache.glob("*.npz")  # exactly one cache file
    assert [p.name for p in cache.iterdir() if p.suffix == ".tmp"] == []
    counter = DecodeCounter(monkeypatch)
    train, test = load_datasets(DataConfig(source=str(archive), cache_dir=str(cache)))
    assert counter.calls == 0, "the cache both processes left is valid"
    assert_matches(train, test, expected, "imagefolder-tar")
