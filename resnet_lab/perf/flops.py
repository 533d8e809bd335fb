"""Work accounting for model FLOPs utilization (MFU).

MFU = achieved FLOP/s of the model's matmul-class work / the device's peak FLOP/s.

* `train_step_flops` counts one training step (forward, cross-entropy, backward)
  with `torch.utils.flop_counter.FlopCounterMode`. That counter sees the
  convolution and matmul family of aten ops only, 2 FLOPs per multiply-add;
  BatchNorm, ReLU, pooling, the loss and the optimizer step count 0 (the usual
  MFU convention, as in the PaLM paper's appendix B). Backward counts exactly
  the gradients autograd asks for: the stem conv gets no input gradient, since
  the image does not require one.
* `measure_peak_flops` calibrates the "peak" as the sustained rate of a large
  square matmul on the device in the given dtype, so MFU is relative to what
  this machine and library actually reach, not a datasheet number.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..engine.clock import synced_timer
from ..errors import LabError

# Square matmul size for calibration: big enough to reach the BLAS plateau on
# each kind of device (2048^3 on a few CPU cores takes ~0.1 s; 8192 keeps a GPU's
# tensor cores busy for milliseconds per call, far above launch overhead).
DEFAULT_MATMUL_N = {"cpu": 2048, "cuda": 8192}
FALLBACK_MATMUL_N = 4096


def _meta_copy(model: nn.Module) -> nn.Module:
    """A copy of `model` whose parameters and buffers are shape-only meta tensors.

    deepcopy with a pre-filled memo: every tensor is replaced by its meta twin,
    so no weights are copied and nothing done to the copy reaches the original.
    """
    memo: dict[int, object] = {}
    for param in model.parameters():
        memo[id(param)] = nn.Parameter(torch.empty_like(param, device="meta"), requires_grad=param.requires_grad)
    for buffer in model.buffers():
        memo[id(buffer)] = torch.empty_like(buffer, device="meta")
    return copy.deepcopy(model, memo)


def _counting_copy(model: nn.Module, device: torch.device) -> nn.Module:
    # torch.compile wraps the module; count the eager original (the same ops).
    model = getattr(model, "_orig_mod", model)
    if device.type == "meta":
        return _meta_copy(model)
    return copy.deepcopy(model).to(device)


def train_step_flops(
    model: nn.Module,
    batch_size: int = 128,
    device: torch.device | str = "meta",
    image_size: int = 32,
) -> dict[str, int | str]:
    """FLOPs of one training step of `model` on a (batch_size, 3, image_size, image_size) batch.

    The step runs on a copy of the model in train mode, so the model's
    parameters, gradients and BatchNorm statistics are untouched. FLOPs depend
    only on shapes, so by default the copy lives on the "meta" device (no
    arithmetic: ~0.15 s for ResNet-18 at batch 128, vs ~4 s for a real step on
    2 CPU cores, with identical counts); pass a real device to count a real step.
    """
    if batch_size < 1 or image_size < 1:
        raise ValueError(f"batch_size and image_size must be >= 1, got {batch_size} and {image_size}")
    device = torch.device(device)
    counted = _counting_copy(model, device).train()
    images = torch.zeros((batch_size, 3, image_size, image_size), device=device)

    # Two counters, one per phase, so forward and backward are separated in one step.
    with FlopCounterMode(display=False) as forward:
        logits = counted(images)
        labels = torch.zeros(logits.shape[0], dtype=torch.long, device=device)
        loss = F.cross_entropy(logits, labels)
    with FlopCounterMode(display=False) as backward:
        loss.backward()

    forward_flops = int(forward.get_total_flops())
    backward_flops = int(backward.get_total_flops())
    return {
        "flops_per_step": forward_flops + backward_flops,
        "forward_flops": forward_flops,
        "backward_flops": backward_flops,
        "flops_per_image": (forward_flops + backward_flops) // batch_size,
        "batch_size": batch_size,
        "image_size": image_size,
        "counted_on": device.type,
    }


def fast_dtype_supported(device: torch.device | str, dtype: torch.dtype) -> bool:
    """Whether `device` multiplies `dtype` matrices natively (emulation would make a meaningless peak)."""
    device = torch.device(device)
    if dtype == torch.float32:
        return True
    if device.type == "cuda":  # cuda-only
        if dtype == torch.bfloat16:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        return dtype == torch.float16
    if device.type == "cpu" and dtype == torch.bfloat16:
        # oneDNN's native bf16 kernels need AVX512_BF16 or AMX; elsewhere bf16 is converted in software.
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def measure_peak_flops(
    device: torch.device | str,
    dtype: torch.dtype = torch.float32,
    size: int | None = None,
    seconds: float = 1.0,
    rounds: int = 5,
) -> dict[str, float | int | str]:
    """Sustained FLOP/s of a square (size x size) matmul on `device` in `dtype`.

    Warm-up (kernel selection, JIT, clocks ramping) runs for a fifth of
    `seconds`; then `rounds` timed blocks of `repeats` matmuls each fill the
    rest, each block synchronized at both ends. The peak is the best block:
    other processes can only slow a block down (on a shared machine one long
    block varies severalfold: results/README.md, "Peak calibration"), and
    calibration asks what the device can do. The median block is recorded beside it.

    Raises LabError for a dtype the device has no native matmul for (e.g.
    bfloat16 on a CPU without AVX512_BF16/AMX), rather than returning the speed
    of an emulation as a "peak". On CUDA, float32 uses TF32 when
    torch.get_float32_matmul_precision() allows it; the record says which.
    """
    device = torch.device(device)
    if not fast_dtype_supported(device, dtype):
        raise LabError(
            f"{device.type} has no native {_dtype_name(dtype)} matmul, so it has no meaningful peak; "
            "calibrate float32 instead (or bfloat16 on a CPU with AVX512_BF16/AMX or a CUDA GPU of sm_80+)"
        )
    if not seconds > 0 or rounds < 1:
        raise ValueError(f"seconds must be > 0 and rounds >= 1, got {seconds} and {rounds}")
    n = size if size is not None else DEFAULT_MATMUL_N.get(device.type, FALLBACK_MATMUL_N)
    if n < 1:
        raise ValueError(f"size must be >= 1, got {n}")

    generator = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn((n, n), generator=generator).to(device, dtype)
    b = torch.randn((n, n), generator=generator).to(device, dtype)
    out = torch.empty((n, n), device=device, dtype=dtype)
    now = synced_timer(device)

    start = now()
    warmup_calls = 0
    while warmup_calls < 2 or now() - start < seconds / 5:
        torch.mm(a, b, out=out)
        warmup_calls += 1
    per_call = (now() - start) / warmup_calls
    repeats = max(1, math.ceil(seconds * 4 / 5 / rounds / per_call))

    rates = []
    for _ in range(rounds):
        start = now()
        for _ in range(repeats):
            torch.mm(a, b, out=out)
        rates.append(2 * n**3 * repeats / (now() - start))
    rates.sort()
    return {
        "peak_flops_per_s": rates[-1],
        "median_flops_per_s": rates[len(rates) // 2],
        "dtype": _dtype_name(dtype),
        "matmul_n": n,
        "repeats": repeats,
        "rounds": rounds,
        "device": str(device),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


def achieved_flops(flops_per_step: int | float, steps: int, seconds: float) -> float:
    """FLOP/s achieved by `steps` steps of `flops_per_step` FLOPs in `seconds` of (synchronized) time."""
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    if steps < 0 or flops_per_step < 0:
        raise ValueError(f"steps and flops_per_step must be >= 0, got {steps} and {flops_per_step}")
    return flops_per_step * steps / seconds


def mfu(achieved_flops_per_s: float, peak_flops_per_s: float) -> float:
    """Model FLOPs utilization: achieved / peak, as a fraction (0.35 means 35%)."""
    if not peak_flops_per_s > 0 or not math.isfinite(peak_flops_per_s):
        raise ValueError(f"peak_flops_per_s must be a positive finite number, got {peak_flops_per_s}")
    if achieved_flops_per_s < 0:
        raise ValueError(f"achieved_flops_per_s must be >= 0, got {achieved_flops_per_s}")
    return achieved_flops_per_s / peak_flops_per_s
