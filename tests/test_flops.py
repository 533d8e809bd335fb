"""FLOP accounting against hand-computed values, and the peak calibration."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from resnet_lab.devices import device_marks
from resnet_lab.errors import LabError
from resnet_lab.model import resnet18
from resnet_lab.perf import flops as flops_module
from resnet_lab.perf.flops import achieved_flops, fast_dtype_supported, measure_peak_flops, mfu, train_step_flops

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=device_marks("cuda")),
]


def conv_flops(c_in: int, c_out: int, k: int, h_out: int, w_out: int, batch: int) -> int:
    """Forward FLOPs of a conv: one multiply-add (2 FLOPs) per weight per output position."""
    return 2 * c_in * c_out * k * k * h_out * w_out * batch


def linear_flops(d_in: int, d_out: int, batch: int) -> int:
    return 2 * d_in * d_out * batch


def tiny_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_tiny_model_counts_by_hand(device: str) -> None:
    record = train_step_flops(tiny_model(), batch_size=2, device=device, image_size=8)
    conv = conv_flops(3, 4, 3, 8, 8, batch=2)  # 27,648
    linear = linear_flops(256, 10, batch=2)  # 10,240; the bias add of addmm counts 0
    assert record["forward_flops"] == conv + linear
    # Backward: each matmul-class op has a weight gradient (same FLOPs as its
    # forward) and an input gradient (same again) only where the input needs a
    # gradient: the linear's input does, the conv's input (the image) does not.
    assert record["backward_flops"] == conv + 2 * linear
    assert record["flops_per_step"] == 2 * conv + 3 * linear == 86_016
    assert record["flops_per_image"] == 43_008 and type(record["flops_per_image"]) is int
    assert (record["batch_size"], record["image_size"], record["counted_on"]) == (2, 8, device)


def resnet18_step_flops_by_hand(batch: int, num_classes: int = 10) -> tuple[int, int]:
    """(forward, backward) FLOPs of the lab's CIFAR ResNet-18, from its architecture (LAB_SPEC)."""
    size, width = 32, 64
    stem = conv_flops(3, 64, 3, size, size, batch)
    forward = stem
    for group_width, group_stride in zip((64, 128, 256, 512), (1, 2, 2, 2), strict=True):
        for block_stride in (group_stride, 1):
            size //= block_stride
            forward += conv_flops(width, group_width, 3, size, size, batch)  # conv1
            forward += conv_flops(group_width, group_width, 3, size, size, batch)  # conv2
            if block_stride != 1 or width != group_width:
                forward += conv_flops(width, group_width, 1, size, size, batch)  # projection shortcut
            width = group_width
    assert size == 4  # avg_pool2d(., 4) then gives 512 features
    forward += linear_flops(512, num_classes, batch)
    # Every conv and the linear get weight + input gradients, except the stem: the image needs none.
    backward = 2 * forward - stem
    return forward, backward


def test_resnet18_step_matches_hand_derivation() -> None:
    forward, backward = resnet18_step_flops_by_hand(batch=128)
    record = train_step_flops(resnet18(), batch_size=128)
    assert record["forward_flops"] == pytest.approx(forward, rel=0.01)
    assert record["backward_flops"] == pytest.approx(backward, rel=0.01)
    assert record["flops_per_step"] == pytest.approx(forward + backward, rel=0.01)
    # The lab's order of magnitude: ~1.11 GFLOP per image forward, ~426 GFLOP per step of 128.
    assert 1.10e9 < record["forward_flops"] / 128 < 1.12e9
    assert 420e9 < record["flops_per_step"] < 430e9


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_counting_leaves_the_model_untouched(device: str) -> None:
    model = resnet18().eval()
    model.linear.weight.grad = torch.ones_like(model.linear.weight)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    record = train_step_flops(model, batch_size=2, device=device)
    after = model.state_dict()
    assert before.keys() == after.keys()
    for name, tensor in before.items():
        assert torch.equal(tensor, after[name]), name  # weights, BN running stats, num_batches_tracked
    assert not model.training
    assert torch.equal(model.linear.weight.grad, torch.ones_like(model.linear.weight))
    assert all(p.grad is None for name, p in model.named_parameters() if name != "linear.weight")
    assert all(t.device.type == "cpu" for t in after.values())
    # A real step (slow on CPU, hence only here) counts what the shape-only meta step counts.
    assert record == train_step_flops(model, batch_size=2, device="meta") | {"counted_on": device}


@pytest.mark.parametrize(("batch_size", "image_size"), [(0, 32), (8, 0)])
def test_train_step_flops_rejects_bad_sizes(batch_size: int, image_size: int) -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        train_step_flops(tiny_model(), batch_size=batch_size, image_size=image_size)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_peak_calibration_is_positive_and_quick(device: str, dtype: torch.dtype) -> None:
    if not fast_dtype_supported(device, dtype):
        with pytest.raises(LabError, match="no native"):
            measure_peak_flops(device, dtype, size=128, seconds=0.05)
        return
    record = measure_peak_flops(device, dtype, size=128, seconds=0.05, rounds=2)
    assert math.isfinite(record["peak_flops_per_s"]) and record["peak_flops_per_s"] > 0
    assert record["peak_flops_per_s"] >= record["median_flops_per_s"] > 0
    assert record["matmul_n"] == 128 and record["repeats"] >= 1 and record["rounds"] == 2
    assert record["dtype"] == str(dtype).removeprefix("torch.")


def test_peak_refuses_an_emulated_dtype() -> None:
    # No x86 CPU path multiplies float16 natively in oneDNN here: calibrating it would time an emulation.
    with pytest.raises(LabError) as err:
        measure_peak_flops("cpu", torch.float16, size=64)
    assert str(err.value) == (
        "cpu has no native float16 matmul, so it has no meaningful peak; "
        "calibrate float32 instead (or bfloat16 on a CPU with AVX512_BF16/AMX or a CUDA GPU of sm_80+)"
    )


def test_cpu_calibration_makes_no_cuda_call(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args, **kwargs):
        raise AssertionError("a CUDA call during a CPU calibration")

    monkeypatch.setattr(torch.cuda, "synchronize", boom)
    assert measure_peak_flops("cpu", size=64, seconds=0.01, rounds=1)["peak_flops_per_s"] > 0


def test_peak_default_size_is_per_device() -> None:
    assert measure_peak_flops("cpu", seconds=0.01, rounds=1)["matmul_n"] == 2048


def test_achieved_flops_and_mfu() -> None:
    assert achieved_flops(426e9, steps=10, seconds=2.0) == pytest.approx(2.13e12)
    assert mfu(1e12, 4e12) == pytest.approx(0.25)
    assert mfu(0.0, 1.0) == 0.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: achieved_flops(1e9, 1, 0.0), "seconds must be > 0"),
        (lambda: achieved_flops(1e9, -1, 1.0), "must be >= 0"),
        (lambda: mfu(1e9, 0.0), "positive finite"),
        (lambda: mfu(1e9, math.inf), "positive finite"),
        (lambda: mfu(-1.0, 1e9), "must be >= 0"),
    ],
    ids=["zero-seconds", "negative-steps", "zero-peak", "infinite-peak", "negative-achieved"],
)
def test_bad_numbers_raise_value_error(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


class MatmulClock:
    """Fake time for calibration: each torch.mm costs `tick` x the slowdown of the timed block it falls in.

    The clock starts far from 0, so a start time added instead of subtracted shows.
    """

    def __init__(
        self, tick: float, warmup_calls: int, repeats: int, slowdown: tuple[int, ...] = (1, 1, 1, 1, 1)
    ) -> None:
        self.tick, self.warmup_calls, self.repeats, self.slowdown = tick, warmup_calls, repeats, slowdown
        self.seconds = 4096.0
        self.calls = 0
        self.operands: list[tuple[str, str, torch.Tensor | None]] = []  # (a's device, b's device, out) per call

    def now(self) -> float:
        return self.seconds

    def cost(self) -> float:
        if self.calls < self.warmup_calls:
            return self.tick
        return self.tick * self.slowdown[(self.calls - self.warmup_calls) // self.repeats]


@pytest.fixture
def fake_matmul(monkeypatch: pytest.MonkeyPatch):
    """Install a MatmulClock as the calibration's timer and torch.mm's cost; returns a factory."""
    real_mm = torch.mm

    def install(clock: MatmulClock) -> MatmulClock:
        def timed_mm(a, b, *, out=None):
            clock.seconds += clock.cost()
            clock.calls += 1
            clock.operands.append((a.device.type, b.device.type, out))
            return real_mm(a, b) if out is None else real_mm(a, b, out=out)

        monkeypatch.setattr(flops_module, "synced_timer", lambda device: clock.now)
        monkeypatch.setattr(torch, "mm", timed_mm)
        return clock

    return install


def test_peak_counts_two_n_cubed_flops_per_matmul_over_the_best_block(fake_matmul) -> None:
    """Defaults (1 s, 5 rounds), a matmul costing 1/64 s: the warm-up runs until 1/5 s has passed, i.e.
    13 calls (12/64 < 0.2 <= 13/64), so a call takes 1/64 s and each block is ceil(0.8 / 5 * 64) = 11 calls."""
    clock = fake_matmul(MatmulClock(tick=1 / 64, warmup_calls=13, repeats=11, slowdown=(2, 1, 4, 1, 3)))
    n = 8
    record = measure_peak_flops("cpu", size=n)
    flops_per_matmul = 2 * n * n * n  # n^2 outputs, each n multiply-adds of 2 FLOPs
    assert record["peak_flops_per_s"] == pytest.approx(flops_per_matmul / clock.tick)  # the 1x block
    assert record["median_flops_per_s"] == pytest.approx(
        flops_per_matmul / (2 * clock.tick)
    )  # slowdowns sorted: 1, 1, 2, 3, 4
    assert (record["repeats"], record["rounds"], record["matmul_n"]) == (11, 5, n)
    assert clock.calls == 13 + 5 * 11
    assert record["device"] == "cpu" and record["dtype"] == "float32"
    assert record["float32_matmul_precision"] == torch.get_float32_matmul_precision()


def test_every_matmul_writes_into_one_preallocated_output(fake_matmul) -> None:
    """No allocation inside the timing: the peak is the matmul's rate alone."""
    clock = fake_matmul(MatmulClock(tick=1 / 64, warmup_calls=13, repeats=11))
    measure_peak_flops("cpu", size=8)
    outs = {id(out) for _, _, out in clock.operands}
    out = clock.operands[0][2]
    assert len(outs) == 1 and out is not None and out.shape == (8, 8) and out.dtype == torch.float32


def test_warmup_ends_once_a_fifth_of_the_time_has_passed(fake_matmul) -> None:
    # seconds = 65/64: a fifth is exactly 13 calls of 1/64 s, so the warm-up stops at 13, not 14
    clock = fake_matmul(MatmulClock(tick=1 / 64, warmup_calls=13, repeats=11))
    record = measure_peak_flops("cpu", size=4, seconds=65 / 64, rounds=5)
    assert (clock.calls, record["repeats"]) == (13 + 5 * 11, 11)  # ceil(65/64 x 0.8 / 5 x 64) = ceil(10.4)


def test_a_slow_matmul_still_warms_up_twice_and_times_one_call_per_block(fake_matmul) -> None:
    clock = fake_matmul(MatmulClock(tick=1.0, warmup_calls=2, repeats=1))
    record = measure_peak_flops("cpu", size=4, seconds=1.0, rounds=5)
    assert (clock.calls, record["repeats"]) == (2 + 5, 1)
    assert record["peak_flops_per_s"] == pytest.approx(2 * 4**3 / 1.0)


def test_peak_of_a_1x1_matmul(fake_matmul) -> None:
    fake_matmul(MatmulClock(tick=1 / 64, warmup_calls=13, repeats=11))
    assert measure_peak_flops("cpu", size=1)["peak_flops_per_s"] == pytest.approx(2 * 64)


def test_other_device_types_calibrate_the_fallback_size_on_that_device(
    fake_matmul, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A device type without its own size (meta here) uses FALLBACK_MATMUL_N, and the matrices live on it."""
    monkeypatch.setattr(flops_module, "FALLBACK_MATMUL_N", 8)
    clock = fake_matmul(MatmulClock(tick=1 / 64, warmup_calls=13, repeats=11))
    record = measure_peak_flops("meta")
    assert (record["matmul_n"], record["device"]) == (8, "meta")
    assert {(a, b, out.device.type) for a, b, out in clock.operands} == {("meta", "meta", "meta")}
    assert record["peak_flops_per_s"] == pytest.approx(2 * 8**3 * 64)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seconds": 0.0}, "seconds must be > 0 and rounds >= 1, got 0.0 and 5"),
        ({"rounds": 0}, "seconds must be > 0 and rounds >= 1, got 1.0 and 0"),
        ({"size": 0}, "size must be >= 1, got 0"),
    ],
)
def test_peak_rejects_bad_arguments(kwargs, message) -> None:
    with pytest.raises(ValueError) as err:
        measure_peak_flops("cpu", **kwargs)
    assert str(err.value) == message


def test_default_step_is_the_lab_batch_of_128() -> None:
    record = train_step_flops(tiny_model(), image_size=8)
    assert record["batch_size"] == 128
    assert (
        record["flops_per_step"] == 128 * train_step_flops(tiny_model(), batch_size=1, image_size=8)["flops_per_step"]
    )


def test_one_image_of_one_pixel() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.Flatten(), nn.Linear(4, 10))
    record = train_step_flops(model, batch_size=1, image_size=1)
    conv, linear = conv_flops(3, 4, 1, 1, 1, batch=1), linear_flops(4, 10, batch=1)
    # backward: the conv's weight gradient only (the image needs none), the linear's weight and input gradients
    assert (record["forward_flops"], record["backward_flops"]) == (conv + linear, conv + 2 * linear)
    assert (record["batch_size"], record["image_size"], record["flops_per_image"]) == (1, 1, 2 * conv + 3 * linear)


def test_achieved_flops_of_nothing_is_zero() -> None:
    assert achieved_flops(426e9, steps=0, seconds=2.0) == 0.0
    assert achieved_flops(0, steps=10, seconds=2.0) == 0.0
