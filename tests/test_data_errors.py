"""Every way a data source or setting can be wrong: a DataError whose message names the problem (the cache's
defences against bad cache files: test_cache.py).
"""

from __future__ import annotations

import gzip
import re
import shutil
import tarfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torchvision
from datafixtures import (
    accept_cifar_root,
    random_images,
    write_cifar_root,
    write_image_folder,
    write_tar,
)
from PIL import Image

from resnet_lab.data import (
    ACCEPTED_LAYOUTS,
    DataConfig,
    DataError,
    LabDataset,
    LoaderConfig,
    describe_source,
    imagefolder,
    load_datasets,
    make_test_loader,
    make_train_loader,
)
from resnet_lab.errors import LabError

pytestmark = pytest.mark.usefixtures("private_cache")  # conftest.py: no test touches the user's cache


def load_error(source: Path | str, **config: object) -> str:
    with pytest.raises(DataError) as caught:
        load_datasets(DataConfig(source=str(source), **config))
    message = str(caught.value)
    assert "\n" not in message, "the CLI shows the message as one line"
    return message


def assert_lists_layouts(message: str) -> None:
    for layout in ACCEPTED_LAYOUTS:
        assert layout in message


def test_data_error_is_a_lab_error() -> None:
    assert issubclass(DataError, LabError)  # the CLI turns LabError into exit status 2


# ----------------------------------------------------------------------------- paths and layouts


def test_missing_path(tmp_path: Path) -> None:
    message = load_error(tmp_path / "nowhere")
    assert f"data path {tmp_path / 'nowhere'} does not exist" in message
    assert "--data synthetic" in message


def test_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    message = load_error(tmp_path / "empty")
    assert "empty" in message and str(tmp_path / "empty") in message
    assert_lists_layouts(message)


def test_unrecognized_directory(tmp_path: Path) -> None:
    (tmp_path / "odd" / "images").mkdir(parents=True)
    (tmp_path / "odd" / "labels.csv").write_text("a,b\n")
    message = load_error(tmp_path / "odd")
    assert "unrecognized layout" in message and "images" in message and "labels.csv" in message
    assert_lists_layouts(message)
    with pytest.raises(DataError, match="unrecognized layout"):
        describe_source(str(tmp_path / "odd"))


def test_file_that_is_not_an_archive(tmp_path: Path) -> None:
    (tmp_path / "cifar.zip").write_bytes(b"PK\3\4")
    message = load_error(tmp_path / "cifar.zip")
    assert "cifar.zip" in message and "not a .tar.gz" in message
    assert_lists_layouts(message)


def test_path_that_is_neither_folder_nor_file() -> None:
    message = load_error(Path("/dev/null"))  # a character device
    assert "/dev/null is neither a folder nor a .tar.gz" in message
    assert_lists_layouts(message)


@pytest.mark.parametrize("as_archive", [False, True], ids=["folder", "archive"])
def test_not_an_image(tmp_path: Path, as_archive: bool) -> None:
    write_image_folder(tmp_path / "folder", train_per_class=1, test_per_class=1)
    (tmp_path / "folder" / "train" / "cat" / "0005.jpg").write_text("this is a text file with a .jpg name")
    source = write_tar(tmp_path / "folder", tmp_path / "x.tar.gz") if as_archive else tmp_path / "folder"
    message = load_error(source)
    assert "train/cat/0005.jpg" in message and "not a readable image" in message and str(source) in message


def test_bad_image_is_named_when_decoded_in_parallel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_image_folder(tmp_path / "folder", train_per_class=3, test_per_class=2)
    (tmp_path / "folder" / "test" / "ship" / "0001.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    monkeypatch.setattr(imagefolder, "_POOL_MIN_IMAGES", 1)
    monkeypatch.setattr(imagefolder, "cpu_count", lambda: 2)  # 50 images in 8 chunks: the bad one is in a later chunk
    message = load_error(tmp_path / "folder")
    assert "test/ship/0001.jpg" in message and "not a readable image" in message


def test_truncated_jpeg(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "folder", train_per_class=1, test_per_class=1)
    target = tmp_path / "folder" / "test" / "dog" / "0007.jpg"
    Image.fromarray(random_images(1, 9)[0]).save(target, quality=90)
    target.write_bytes(target.read_bytes()[:-300])
    message = load_error(tmp_path / "folder")
    assert "test/dog/0007.jpg" in message and "truncated" in message


@pytest.mark.parametrize("size", [(33, 32), (64, 64)])
def test_wrong_image_size(tmp_path: Path, size: tuple[int, int]) -> None:
    write_image_folder(tmp_path / "folder", train_per_class=1, test_per_class=1)
    Image.new("RGB", size).save(tmp_path / "folder" / "train" / "frog" / "0003.png")
    message = load_error(tmp_path / "folder")
    assert "train/frog/0003.png" in message and f"{size[0]}x{size[1]} pixels" in message and "32x32" in message


@pytest.mark.parametrize(("remove_from", "other"), [("test", "train"), ("train", "test")])
def test_class_folder_missing_from_one_split(tmp_path: Path, remove_from: str, other: str) -> None:
    write_image_folder(tmp_path / "folder", train_per_class=1, test_per_class=1)
    shutil.rmtree(tmp_path / "folder" / remove_from / "horse")
    message = load_error(tmp_path / "folder")
    assert f"{other}/horse" in message and f"missing from {remove_from}/" in message


def test_split_missing(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "folder", train_per_class=1, test_per_class=1)
    shutil.rmtree(tmp_path / "folder" / "test")
    message = load_error(tmp_path / "folder")
    assert "no test/<class>/ images" in message


@pytest.mark.parametrize("count", [9, 11])
def test_class_count_must_be_ten(tmp_path: Path, count: int) -> None:
    names = tuple(f"class{i:02d}" for i in range(count))
    write_image_folder(tmp_path / "folder", classes=names, train_per_class=1, test_per_class=1)
    message = load_error(tmp_path / "folder")
    assert f"found {count} class folders" in message and "class00, class01" in message and "CIFAR-10 has 10" in message


@pytest.mark.parametrize("damage", ["truncated", "garbage", "bad-gzip"])
def test_corrupt_archive(tmp_path: Path, damage: str) -> None:
    write_image_folder(tmp_path / "folder", train_per_class=3, test_per_class=2)
    archive = write_tar(tmp_path / "folder", tmp_path / "mini.tar.gz")
    payload = archive.read_bytes()
    if damage == "truncated":
        archive.write_bytes(payload[: len(payload) // 2])
    elif damage == "garbage":
        archive.write_bytes(np.random.default_rng(0).bytes(4096))
    else:  # a valid gzip header, then noise: the inflater fails mid-stream
        archive.write_bytes(payload[:20] + np.random.default_rng(1).bytes(len(payload) - 20))
    message = load_error(archive)
    assert str(archive) in message and "truncated or corrupted" in message


def test_archive_without_images(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    archive = tmp_path / "empty.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "notes.txt", arcname="notes.txt")
    message = load_error(archive)
    assert "no images found" in message and str(archive) in message


# ----------------------------------------------------------------------------- torchvision root


@pytest.mark.parametrize("damage", ["truncated", "altered", "missing"])
def test_torchvision_integrity_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    write_cifar_root(tmp_path)
    accept_cifar_root(monkeypatch, tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    payload = batch.read_bytes()
    if damage == "truncated":
        batch.write_bytes(payload[:-100])
    elif damage == "altered":
        batch.write_bytes(payload[:-10] + bytes(b ^ 0xFF for b in payload[-10:]))
    else:
        batch.unlink()
    message = load_error(tmp_path)
    assert str(tmp_path) in message and "integrity check" in message
    assert "cifar-10-batches-py/data_batch_3" in message and "data_batch_1" not in message


def test_torchvision_metadata_integrity_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cifar_root(tmp_path)
    accept_cifar_root(monkeypatch, tmp_path)
    meta = tmp_path / "cifar-10-batches-py" / "batches.meta"
    meta.write_bytes(meta.read_bytes() + b"x")
    message = load_error(tmp_path)
    assert "integrity check" in message and "batches.meta" in message


@pytest.mark.parametrize("exists", [True, False], ids=["empty-dir", "new-dir"])
def test_download_failure_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exists: bool) -> None:
    calls = []

    def offline(url: str, *args: object, **kwargs: object) -> None:
        calls.append(url)
        raise URLError("[Errno -3] Temporary failure in name resolution")

    # Never touch the network: torchvision's download entry point fails as it would offline.
    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", offline)
    root = tmp_path / "cifar"
    if exists:
        root.mkdir()
    message = load_error(root, download=True)
    assert calls == [torchvision.datasets.CIFAR10.url]
    assert f"downloading CIFAR-10 into {root} failed" in message and "name resolution" in message


def test_no_download_unless_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("downloaded without download=True")

    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", forbidden)
    write_cifar_root(tmp_path)  # md5s not accepted: the real table does not match the miniature files
    message = load_error(tmp_path)
    assert "integrity check" in message


def test_download_only_for_torchvision_roots(tmp_path: Path) -> None:
    message = load_error("synthetic", download=True)
    assert "download applies only to a torchvision CIFAR-10 root" in message


# ----------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("fields", "pattern"),
    [
        ({"train_size": 0}, "train_size must be >= 1, got 0"),
        ({"test_size": -5}, "test_size must be >= 1, got -5"),
        ({"seed": -1}, "seed must be >= 0"),
        ({"train_size": True}, "train_size must be an integer"),
        ({"source": ""}, "data source must be"),
    ],
)
def test_bad_data_config(fields: dict[str, object], pattern: str) -> None:
    with pytest.raises(DataError, match=re.escape(pattern)):
        DataConfig(**fields)


@pytest.mark.parametrize(
    ("fields", "pattern"),
    [
        ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
        ({"test_batch_size": 0}, "test_batch_size must be >= 1, got 0"),
        ({"num_workers": -1}, "num_workers must be >= 0, got -1"),
        ({"batch_size": 2.5}, "batch_size must be an integer"),
        ({"num_workers": 0, "prefetch_factor": 2}, "prefetch_factor needs worker processes"),
        ({"num_workers": 0, "persistent_workers": True}, "persistent_workers needs worker processes"),
        ({"prefetch_factor": 0}, "prefetch_factor must be >= 1"),
    ],
)
def test_bad_loader_config(fields: dict[str, object], pattern: str) -> None:
    with pytest.raises(DataError, match=re.escape(pattern)):
        LoaderConfig(**fields)


def test_batch_larger_than_dataset() -> None:
    train, test = load_datasets(DataConfig(train_size=100, test_size=50))
    with pytest.raises(DataError, match=re.escape("batch_size 128 is larger than the dataset (100 items)")):
        make_train_loader(train, LoaderConfig())
    with pytest.raises(DataError, match=re.escape("test_batch_size 100 is larger than the dataset (50 items)")):
        make_test_loader(test, LoaderConfig())
    make_train_loader(train, LoaderConfig(batch_size=100))  # equal is fine


def test_bad_device() -> None:
    train, _ = load_datasets(DataConfig(train_size=10, test_size=10))
    with pytest.raises(DataError, match="unknown device 'gpu0'"):
        make_train_loader(train, LoaderConfig(batch_size=2), device="gpu0")


def test_bad_arrays_for_dataset() -> None:
    with pytest.raises(DataError, match=re.escape("(N, 32, 32, 3)")):
        LabDataset(np.zeros((2, 28, 28, 3), np.uint8), np.zeros(2), ("a",), "synthetic")
    with pytest.raises(DataError, match="labels must have shape"):
        LabDataset(np.zeros((2, 32, 32, 3), np.uint8), np.zeros(3), ("a",), "synthetic")


def test_unusable_cache_dir(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "folder", train_per_class=1, test_per_class=1)
    (tmp_path / "a-file").write_text("not a directory")
    message = load_error(tmp_path / "folder", cache_dir=str(tmp_path / "a-file" / "cache"))
    assert "cannot create cache directory" in message and "RESNET_LAB_CACHE" in message


def test_gzip_member_of_wrong_kind_is_corrupt(tmp_path: Path) -> None:
    # A gzip file that is not a tar inside: readable gzip, unreadable archive.
    archive = tmp_path / "plain.tgz"
    archive.write_bytes(gzip.compress(b"not a tar archive at all" * 100))
    message = load_error(archive)
    assert "truncated or corrupted" in message
