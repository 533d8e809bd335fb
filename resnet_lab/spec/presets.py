"""The suite's presets and C3's worker rule (C3.2): plain data and arithmetic, no torch.

Torch-free on purpose: `resnet-lab report` recomputes C3.2 with this rule for runs that did
not record it, and the results layer never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import LabError
from ..machine import cpu_count

C3_DEFAULT_WORKERS = (0, 4, 8, 12, 16)
C3_STEP = 4
# C3.2 rule: the smallest worker count whose loading time is within this
# fraction of the best one. 10% is above the run-to-run noise we measured for
# a loader epoch on 2 cores and below any change worth buying workers for.
C3_TOLERANCE = 0.10
C4_BASELINE_WORKERS = 1
# --lab-seeds' default; with any other, training benchmarks are named with their seed (`-seed=N` last).
DEFAULT_SEEDS = (0,)


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


def extension_counts() -> tuple[int, ...]:
    # Past 16, keep adding 4 while time improves, up to 4 workers per CPU:
    # more processes than that only contend for the same cores.
    limit = max(C3_DEFAULT_WORKERS[-1], 4 * cpu_count())
    return tuple(range(C3_DEFAULT_WORKERS[-1] + C3_STEP, limit + 1, C3_STEP))


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
        "rule": f"smallest num_workers whose load_s is within {tolerance:.0%} of the "
        f"best ({best:.3f} s at {best_workers} workers), from {source}",
        "measured": {str(w): t for w, t in sorted(load_s.items())},
    }


def still_improving(load_s: dict[int, float], tolerance: float = C3_TOLERANCE) -> bool:
    """Whether the sweep should go on: the last count beat every earlier one by more than `tolerance`."""
    if len(load_s) < 2:
        return True
    counts = sorted(load_s)
    last = load_s[counts[-1]]
    return last < min(load_s[w] for w in counts[:-1]) * (1 - tolerance)
