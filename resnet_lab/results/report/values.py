"""What the sections read from a benchmark: phase means over epochs, last values, epoch time, curves."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from ...engine.phases import CPU_PHASE_KEYS, PHASE_KEYS
from ..runs import Bench, Run, as_number
from .format import percent

# The loop's phases, in epoch order; a run saved before a phase existed reads "not recorded" there.
PHASES = PHASE_KEYS
CPU_PHASES = CPU_PHASE_KEYS  # CPU runs since issue 23; older runs and GPU runs have none


def phase_mean(bench: Bench, key: str, *, skip_warmup: bool = False) -> float | None:
    """Mean of `key` over the epoch records (optionally without warm-up epochs), else the summary value."""
    records = [r for r in bench.epochs() if not (skip_warmup and r.get("warmup") is True)]
    values = [v for v in (as_number(r.get(key)) for r in records) if v is not None]
    if values:
        return statistics.fmean(values)
    return None if skip_warmup else bench.number(key)


def last_value(bench: Bench, key: str) -> float | None:
    value = bench.number(key)
    if value is None:
        values = bench.epoch_values(key)
        value = values[-1] if values else None
    return value


def epoch_time(bench: Bench) -> float | None:
    """Mean epoch time: the per-epoch records, else pytest-benchmark's mean over rounds."""
    return phase_mean(bench, "epoch_s") or bench.stat("mean")


def curves_of(bench: Bench) -> tuple[list[int], list[float], list[float]]:
    records = bench.epochs()
    epochs = [int(as_number(r.get("epoch")) or i) for i, r in enumerate(records, 1)]
    loss = [v for v in (as_number(r.get("loss")) for r in records) if v is not None]
    top1 = [v for v in (percent(r.get("top1")) for r in records) if v is not None]
    return epochs, loss, top1


def by_device(runs: Sequence[Run], group: str) -> list[tuple[Run, str, list[Bench]]]:
    """(run, device, that device's benchmarks of `group`) for each run and device, in order."""
    return [
        (run, device, [b for b in run.group(group) if str(b.param("device", "cpu")) == device])
        for run in runs
        for device in dict.fromkeys(str(b.param("device", "cpu")) for b in run.group(group))
    ]
