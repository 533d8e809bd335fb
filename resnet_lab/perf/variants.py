"""C8 and "how fast can the lab go": training variants and their work accounting (FLOP/s, MFU).

Each variant changes one thing against the lab's faithful baseline (eager,
fp32, NCHW, PIL DataLoader, a sync per phase), except the combinations:
`best` (channels_last, bf16 autocast where the device has native bf16, the
device-resident loader, the loop without per-batch syncs, flushing denormals;
on a GPU in the full preset also the whole step as one CUDA graph of
torch.compile'd kernels, i.e. `cuda-graph-compiled`; on a CPU malloc keeping
freed memory, which is process-wide, so that run trains in a process of its
own), `cuda-graph` (the whole step as one CUDA graph, see engine/graphstep.py)
and `cuda-graph-compiled` (that with torch.compile's default mode inside the
graph). A variant is a `replace` of the suite's base `RunConfig` (`run_config`).
Measurements behind these choices are in results/ (h200-full-lab/, cpu-2core-c8-compile/).

A new variant is one `Variant(...)` entry in `VARIANTS`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TypedDict

import torch

from ..engine.phases import EpochRecord
from ..engine.run import RunConfig
from ..engine.step import StepConfig
from .flops import fast_dtype_supported, measure_peak_flops, mfu


@dataclass(frozen=True)
class Variant:
    name: str
    channels_last: bool = False
    bf16: bool = False
    compile_mode: str | None = None
    device_loader: bool = False
    sync_phases: bool = True
    flush_denormal: bool = False
    graph_step: bool = False  # the whole training step as one CUDA graph (CUDA only)
    best: bool = False  # adds what measured faster on the device (see retains_heap, resolved_compile_mode)

    def step_config(self, device: torch.device) -> StepConfig:
        return StepConfig(
            channels_last=self.channels_last, amp_dtype=torch.bfloat16 if self.uses_bf16(device) else None
        )

    @property
    def combines(self) -> bool:
        return self.best or self.graph_step

    def uses_bf16(self, device: torch.device) -> bool:
        # The combinations fall back to fp32 where bf16 would be emulated; the plain `bf16` variant skips instead.
        return self.bf16 and fast_dtype_supported(device, torch.bfloat16)

    def retains_heap(self, device: torch.device) -> bool:
        # CPU only: there every step page-faults its fresh activations in (engine/hostalloc.py).
        return self.best and device.type == "cpu"

    def compiles_graph(self, device: torch.device, preset: str) -> bool:
        # `best` on a GPU: the compiled whole-step graph measured fastest there. On a CPU compiling
        # did not pay (the step is mostly oneDNN convolutions, which Inductor calls as they are), and
        # the smoke preset has no time for a build.
        return self.best and preset == "full" and device.type == "cuda"

    def resolved_compile_mode(self, device: torch.device, preset: str) -> str | None:
        if self.best:
            return "default" if self.compiles_graph(device, preset) else None
        return self.compile_mode

    def uses_graph_step(self, device: torch.device, preset: str) -> bool:
        return self.graph_step or self.compiles_graph(device, preset)

    def run_config(self, base: RunConfig, preset: str) -> RunConfig:
        """The run this variant makes of `base` (device, epochs, workers and numerics come from it)."""
        device = torch.device(base.device)
        return replace(
            base,
            step=self.step_config(device),
            compile_mode=self.resolved_compile_mode(device, preset),
            device_loader=self.device_loader,
            sync_phases=self.sync_phases,
            flush_denormal=self.flush_denormal,
            graph_step=self.uses_graph_step(device, preset),
            retain_heap=self.retains_heap(device),
            cold_compile=True,  # the first epoch pays the whole build (engine/run.compiler_caches)
        )

    def skip_reason(self, device: torch.device, preset: str) -> str | None:
        if self.compile_mode is not None and preset != "full":
            return (
                f"torch.compile mode '{self.compile_mode}' runs in the full preset only: building it takes minutes "
                "on a CPU, beyond the smoke preset's 10-minute budget (pass --lab-preset full)"
            )
        if self.graph_step and device.type != "cuda":
            return "a whole-step CUDA graph needs a CUDA device"
        if self.bf16 and not self.combines and not fast_dtype_supported(device, torch.bfloat16):
            return f"{device.type} has no native bfloat16 (needs AVX512_BF16/AMX on a CPU, sm_80+ on CUDA)"
        return None


class _Flags(TypedDict, total=False):
    channels_last: bool
    bf16: bool
    device_loader: bool
    sync_phases: bool


FAST: _Flags = {"channels_last": True, "bf16": True, "device_loader": True, "sync_phases": False}

# Run order: the baseline first and the combinations right after it, so a time-boxed run
# (the GPU check) has the headline ratios before the single-change variants.
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("eager"),
        Variant("best", **FAST, flush_denormal=True, best=True),
        Variant("cuda-graph", **FAST, graph_step=True),
        Variant(
            "cuda-graph-compiled", **FAST, graph_step=True, compile_mode="default"
        ),  # Inductor kernels inside our graph
        Variant("channels-last", channels_last=True),
        Variant("bf16", bf16=True),
        Variant("channels-last-bf16", channels_last=True, bf16=True),
        Variant("compile-default", compile_mode="default"),
        Variant("compile-reduce-overhead", compile_mode="reduce-overhead"),
        Variant("compile-max-autotune", compile_mode="max-autotune"),
    )
}


@contextlib.contextmanager
def tf32_like_convs(device: torch.device) -> Iterator[None]:
    # cuDNN runs fp32 convolutions in TF32 by default (torch.backends.cudnn.allow_tf32),
    # so the fp32 peak that fp32 training is measured against must allow TF32 too.
    if device.type != "cuda":
        yield
        return
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def device_peaks(
    device: torch.device, seconds: float = 2.0, rounds: int = 10
) -> dict[str, dict[str, float | int | str]]:
    """Measured matmul peak per dtype on `device` (bf16 only where native).

    Ten short blocks over two seconds, best kept: a shorter calibration on shared CPU cores can
    read well below the idle peak, which would put a variant's MFU above 1.
    """
    peaks: dict[str, dict[str, float | int | str]] = {}
    with tf32_like_convs(device):
        peaks["float32"] = measure_peak_flops(device, torch.float32, seconds=seconds, rounds=rounds)
    if fast_dtype_supported(device, torch.bfloat16):
        peaks["bfloat16"] = measure_peak_flops(device, torch.bfloat16, seconds=seconds, rounds=rounds)
    return peaks


def step_seconds(records: Sequence[EpochRecord]) -> float:
    """Seconds per training step over the steady epochs (all epochs if there is only one).

    Synced phases: train_s per batch (forward, loss, backward, step). Unsynced
    (the fast loop): epoch_s per batch, an upper bound that includes loading.
    """
    steady = records[1:] or records
    batches = sum(int(r["batches"]) for r in steady)
    key = "train_s" if all(r.get("phases_synced", True) for r in steady) else "epoch_s"
    return sum(float(r[key]) for r in steady) / batches


def work_record(flops_per_step: int, step_s: float, peak: dict[str, object]) -> dict[str, object]:
    achieved = flops_per_step / step_s
    return {
        "flops_per_step": flops_per_step,
        "train_step_s": step_s,
        "achieved_flops_per_s": achieved,
        "peak_flops_per_s": peak["peak_flops_per_s"],
        "peak_dtype": peak["dtype"],
        "mfu": mfu(achieved, float(peak["peak_flops_per_s"])),  # type: ignore[arg-type]  # a measured peak is a number
    }
