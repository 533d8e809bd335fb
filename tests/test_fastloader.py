"""DeviceLoader and normalize_batch against hand-built references.

Test images carry their own coordinates: channel 0 holds row + 1, channel 1
holds column + 1 (so 0 only where zero padding shows), channel 2 random bytes
unique to the image. From one output pixel the crop offset and flip can be read
back, and the whole image is then checked against a crop of the zero-padded
source built independently here.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from codedimages import coded_images, decode
from PIL import Image
from torchvision import transforms

from resnet_lab.data import CIFAR10_MEAN, CIFAR10_STD
from resnet_lab.data.device_loader import DeviceLoader, normalize_batch
from resnet_lab.devices import device_marks, requires

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=device_marks("cuda")),
]


def reference(images: np.ndarray, source: torch.Tensor, shift_y, shift_x, flipped) -> torch.Tensor:
    """RandomCrop(32, padding=4) then flip, one image at a time, as (B, 3, 32, 32)."""
    padded = F.pad(torch.from_numpy(images).permute(0, 3, 1, 2), (4, 4, 4, 4))  # zero fill
    out = []
    for s, dy, dx, f in zip(source.tolist(), shift_y.tolist(), shift_x.tolist(), flipped.tolist(), strict=True):
        crop = padded[s, :, 4 + dy : 36 + dy, 4 + dx : 36 + dx]
        out.append(crop.flip(2) if f else crop)
    return torch.stack(out)


def epoch(loader: DeviceLoader) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*loader, strict=True)
    return torch.cat(xs).cpu(), torch.cat(ys).cpu()


def chi_square_sf_even_dof(statistic: float, dof: int) -> float:
    """P(X >= statistic) for X ~ chi-square with an even number of degrees of freedom (closed form)."""
    half = statistic / 2
    return math.exp(-half) * sum(half**i / math.factorial(i) for i in range(dof // 2))


@pytest.mark.parametrize("device", DEVICES)
def test_every_output_is_a_padded_crop_of_its_source_flipped_or_not(device: str) -> None:
    images = coded_images(300)
    loader = DeviceLoader(images, np.arange(300), batch_size=64, device=device, seed=3)
    for _ in range(2):
        x, y = epoch(loader)
        assert x.dtype == torch.uint8 and x.shape == (300, 3, 32, 32)
        assert y.dtype == torch.int64
        shift_y, shift_x, flipped = decode(x)
        assert shift_y.abs().max() <= 4 and shift_x.abs().max() <= 4
        assert torch.equal(x, reference(images, y, shift_y, shift_x, flipped))


def test_epoch_plan_describes_the_batches() -> None:
    images = coded_images(200)
    loader = DeviceLoader(images, np.arange(200), batch_size=50, seed=5)
    plan = loader.epoch_plan(0)
    x, y = epoch(loader)
    shift_y, shift_x, flipped = decode(x)
    assert torch.equal(y, plan["order"])
    assert torch.equal(shift_y, plan["shift_y"]) and torch.equal(shift_x, plan["shift_x"])
    assert torch.equal(flipped, plan["flip"].bool())


def test_batches_are_device_resident_with_channels_last_strides() -> None:
    loader = DeviceLoader(coded_images(10), np.arange(10), batch_size=4)
    x, y = next(iter(loader))
    assert x.shape == (4, 3, 32, 32) and x.is_contiguous(memory_format=torch.channels_last)
    assert x.device == y.device == torch.device("cpu")


def test_crop_offsets_uniform_over_81_and_flip_rate_half() -> None:
    # 2,000 images x 10 epochs = 20,000 draws: about 247 per offset cell.
    n, epochs = 2_000, 10
    loader = DeviceLoader(coded_images(n), np.arange(n), batch_size=500, seed=0)
    draws = [decode(epoch(loader)[0]) for _ in range(epochs)]
    shift_y = torch.cat([d[0] for d in draws])
    shift_x = torch.cat([d[1] for d in draws])
    flipped = torch.cat([d[2] for d in draws])
    samples = n * epochs

    cells = torch.bincount((shift_y + 4) * 9 + (shift_x + 4), minlength=81).double()
    assert cells.numel() == 81 and cells.min() > 0
    expected = samples / 81
    statistic = float(((cells - expected) ** 2 / expected).sum())
    # Uniform draws give p ~ U(0, 1); p > 1e-3 rejects a correct loader with
    # probability 1e-3 at most (and never for this fixed seed), while a missing
    # shift or a 0..7 randint (72 cells) makes the statistic thousands.
    assert chi_square_sf_even_dof(statistic, 80) > 1e-3, statistic

    # Flips: Binomial(20,000, 0.5) has sd 70.7 flips (0.35%); 5 sd is +-1.77%.
    sd = math.sqrt(samples * 0.25) / samples
    assert abs(float(flipped.double().mean()) - 0.5) < 5 * sd


def test_every_image_once_per_epoch_and_epochs_differ() -> None:
    loader = DeviceLoader(coded_images(500), np.arange(500), batch_size=128, seed=1)
    (x0, y0), (x1, y1) = epoch(loader), epoch(loader)
    assert torch.equal(y0.sort().values, torch.arange(500))
    assert torch.equal(y1.sort().values, torch.arange(500))
    assert not torch.equal(y0, y1)
    # The same images, augmented afresh: put epoch 1 in epoch 0's order and compare.
    x1_in_order0 = x1[torch.argsort(y1)][y0]
    assert not torch.equal(x0, x1_in_order0)


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    images, labels = coded_images(300), np.arange(300)
    a, b, c = (DeviceLoader(images, labels, batch_size=100, seed=s) for s in (7, 7, 8))
    for _ in range(2):
        xa, ya = epoch(a)
        xb, yb = epoch(b)
        _xc, yc = epoch(c)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert not torch.equal(ya, yc)


@pytest.mark.parametrize("drop_last", [False, True], ids=["keep-last", "drop-last"])
@pytest.mark.parametrize("per_gather", [2, 3, 100], ids=["2-batches", "3-batches", "whole-epoch"])
def test_gather_granularity_leaves_the_stream_unchanged(
    per_gather: int, drop_last: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CPU gathers one batch at a time, CUDA a whole epoch at once: both must give the same batches.
    images, labels = coded_images(290), np.arange(290)
    expected = list(DeviceLoader(images, labels, batch_size=32, seed=9, drop_last=drop_last))
    monkeypatch.setattr(DeviceLoader, "_batches_per_gather", lambda self: per_gather)
    got = list(DeviceLoader(images, labels, batch_size=32, seed=9, drop_last=drop_last))
    assert [x.shape[0] for x, _ in got] == [x.shape[0] for x, _ in expected]
    for (x, y), (x_ref, y_ref) in zip(got, expected, strict=True):
        assert torch.equal(x, x_ref) and torch.equal(y, y_ref)


@pytest.mark.cuda
@requires("cuda")
def test_cuda_stream_equals_cpu_stream() -> None:
    images, labels = coded_images(300), np.arange(300)
    on_cpu = DeviceLoader(images, labels, batch_size=100, seed=2)
    on_cuda = DeviceLoader(images, labels, batch_size=100, seed=2, device="cuda")
    xa, ya = epoch(on_cpu)
    xb, yb = epoch(on_cuda)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)


@pytest.mark.cuda
@requires("cuda")
def test_cuda_batches_need_no_host_sync() -> None:
    loader = DeviceLoader(coded_images(1000), np.arange(1000), batch_size=100, device="cuda")
    batches = iter(loader)
    next(batches)  # the epoch's plan is copied to the device here, once
    try:
        with warnings.catch_warnings():  # it warns that the debug mode is a prototype
            warnings.simplefilter("ignore", UserWarning)
            torch.cuda.set_sync_debug_mode("error")  # any synchronizing call (.item(), .tolist(), .cpu()) raises
        rest = [x.float().sum() + y.sum() for x, y in batches]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(rest) == 9


@pytest.mark.parametrize("device", DEVICES)
def test_eval_yields_unaugmented_images_in_order(device: str) -> None:
    images = coded_images(250)
    labels = np.arange(250) % 10
    loader = DeviceLoader(images, labels, batch_size=100, train=False, device=device)
    for _ in range(2):
        x, y = epoch(loader)
        assert torch.equal(x, torch.from_numpy(images).permute(0, 3, 1, 2))
        assert torch.equal(y, torch.from_numpy(labels))


def test_eval_batches_do_not_alias_the_store() -> None:
    loader = DeviceLoader(coded_images(10), np.arange(10), batch_size=10, train=False)
    x, y = next(iter(loader))
    x.zero_(), y.zero_()
    x2, y2 = next(iter(loader))
    assert x2.any() and torch.equal(y2, torch.arange(10))


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(
    ("count", "batch", "drop_last", "sizes"),
    [
        (300, 128, False, [128, 128, 44]),
        (300, 128, True, [128, 128]),
        (256, 128, True, [128, 128]),
        (256, 128, False, [128, 128]),
        (5, 8, False, [5]),
        (5, 8, True, []),
    ],
    ids=["partial", "drop-partial", "exact", "exact-keep", "one-short", "drop-all"],
)
def test_len_and_batch_sizes(count: int, batch: int, drop_last: bool, sizes: list[int], train: bool) -> None:
    loader = DeviceLoader(coded_images(count), np.arange(count), batch, train=train, drop_last=drop_last)
    assert len(loader) == len(sizes)
    assert [x.shape[0] for x, _ in loader] == sizes
    assert [y.shape[0] for _, y in loader] == sizes


def test_accepts_tensors_and_numpy_alike() -> None:
    images = coded_images(64)
    a = DeviceLoader(images, np.arange(64), batch_size=32, seed=4)
    b = DeviceLoader(torch.from_numpy(images), torch.arange(64, dtype=torch.int32), batch_size=32, seed=4)
    xa, ya = epoch(a)
    xb, yb = epoch(b)
    assert torch.equal(xa, xb) and torch.equal(ya, yb) and yb.dtype == torch.int64


def test_read_only_numpy_input_is_accepted_silently() -> None:
    images = coded_images(8)
    images.flags.writeable = False
    x, _ = epoch(DeviceLoader(images, np.arange(8), batch_size=8, train=False))
    assert torch.equal(x, torch.from_numpy(images.copy()).permute(0, 3, 1, 2))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"batch_size": -3}, "batch_size must be an integer >= 1"),
        ({"batch_size": 2.5}, "batch_size must be an integer >= 1"),
        ({"labels": np.arange(9)}, "differ in length: 10 images, 9 labels"),
        ({"images": coded_images(10).transpose(0, 3, 1, 2)}, r"shape \(N, H, W, 3\)"),
        ({"images": coded_images(10)[..., 0]}, r"shape \(N, H, W, 3\)"),
        ({"images": coded_images(10).astype(np.float32) / 255}, "must be uint8"),
        ({"images": torch.zeros(10, 32, 32, 3)}, "must be uint8"),
        ({"images": coded_images(0), "labels": np.arange(0)}, "images is empty"),
        ({"labels": np.zeros((10, 1), dtype=np.int64)}, "one-dimensional"),
        ({"labels": np.zeros(10, dtype=np.float32)}, "labels must be integers"),
        ({"labels": np.array(["cat"] * 10)}, "labels must be a numeric array"),
        ({"images": [[0]]}, "images must be a numpy array or a torch tensor"),
    ],
    ids=[
        "batch-0",
        "batch-negative",
        "batch-float",
        "length-mismatch",
        "chw-layout",
        "no-channels",
        "float-array",
        "float-tensor",
        "empty",
        "labels-2d",
        "labels-float",
        "labels-strings",
        "images-list",
    ],
)
def test_bad_arguments_raise_value_error(kwargs: dict, message: str) -> None:
    arguments = {"images": coded_images(10), "labels": np.arange(10), "batch_size": 4} | kwargs
    with pytest.raises(ValueError, match=message):
        DeviceLoader(**arguments)


@pytest.mark.parametrize("device", DEVICES)
def test_normalize_batch_matches_torchvision(device: str) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(16, 32, 32, 3), dtype=np.uint8)
    to_tensor = transforms.Compose([transforms.ToTensor(), transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    expected = torch.stack([to_tensor(Image.fromarray(image)) for image in images])
    x_uint8 = torch.from_numpy(images).to(device).permute(0, 3, 1, 2)  # channels_last strides, as the loader yields
    got = normalize_batch(x_uint8)
    assert got.dtype == torch.float32 and got.is_contiguous()
    torch.testing.assert_close(got.cpu(), expected, rtol=0, atol=1e-6)


def test_normalize_batch_dtype_and_memory_format() -> None:
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    got = normalize_batch(x, dtype=torch.bfloat16, memory_format=torch.channels_last)
    assert got.dtype == torch.bfloat16 and got.is_contiguous(memory_format=torch.channels_last)
    # bf16 keeps 8 significant bits: |value| < 2.8, so one rounding step is < 2**-7 * 2.8 / 2.
    torch.testing.assert_close(got.float(), normalize_batch(x), rtol=0, atol=2.8 * 2**-8)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.zeros(2, 3, 4, 4), "expects uint8"),
        (torch.zeros(2, 4, 4, 3, dtype=torch.uint8), r"expects \(B, 3, H, W\)"),
    ],
    ids=["float", "hwc"],
)
def test_normalize_batch_rejects_bad_input(x: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        normalize_batch(x)
