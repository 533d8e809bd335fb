"""One training step and what it runs on: step and numerics settings, device, seeds, the step itself.

`train_step` is forward, cross-entropy, backward, optimizer step: the loop's `train` phase.
`to_device` is its `copy` phase. The lab's faithful baseline is every default (fp32, NCHW).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import record_function

from ..data.device_loader import normalize_batch
from ..devices import ACCELERATORS, DEVICE_TYPES
from ..errors import LabError


@dataclass(frozen=True)
class StepConfig:
    """How a mini-batch is computed; the lab's faithful baseline is the default (fp32, NCHW)."""

    channels_last: bool = False
    amp_dtype: torch.dtype | None = None  # autocast dtype, e.g. torch.bfloat16; None = fp32

    def __post_init__(self) -> None:
        if self.amp_dtype not in (None, torch.bfloat16, torch.float16):
            raise LabError(f"amp_dtype must be None, torch.bfloat16 or torch.float16, got {self.amp_dtype}")


def set_seed(seed: int) -> None:
    """Seed every RNG the run touches (torch CPU and CUDA, numpy, random)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


MATMUL_PRECISIONS = ("highest", "high", "medium")


@dataclass(frozen=True)
class Numerics:
    """How fp32 math runs on CUDA, set explicitly by every run rather than inherited from whatever ran before.

    The defaults are PyTorch's: cuDNN runs fp32 convolutions as TF32 on Ampere and newer GPUs,
    matmuls stay full fp32. The lab's GPUs predate TF32, so `cudnn_tf32=False` is the strict reading.
    """

    cudnn_tf32: bool = True
    matmul_precision: str = "highest"  # torch.set_float32_matmul_precision

    def __post_init__(self) -> None:
        if self.matmul_precision not in MATMUL_PRECISIONS:
            raise LabError(
                f"matmul precision must be one of {', '.join(MATMUL_PRECISIONS)}, got '{self.matmul_precision}'"
            )


def configure_backends(device: torch.device, numerics: Numerics = Numerics()) -> None:
    # cuDNN autotuning pays off for the lab's fixed input shape (LAB_SPEC: cudnn.benchmark on CUDA).
    if device.type == "cuda":  # cuda-only
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = numerics.cudnn_tf32
        torch.set_float32_matmul_precision(numerics.matmul_precision)


def resolve_device(name: str) -> torch.device:
    """A torch.device for `name`, or a LabError when it is unknown or absent here."""
    names = " or ".join(f"'{kind}'" for kind in DEVICE_TYPES)  # the device table's (resnet_lab/devices.py)
    indexed = " (optionally " + ", ".join(f"'{kind}:N'" for kind in ACCELERATORS) + ")" if ACCELERATORS else ""
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise LabError(f"unknown device '{name}': use {names}{indexed}") from exc
    kind = DEVICE_TYPES.get(device.type)
    if kind is None:
        raise LabError(f"unsupported device '{name}': use {names}")
    if kind.module is not None:
        label = kind.name.upper()
        if not kind.available():
            raise LabError(
                f"device '{kind.name}' requested but {label} is not available on this machine; use --device cpu"
            )
        if device.index is not None and device.index >= kind.count():
            raise LabError(f"device '{name}' does not exist: this machine has {kind.count()} {label} device(s)")
    return device


def to_device(
    x: torch.Tensor, y: torch.Tensor, device: torch.device, step: StepConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Host->device copy; uint8 batches (device-resident loader) are normalized here, on the device."""
    x = x.to(device, non_blocking=True)
    y = y.to(device, non_blocking=True)
    memory_format = torch.channels_last if step.channels_last else torch.contiguous_format
    if x.dtype == torch.uint8:
        return normalize_batch(x, memory_format=memory_format), y
    return x.contiguous(memory_format=memory_format), y


CopyFn = Callable[[torch.Tensor, torch.Tensor, torch.device, StepConfig], tuple[torch.Tensor, torch.Tensor]]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class StepOps:
    """A run's copy step and loss; None is the lab's (`to_device`, cross-entropy), looked up when called.

    Only the equivalence check's planted bugs (perf/plants.py) replace them, on one run's
    `LabRun.ops`: a bug planted in one variant's path, never in the code eager runs.
    """

    copy: CopyFn | None = None
    criterion: LossFn | None = None


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    step: StepConfig,
    *,
    zero_grad: bool = True,
    autocast_cache: bool = True,
    criterion: LossFn | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward, loss (cross-entropy unless `criterion`), backward, step. Returns (loss, logits) still on the device.

    A CUDA graph capture (graphstep.py) zeroes the grads itself and turns autocast's
    weight-cast cache off, so that no cached cast outlives the captured region.
    """
    if zero_grad:
        optimizer.zero_grad(set_to_none=True)
    with (
        record_function("forward"),
        torch.autocast(
            x.device.type,
            dtype=step.amp_dtype or torch.float32,
            enabled=step.amp_dtype is not None,
            cache_enabled=autocast_cache,
        ),
    ):
        logits = model(x)
        loss = (criterion or F.cross_entropy)(logits, y)
    with record_function("backward"):
        loss.backward()
    with record_function("optimizer_step"):
        optimizer.step()
    return loss, logits
