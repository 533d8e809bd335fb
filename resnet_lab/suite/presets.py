"""The benchmark suite's configuration: presets, the parsed `--lab-*` options, C3's worker rule.

Kept out of conftest.py so it is importable, typed and unit-tested; the pytest
hooks only declare options and hand this frozen record to fixtures.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from .errors import LabError
from .machine import cpu_count
from .train import Numerics

C3_DEFAULT_WORKERS = (0, 4, 8, 12, 16)
C3_STEP = 4
# C3.2 rule: the smallest worker count whose loading time is within this
# fraction of the best one. 10% is above the run-to-run noise we measured for
# a loader epoch on 2 cores and below any change worth buying workers for.
C3_TOLERANCE = 0.10
C4_BASELINE_WORKERS = 1


@dataclass(frozen=True)
class Preset:
    """How much work each training benchmark does."""

    name: str
    epochs: int
    max_batches: int | None  # per epoch
    eval_batches: int | None  # test batches evaluated after the last epoch
    profile_steps: int  # active steps in the Q3b profiler trace
    c8_epochs: int  # C8 compares first-epoch (compile) cost with the steady state


PRESETS = {
    # Smoke: every question runs on 2 CPU cores within the suite's 10-minute budget.
    "smoke": Preset("smoke", epochs=2, max_batches=2, eval_batches=2, profile_steps=3, c8_epochs=2),
    # Full: the lab as written (50,000 images, 5 epochs, batch 128).
    "full": Preset("full", epochs=5, max_batches=None, eval_batches=None, profile_steps=5, c8_epochs=10),
}


@dataclass(frozen=True)
class LabOptions:
    """The suite's options after the preset is applied; explicit options win over the preset."""

    preset: str = "smoke"
    data: str = "synthetic"
    devices: tuple[str, ...] = ("cpu", "cuda")
    epochs: int = 2
    max_batches: int | None = 2
    eval_batches: int | None = 2
    workers: tuple[int, ...] | None = None  # explicit C3 counts; None = default sweep, extended while it improves
    profile_steps: int = 3
    c8_epochs: int = 2
    out_dir: str = "lab-output"
    numerics: Numerics = Numerics()  # fp32 math on CUDA: PyTorch's defaults (cuDNN convolutions in TF32) unless --lab-tf32 off

    def c3_workers(self) -> tuple[int, ...]:
        """C3 worker counts parametrized at collection: the explicit list, or the default plus extension slots."""
        if self.workers is not None:
            return self.workers
        return C3_DEFAULT_WORKERS + extension_counts()

    def is_extension(self, workers: int) -> bool:
        """True for counts past the default list, run only while loading time still improves."""
        return self.workers is None and workers > C3_DEFAULT_WORKERS[-1]


def extension_counts() -> tuple[int, ...]:
    # Past 16, keep adding 4 while time improves, up to 4 workers per CPU:
    # more processes than that only contend for the same cores.
    limit = max(C3_DEFAULT_WORKERS[-1], 4 * cpu_count())
    return tuple(range(C3_DEFAULT_WORKERS[-1] + C3_STEP, limit + 1, C3_STEP))


def parse_devices(text: str) -> tuple[str, ...]:
    devices = tuple(d.strip().lower() for d in text.split(",") if d.strip())
    if not devices:
        raise LabError("--lab-device needs at least one device, e.g. cpu or cpu,cuda")
    for device in devices:
        kind = device.split(":")[0]
        if kind not in ("cpu", "cuda") or (kind == "cpu" and device != "cpu"):
            raise LabError(f"--lab-device: unknown device '{device}'; use cpu, cuda or cuda:N, comma-separated")
    return tuple(dict.fromkeys(devices))


def build_options(
    preset: str,
    data: str,
    devices: str,
    epochs: int | None,
    batches: int | None,
    workers: tuple[int, ...] | None,
    out_dir: str,
    tf32: bool = True,
    eval_batches: int | None = None,
) -> LabOptions:
    """Apply the preset, then the explicit options (`None` = not given). `--lab-batches 0` and
    `--lab-eval-batches 0` mean no cap."""
    if preset not in PRESETS:
        raise LabError(f"--lab-preset: unknown preset '{preset}'; choose one of {', '.join(PRESETS)}")
    chosen = PRESETS[preset]
    options = LabOptions(
        preset=preset,
        data=data,
        devices=parse_devices(devices),
        epochs=chosen.epochs,
        max_batches=chosen.max_batches,
        eval_batches=chosen.eval_batches,
        profile_steps=chosen.profile_steps,
        c8_epochs=chosen.c8_epochs,
        workers=workers,
        out_dir=out_dir,
        numerics=Numerics(cudnn_tf32=tf32),
    )
    if data != "synthetic" and not os.path.exists(data):
        raise LabError(f"--lab-data: path '{data}' does not exist; pass 'synthetic' or a CIFAR-10 root, image folder or .tar.gz")
    if epochs is not None:
        options = replace(options, epochs=epochs, c8_epochs=epochs)
    if batches is not None:
        options = replace(options, max_batches=batches or None)
    if eval_batches is not None:
        options = replace(options, eval_batches=eval_batches or None)
    return options


def c32_answer(load_s: dict[int, float], tolerance: float = C3_TOLERANCE, source: str = "C3") -> dict[str, object]:
    """C3.2: the smallest worker count whose loading time is within `tolerance` of the best."""
    if not load_s:
        raise LabError("C3.2 needs loading times for at least one worker count")
    best_workers = min(load_s, key=lambda w: (load_s[w], w))
    best = load_s[best_workers]
    workers = min(w for w, t in load_s.items() if t <= best * (1 + tolerance))
    return {
        "workers": workers,
        "load_s": load_s[workers],
        "best_workers": best_workers,
        "best_load_s": best,
        "tolerance": tolerance,
        "source": source,
        "rule": f"smallest num_workers whose load_s is within {tolerance:.0%} of the best ({best:.3f} s at {best_workers} workers), from {source}",
        "measured": {str(w): t for w, t in sorted(load_s.items())},
    }


def still_improving(load_s: dict[int, float], tolerance: float = C3_TOLERANCE) -> bool:
    """Whether the sweep should go on: the last count beat every earlier one by more than `tolerance`."""
    if len(load_s) < 2:
        return True
    counts = sorted(load_s)
    last = load_s[counts[-1]]
    return last < min(load_s[w] for w in counts[:-1]) * (1 - tolerance)
