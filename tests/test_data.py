"""resnet_lab.data against hand-computed expectations: transforms, synthetic data, every source, cache, loaders."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from datafixtures import CLASSES, accept_cifar_root, assert_matches, write_cifar_root, write_image_folder, write_tar
from PIL import Image
from torchvision import transforms

from resnet_lab import data
from resnet_lab.data import (
    CIFAR10_CLASSES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    DataConfig,
    LabDataset,
    LoaderConfig,
    describe_source,
    imagefolder,
    load_datasets,
    make_test_loader,
    make_train_loader,
    train_transform,
)
from resnet_lab.data import test_transform as eval_transform  # keep pytest from collecting it

REAL_TARBALL = Path(__file__).resolve().parents[2] / "shared/datasets/cifar10-jpeg.tar.gz"


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never touch the user's ~/.cache: every test's default cache lives in its tmp_path."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("RESNET_LAB_CACHE", str(cache))
    return cache


def cache_files(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.npz")) if cache.exists() else []


# ----------------------------------------------------------------------------- constants and transforms


def test_constants_are_the_labs() -> None:
    assert CIFAR10_MEAN == (0.4914, 0.4822, 0.4465)
    assert CIFAR10_STD == (0.2023, 0.1994, 0.2010)
    assert CIFAR10_CLASSES == CLASSES


def test_transform_pipelines_are_the_labs() -> None:
    steps = train_transform().transforms
    assert [type(s) for s in steps] == [
        transforms.RandomCrop,
        transforms.RandomHorizontalFlip,
        transforms.ToTensor,
        transforms.Normalize,
    ]
    assert steps[0].size == (32, 32) and steps[0].padding == 4 and steps[1].p == 0.5
    assert tuple(steps[3].mean) == CIFAR10_MEAN and tuple(steps[3].std) == CIFAR10_STD
    assert [type(s) for s in eval_transform().transforms] == [transforms.ToTensor, transforms.Normalize]


def test_test_transform_normalizes_by_hand_and_is_deterministic() -> None:
    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    pixels[0, 0] = (255, 0, 128)
    out = eval_transform()(Image.fromarray(pixels))
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    # (x/255 - mean) / std, by hand, at the top-left pixel and at a zero pixel.
    expected_corner = [(1.0 - 0.4914) / 0.2023, (0.0 - 0.4822) / 0.1994, (128 / 255 - 0.4465) / 0.2010]
    torch.testing.assert_close(out[:, 0, 0], torch.tensor(expected_corner), rtol=0, atol=1e-5)
    torch.testing.assert_close(
        out[:, 5, 5], torch.tensor([-0.4914 / 0.2023, -0.4822 / 0.1994, -0.4465 / 0.2010]), rtol=0, atol=1e-5
    )
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    assert torch.equal(eval_transform()(image), eval_transform()(image))


def unnormalize(x: torch.Tensor) -> np.ndarray:
    """Back to 0..255 HWC integers (numpy: per-call torch overhead dominates at this size)."""
    hwc = x.numpy().transpose(1, 2, 0)
    return np.rint((hwc * np.array(CIFAR10_STD) + np.array(CIFAR10_MEAN)) * 255).astype(np.int64)


def test_train_transform_is_a_padded_crop_flipped_or_not() -> None:
    torch.manual_seed(0)
    # Random pixels in 1..255: zero appears only where the padding shows, and every crop is unique.
    source = np.random.default_rng(1).integers(1, 256, (32, 32, 3), dtype=np.uint8)
    padded = np.zeros((40, 40, 3), dtype=np.int64)
    padded[4:36, 4:36] = source
    keys = [(dy, dx, flip) for dy in range(9) for dx in range(9) for flip in (False, True)]
    crops = np.stack(
        [
            padded[dy : dy + 32, dx : dx + 32][:, ::-1] if flip else padded[dy : dy + 32, dx : dx + 32]
            for dy, dx, flip in keys
        ]
    )
    transform = train_transform()
    seen = []
    for _ in range(300):
        out = unnormalize(transform(Image.fromarray(source)))
        matches = np.flatnonzero((crops == out).all(axis=(1, 2, 3)))
        assert len(matches) == 1, "augmented image is not a 32x32 crop of the zero-padded source (flipped or not)"
        seen.append(keys[matches[0]])
    flips = {flip for _, _, flip in seen}
    offsets = {(dy, dx) for dy, dx, _ in seen}
    assert flips == {False, True}
    assert len(offsets) > 40  # 81 possible offsets, 300 draws: a fixed crop would show 1
    assert {dy for dy, _ in offsets} == set(range(9)) and {dx for _, dx in offsets} == set(range(9))


# ----------------------------------------------------------------------------- synthetic


def test_synthetic_full_size_shapes_balance_and_order() -> None:
    train, test = load_datasets()
    assert (len(train), len(test)) == (50_000, 10_000)
    assert train.images.shape == (50_000, 32, 32, 3) and test.images.shape == (10_000, 32, 32, 3)
    assert train.images.dtype == np.uint8 and train.images.flags["C_CONTIGUOUS"]
    assert train.labels.dtype == np.int64
    assert np.bincount(train.labels, minlength=10).tolist() == [5000] * 10
    assert np.bincount(test.labels, minlength=10).tolist() == [1000] * 10
    assert np.any(np.diff(train.labels) < 0), "labels must be shuffled, not sorted by class"
    assert train.classes == CIFAR10_CLASSES and train.source == "synthetic"
    image, label = train[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and label == int(train.labels[0])
    assert isinstance(label, int)


def test_synthetic_balance_when_not_divisible_by_ten() -> None:
    train, test = load_datasets(DataConfig(train_size=53, test_size=7))
    assert sorted(np.bincount(train.labels, minlength=10).tolist()) == [5] * 7 + [6] * 3
    assert sorted(np.bincount(test.labels, minlength=10).tolist()) == [0] * 3 + [1] * 7


def test_synthetic_is_deterministic_and_seeded() -> None:
    a_train, a_test = load_datasets(DataConfig(seed=3, train_size=200, test_size=50))
    b_train, b_test = load_datasets(DataConfig(seed=3, train_size=200, test_size=50))
    c_train, _ = load_datasets(DataConfig(seed=4, train_size=200, test_size=50))
    np.testing.assert_array_equal(a_train.images, b_train.images)
    np.testing.assert_array_equal(a_train.labels, b_train.labels)
    np.testing.assert_array_equal(a_test.images, b_test.images)
    assert not np.array_equal(a_train.images, c_train.images)
    assert not np.array_equal(a_train.images[:50], a_test.images), "train and test must be different images"


def test_synthetic_images_vary_but_classes_are_separable() -> None:
    train, test = load_datasets(DataConfig(train_size=2000, test_size=500))
    pixels = train.images.astype(np.float32)
    assert pixels.std(axis=(1, 2, 3)).min() > 10, "every image needs within-image variation, not a flat colour"
    same_class = pixels[train.labels == 0]
    assert np.abs(same_class[0] - same_class[1]).mean() > 10, "images of one class must differ"
    # Nearest class mean (per-channel colour) on the test split: chance is 0.1; the class cue must be strong.
    means = np.stack([pixels[train.labels == c].mean(axis=(0, 1, 2)) for c in range(10)])
    test_colour = test.images.astype(np.float32).mean(axis=(1, 2))
    predicted = np.argmin(((test_colour[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (predicted == test.labels).mean() > 0.6


# ----------------------------------------------------------------------------- sources


def test_describe_source_names_each_layout(tmp_path: Path) -> None:
    write_cifar_root(tmp_path / "tv", per_batch=1, test_count=1)
    write_image_folder(tmp_path / "folder", train_per_class=1, test_per_class=1)
    write_image_folder(tmp_path / "wrapped" / "cifar10", train_per_class=1, test_per_class=1)
    archive = write_tar(tmp_path / "folder", tmp_path / "x.tgz")
    assert describe_source("synthetic") == "synthetic"
    assert describe_source(str(tmp_path / "tv")) == "cifar10-torchvision"
    assert describe_source(str(tmp_path / "tv" / "cifar-10-batches-py")) == "cifar10-torchvision"
    assert describe_source(str(tmp_path / "folder")) == "imagefolder"
    assert describe_source(str(tmp_path / "wrapped")) == "imagefolder"
    assert describe_source(str(archive)) == "imagefolder-tar"


@pytest.mark.parametrize("given", ["root", "batches-dir"])
def test_torchvision_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    expected = write_cifar_root(tmp_path)
    accept_cifar_root(monkeypatch, tmp_path)
    source = tmp_path if given == "root" else tmp_path / "cifar-10-batches-py"
    train, test = load_datasets(DataConfig(source=str(source)))
    assert (len(train), len(test)) == (50, 20)
    assert_matches(train, test, expected, "cifar10-torchvision")


def test_image_folder_png_and_jpeg(tmp_path: Path) -> None:
    expected = write_image_folder(tmp_path / "folder")
    train, test = load_datasets(DataConfig(source=str(tmp_path / "folder")))
    assert (len(train), len(test)) == (20, 10)
    assert_matches(train, test, expected, "imagefolder")
    assert np.bincount(train.labels).tolist() == [2] * 10


def test_image_folder_labels_follow_sorted_folder_names(tmp_path: Path) -> None:
    names = tuple(f"k{9 - i}" for i in range(10))  # created in reverse order of their sort
    expected = write_image_folder(tmp_path / "folder", classes=names, train_per_class=1, test_per_class=1)
    train, _ = load_datasets(DataConfig(source=str(tmp_path / "folder")))
    assert train.classes == tuple(f"k{i}" for i in range(10))
    np.testing.assert_array_equal(train.labels, np.arange(10))
    np.testing.assert_array_equal(train.images, expected.train_images)


def test_image_folder_greyscale_becomes_rgb_and_other_files_are_ignored(tmp_path: Path) -> None:
    expected = write_image_folder(tmp_path / "folder", train_per_class=1, test_per_class=1)
    grey = np.arange(1024, dtype=np.uint16).reshape(32, 32).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "folder" / "train" / "airplane" / "0000.png")
    (tmp_path / "folder" / "train" / "airplane" / "notes.txt").write_text("not an image, not a listed file")
    (tmp_path / "folder" / "train" / ".DS_Store").write_bytes(b"\0\1")
    train, _ = load_datasets(DataConfig(source=str(tmp_path / "folder")))
    assert len(train) == 10
    np.testing.assert_array_equal(train.images[0], np.repeat(grey[:, :, None], 3, axis=2))
    np.testing.assert_array_equal(train.images[1:], expected.train_images[1:])


@pytest.mark.parametrize(
    ("name", "wrapper"),
    [("mini.tar.gz", None), ("mini.tgz", "cifar10"), ("mini.tar", None), ("wrapped.tar", "export")],
)
def test_image_folder_archive(tmp_path: Path, name: str, wrapper: str | None) -> None:
    expected = write_image_folder(tmp_path / "folder")
    archive = write_tar(tmp_path / "folder", tmp_path / name, wrapper)
    train, test = load_datasets(DataConfig(source=str(archive)))
    assert_matches(train, test, expected, "imagefolder-tar")


def test_parallel_decode_matches_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = write_image_folder(tmp_path / "folder", train_per_class=3, test_per_class=2)
    monkeypatch.setattr(imagefolder, "_POOL_MIN_IMAGES", 1)  # use the worker pool even for 50 images
    monkeypatch.setattr(imagefolder, "cpu_count", lambda: 2)
    train, test = load_datasets(DataConfig(source=str(tmp_path / "folder")))
    assert_matches(train, test, expected, "imagefolder")


# ----------------------------------------------------------------------------- cache


def forbid_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("images were decoded again instead of loaded from the cache")

    monkeypatch.setattr(imagefolder, "_decode_images", fail)


@pytest.mark.parametrize("kind", ["folder", "archive"])
def test_second_load_comes_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, private_cache: Path, kind: str
) -> None:
    expected = write_image_folder(tmp_path / "folder")
    source = tmp_path / "folder" if kind == "folder" else write_tar(tmp_path / "folder", tmp_path / "mini.tar.gz")
    first = load_datasets(DataConfig(source=str(source)))
    assert len(cache_files(private_cache)) == 1
    forbid_decoding(monkeypatch)
    train, test = load_datasets(DataConfig(source=str(source)))
    assert_matches(train, test, expected, first[0].source)


def test_cache_dir_setting_beats_environment(tmp_path: Path, private_cache: Path) -> None:
    write_image_folder(tmp_path / "folder", train_per_class=1, test_per_class=1)
    load_datasets(DataConfig(source=str(tmp_path / "folder"), cache_dir=str(tmp_path / "explicit")))
    assert len(cache_files(tmp_path / "explicit")) == 1
    assert cache_files(private_cache) == []


def test_changed_folder_is_rebuilt(tmp_path: Path, private_cache: Path) -> None:
    write_image_folder(tmp_path / "folder", train_per_class=1, test_per_class=1)
    before, _ = load_datasets(DataConfig(source=str(tmp_path / "folder")))
    target = tmp_path / "folder" / "train" / "bird" / "0000.png"
    new_pixels = np.full((32, 32, 3), 7, dtype=np.uint8)
    stat = target.stat()
    Image.fromarray(new_pixels).save(target)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a changed mtime even on coarse clocks
    after, _ = load_datasets(DataConfig(source=str(tmp_path / "folder")))
    np.testing.assert_array_equal(after.images[2], new_pixels)
    assert not np.array_equal(before.images[2], new_pixels)
    assert len(cache_files(private_cache)) == 1, "the stale cache is replaced, not kept beside the new one"


def test_changed_archive_is_rebuilt(tmp_path: Path, private_cache: Path) -> None:
    write_image_folder(tmp_path / "folder", train_per_class=1, test_per_class=1)
    archive = write_tar(tmp_path / "folder", tmp_path / "mini.tar.gz")
    load_datasets(DataConfig(source=str(archive)))
    new_pixels = np.full((32, 32, 3), 200, dtype=np.uint8)
    Image.fromarray(new_pixels).save(tmp_path / "folder" / "test" / "truck" / "0000.png")
    write_tar(tmp_path / "folder", archive)
    _, test = load_datasets(DataConfig(source=str(archive)))
    np.testing.assert_array_equal(test.images[9], new_pixels)


def test_cache_file_appears_only_when_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, private_cache: Path
) -> None:
    write_image_folder(tmp_path / "folder", train_per_class=1, test_per_class=1)
    decode = imagefolder._decode_images

    def decode_and_check(*args: object) -> np.ndarray:
        assert cache_files(private_cache) == [], "no cache file may exist before its contents are ready"
        return decode(*args)

    def savez_then_fail(handle, **arrays: np.ndarray) -> None:
        handle.write(b"PK\3\4 half a zip file")
        raise OSError("No space left on device")

    monkeypatch.setattr(imagefolder, "_decode_images", decode_and_check)
    monkeypatch.setattr(np, "savez", savez_then_fail)
    with pytest.raises(data.DataError, match="cannot write cache file"):
        load_datasets(DataConfig(source=str(tmp_path / "folder")))
    assert [p.name for p in private_cache.iterdir() if not p.name.endswith(".lock")] == [], (
        "a failed write leaves nothing behind"
    )
    monkeypatch.undo()
    monkeypatch.setenv("RESNET_LAB_CACHE", str(private_cache))
    load_datasets(DataConfig(source=str(tmp_path / "folder")))
    assert len(cache_files(private_cache)) == 1


# ----------------------------------------------------------------------------- loaders


def indexed_dataset(n: int) -> LabDataset:
    """Labels are the item indices, so a batch's labels show which items it holds."""
    images = np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    return LabDataset(images, np.arange(n), CIFAR10_CLASSES, "synthetic", eval_transform())


def epoch_labels(loader) -> list[int]:
    return [int(y) for _, labels in loader for y in labels]


def test_loader_batches_shapes_and_dtypes() -> None:
    train, test = load_datasets(DataConfig(train_size=100, test_size=30))
    config = LoaderConfig(batch_size=32, test_batch_size=10, num_workers=0)
    batches = list(make_train_loader(train, config))
    assert [len(y) for _, y in batches] == [32, 32, 32, 4]
    x, y = batches[0]
    assert x.shape == (32, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    dropped = make_train_loader(train, LoaderConfig(batch_size=32, num_workers=0, drop_last=True))
    assert [len(y) for _, y in dropped] == [32, 32, 32]
    test_batches = list(make_test_loader(test, config))
    assert [len(y) for _, y in test_batches] == [10, 10, 10]
    # The test loader keeps the dataset's order and applies the deterministic transform.
    assert torch.equal(torch.cat([y for _, y in test_batches]), torch.from_numpy(test.labels))
    assert torch.equal(test_batches[0][0][3], test[3][0])


def test_train_loader_shuffle_follows_the_seed() -> None:
    dataset = indexed_dataset(64)
    first = epoch_labels(make_train_loader(dataset, LoaderConfig(batch_size=16, num_workers=0, seed=5)))
    again = epoch_labels(make_train_loader(dataset, LoaderConfig(batch_size=16, num_workers=0, seed=5)))
    other = epoch_labels(make_train_loader(dataset, LoaderConfig(batch_size=16, num_workers=0, seed=6)))
    assert sorted(first) == list(range(64)), "an epoch visits every item once"
    assert first == again
    assert first != other and first != list(range(64))


def test_pin_memory_defaults_to_the_device() -> None:
    dataset = indexed_dataset(8)
    config = LoaderConfig(batch_size=4, test_batch_size=4, num_workers=0)
    assert make_train_loader(dataset, config, "cpu").pin_memory is False
    assert make_train_loader(dataset, config, torch.device("cuda")).pin_memory is True  # not iterated: no CUDA needed
    assert make_test_loader(dataset, LoaderConfig(test_batch_size=4, num_workers=0, pin_memory=True)).pin_memory is True


def test_seed_worker_derives_numpy_and_random_from_torch() -> None:
    import random

    torch.manual_seed(2**32 + 77)  # the worker's torch seed; numpy takes it modulo 2**32
    data.seed_worker(0)
    got = (np.random.randint(0, 2**31 - 1), random.random())
    np.random.seed(77)
    random.seed(77)
    assert got == (np.random.randint(0, 2**31 - 1), random.random())


class WorkerRandom(LabDataset):
    """Returns numpy's global random draw, which only `seed_worker` makes reproducible in workers."""

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.tensor(np.random.randint(0, 2**31 - 1)), int(self.labels[index])


def test_two_workers_reproducible_order_and_worker_seeds() -> None:
    images = np.zeros((32, 32, 32, 3), dtype=np.uint8)
    dataset = WorkerRandom(images, np.arange(32), CIFAR10_CLASSES, "synthetic")
    config = LoaderConfig(batch_size=4, num_workers=2, seed=11, prefetch_factor=2)

    def run() -> tuple[list[int], list[int]]:
        batches = list(make_train_loader(dataset, config))
        return [int(y) for _, ys in batches for y in ys], [int(v) for vs, _ in batches for v in vs]

    order, draws = run()
    assert sorted(order) == list(range(32))
    assert (order, draws) == run()
    single = epoch_labels(make_train_loader(dataset, LoaderConfig(batch_size=4, num_workers=0, seed=11)))
    assert order == single, "worker count must not change the shuffled order"
    assert len(set(draws)) > 16, "the two workers must not share one numpy stream"


# ----------------------------------------------------------------------------- the real JPEG export


@pytest.mark.real_data
def test_real_jpeg_tarball(monkeypatch: pytest.MonkeyPatch, private_cache: Path) -> None:
    if not REAL_TARBALL.exists():
        pytest.skip(f"real-data input {REAL_TARBALL} is absent (see shared/datasets/README.md)")
    train, test = load_datasets(DataConfig(source=str(REAL_TARBALL)))
    assert (len(train), len(test)) == (50_000, 10_000)
    assert train.classes == CIFAR10_CLASSES and train.source == "imagefolder-tar"
    assert np.bincount(train.labels).tolist() == [5000] * 10 and np.bincount(test.labels).tolist() == [1000] * 10
    mean = train.images.reshape(-1, 3).mean(axis=0) / 255
    np.testing.assert_allclose(mean, (0.4913, 0.4821, 0.4465), atol=0.002)
    forbid_decoding(monkeypatch)
    start = time.perf_counter()
    cached, _ = load_datasets(DataConfig(source=str(REAL_TARBALL)))
    assert time.perf_counter() - start < 5, "a cached load is a hash and a file read, far below this bound"
    np.testing.assert_array_equal(cached.images, train.images)
