"""What every training benchmark does, once: build the run, time epochs as rounds, record extra_info.

The benchmark modules only choose parameters (a `replace` of `LabOptions.base_config`);
measuring lives here so it is importable and tested like the rest of the library. A run whose
configuration changes process-wide state for good (`RunConfig.changes_process`) trains in a
process of its own (`perf/isolated.py`), so no other benchmark depends on running before it.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
import torch

from ..data import LabDataset, LoaderConfig, make_train_loader
from ..engine.clock import SyncClock, clock_for
from ..engine.phases import (
    BATCH_PHASE_KEYS,
    CPU_KEYS,
    CPU_PHASE_KEYS,
    EPOCH_CPU_KEY,
    EPOCH_PHASE_KEYS,
    EPOCH_S,
    IMAGES_PER_S,
    PHASE_KEYS,
    QUALITY_KEYS,
    EpochRecord,
)
from ..engine.run import LabRun, RunConfig
from ..machine import numerics_state
from ..perf.equivalence import ReferenceCache, check_variant, failure_line
from ..perf.isolated import IsolatedRun
from ..perf.memory import memory_peaks
from .options import LabOptions

if TYPE_CHECKING:
    from .sweep import SweepState

# The loop's untimed bookkeeping (progress bar, callbacks) is tiny next to any phase; a
# remainder above this share of the epoch, and above the floor for very short epochs, is not.
UNTIMED_SHARE = 0.05
UNTIMED_FLOOR_S = 0.05
SUMMARY_KEYS = (*PHASE_KEYS, EPOCH_S, "first_epoch_s", "steady_epoch_s", IMAGES_PER_S, *QUALITY_KEYS)


@dataclass
class EquivalenceGate:
    """C8's equivalence check of one variant (perf/equivalence.py), run before its timed epochs.

    A variant that fails records its figures in `extra_info["equivalence"]` and in `failures` (the
    session's, which the JSON's and the run log's `lab.equivalence_failures` hold, since a benchmark
    with no rounds is in neither), runs no timed epoch and fails its test with one line.
    """

    cache: ReferenceCache
    failures: dict[str, dict[str, Any]]
    variant: str
    name: str  # the benchmark's test name
    plant: Callable[[LabRun], None] | None = None  # test-only: a planted bug (perf/plants.py)

    def check(self, benchmark: Any, config: RunConfig, run: IsolatedRun | None = None) -> None:
        # An isolated run checks in its own process, under the process-wide state its epochs train in.
        record = check_variant(
            config, self.cache, self.plant, observe_fn=run.observe_check if run is not None else None
        )
        benchmark.extra_info["equivalence"] = record
        if record["verdict"] != "pass":
            self.failures[self.name] = {"variant": self.variant, **record}
            fail_before_timing(failure_line(self.variant, record))


def fail_before_timing(line: str) -> NoReturn:
    """Fail a benchmark's test with one line before its fixture timed anything.

    pytest-benchmark warns at teardown that the fixture was never used, and under the suite's
    `filterwarnings = error` that warning becomes a second, misleading error. The filter added here
    lasts for this test only: pytest restores the warning filters after each test."""
    from pytest_benchmark.logger import PytestBenchmarkWarning

    warnings.filterwarnings("ignore", message="Benchmark fixture was not used", category=PytestBenchmarkWarning)
    pytest.fail(line, pytrace=False)


def run_training_benchmark(
    benchmark: Any,
    config: RunConfig,
    options: LabOptions,
    train_set: LabDataset,
    test_set: LabDataset | None,
    *,
    extra: dict[str, object] | None = None,
    evaluate_now: bool = True,
    equivalence: EquivalenceGate | None = None,
) -> LabRun | IsolatedRun:
    """rounds = epochs on one model, so pytest-benchmark's statistics are over epochs.

    `equivalence` checks the run's training against eager and fp64 first (C8), outside its memory
    peaks and its rounds; a failed check ends the benchmark before its first timed epoch.

    `evaluate_now=False` keeps the test evaluation for later (`SweepState.evaluation`): C3 trains
    every worker count, but only the one that turns out to be C3.2 is ever read for test accuracy.
    """
    device = torch.device(config.device)
    with_test = test_set is not None and config.evaluates
    if equivalence is not None and not config.changes_process:
        equivalence.check(benchmark, config)
    with contextlib.ExitStack() as stack:
        if config.changes_process:
            isolated = stack.enter_context(IsolatedRun(config, options.data_config, with_test=with_test))
            if equivalence is not None:
                equivalence.check(benchmark, config, isolated)
            run: LabRun | IsolatedRun = isolated
        else:
            memory = stack.enter_context(memory_peaks(device))
            run = LabRun(config, train_set, test_set if with_test else None)
        benchmark.extra_info["epochs"] = run.records  # filled epoch by epoch: a run cut short keeps its finished epochs
        benchmark.pedantic(run.run_epoch, rounds=config.epochs, iterations=1, warmup_rounds=0)
        problems = [f"epoch {r['epoch']}: {p}" for r in run.records for p in epoch_problems(r)]
        if problems:
            pytest.fail("the epoch records do not add up: " + "; ".join(problems), pytrace=False)
        benchmark.extra_info.update(training_extra_info(run, options, train_set))
        if evaluate_now:
            benchmark.extra_info.update(run.evaluate())
        if isinstance(run, IsolatedRun):
            benchmark.extra_info.update(run.process_state())  # its process's peak memory and numerics, not this one's
    if not isinstance(run, IsolatedRun):
        benchmark.extra_info.update(memory)  # filled when memory_peaks exited
        benchmark.extra_info.update(numerics_state())
    benchmark.extra_info.update(extra or {})
    return run


def train_or_serve(
    request: Any,
    benchmark: Any,
    config: RunConfig,
    options: LabOptions,
    lab_data: tuple,
    sweep: SweepState,
    extra: dict[str, object] | None = None,
) -> LabRun | IsolatedRun:
    """Train `config` as this benchmark, unless a benchmark of this session already trained exactly it:
    then this question is answered by that run, recorded in `sweep.served`, and skipped with the reason."""
    group = request.node.get_closest_marker("benchmark").kwargs["group"]
    reason = sweep.serve_reason(config, group, request.node.name, request.node.callspec.params)
    if reason:
        pytest.skip(reason)
    train_set, test_set = lab_data
    return run_training_benchmark(benchmark, config, options, train_set, test_set, extra=extra)


def training_extra_info(run: LabRun | IsolatedRun, options: LabOptions, train_set: LabDataset) -> dict[str, object]:
    summary = run.summary()
    info: dict[str, object] = {key: summary[key] for key in SUMMARY_KEYS}
    info.update({key: summary[key] for key in CPU_KEYS if key in summary})  # CPU runs only
    info.update(
        epochs=run.records,
        data=train_set.source,
        data_source=options.data,
        preset=options.preset,
        batches_per_epoch=run.records[0]["batches"] if run.records else 0,
        full_epoch=options.max_batches is None,
        device=str(run.device),
        workers=run.config.workers,
        optimizer=run.config.as_record()["optimizer"],
        batch_norm=run.config.batch_norm,
        batch_size=run.config.loader.batch_size,
    )
    return info


def epoch_problems(record: EpochRecord) -> list[str]:
    """What is wrong with a training benchmark's per-epoch record; [] when nothing is.

    Every batch passes through load, copy, train and metrics, so on a real clock
    each of them is positive; start-up and shutdown happen once and may take nothing.
    All phases are read from the same clock as epoch_s and lie inside it, so
    together they cannot exceed it (beyond rounding); with
    synchronized phases, what they leave out is only the loop's own bookkeeping,
    so a large remainder means work escaped every phase.
    """
    problems = []
    for key in BATCH_PHASE_KEYS:
        if not float(record[key]) > 0:
            problems.append(f"{key} is {record[key]}: the phase was not timed")
    for key in EPOCH_PHASE_KEYS:  # no workers to start or stop: 0 is right
        if not float(record[key]) >= 0:
            problems.append(f"{key} is {record[key]}")
    epoch_s = float(record[EPOCH_S])
    phases = sum(float(record[key]) for key in PHASE_KEYS)
    if not phases <= epoch_s + 1e-6:
        problems.append(f"the phases add up to {phases} s, more than epoch_s {epoch_s} s: time counted twice")
    if record.get("phases_synced", True) and epoch_s - phases > max(UNTIMED_SHARE * epoch_s, UNTIMED_FLOOR_S):
        problems.append(f"{epoch_s - phases:.4f} s of the {epoch_s:.4f} s epoch is in no phase")
    problems += cpu_problems(record)
    if not math.isfinite(float(record["loss"])):
        problems.append(f"loss is {record['loss']}")
    if not 0.0 <= float(record["top1"]) <= 1.0:
        problems.append(f"top1 is {record['top1']}, not a fraction")
    if not int(record["images"]) >= int(record["batches"]) >= 1:
        problems.append(f"{record['batches']} batches of {record['images']} images")
    return problems


def cpu_problems(record: EpochRecord) -> list[str]:
    """The CPU-time keys, where the record has them (CPU runs since issue 23): every one present
    or none, each a finite number >= 0, and the phases' CPU time inside the epoch's (one clock)."""
    present = [key for key in CPU_KEYS if key in record]
    if not present:
        return []
    if len(present) < len(CPU_KEYS):
        return [
            f"CPU time recorded for only {', '.join(present)}: missing "
            f"{', '.join(k for k in CPU_KEYS if k not in record)}"
        ]
    problems = [f"{key} is {record[key]}" for key in CPU_KEYS if not 0 <= float(record[key]) < math.inf]
    phases = sum(float(record[key]) for key in CPU_PHASE_KEYS)
    if not problems and not phases <= float(record[EPOCH_CPU_KEY]) + 1e-6:
        problems.append(
            f"the phases' CPU time adds up to {phases} s, more than {EPOCH_CPU_KEY} {record[EPOCH_CPU_KEY]} s"
        )
    return problems


def loader_epoch(
    loader: Iterable, device: torch.device | str = "cpu", clock: SyncClock | None = None
) -> dict[str, float]:
    """Iterate one epoch of a loader with no training: the C3 loader-only figure."""
    clock = clock or clock_for(device)
    images, batches = 0, 0
    with clock.region("load"):
        for x, _ in loader:
            images += x.shape[0]
            batches += 1
    load_s = clock.total("load")
    result: dict[str, float] = {
        "load_s": load_s,
        "images": images,
        "batches": batches,
        "images_per_s": images / load_s if load_s > 0 else float("inf"),
    }
    if clock.keeps_cpu:
        result["load_cpu_s"] = clock.cpu_total("load")
    return result


def loader_only_sweep(train_set: LabDataset, workers: Iterable[int]) -> dict[int, float]:
    """load_s of one full CPU epoch per worker count (the C3.2 fallback when C3 did not run)."""
    return {
        w: float(loader_epoch(make_train_loader(train_set, LoaderConfig(num_workers=w)))["load_s"]) for w in workers
    }
