"""The timed training loop (C1, C2): one epoch in, one flat record out.

Phases, each timed by the same synchronizing clock and labelled for
torch.profiler (Q3b):

    startup   once per epoch: `iter(loader)`, where a DataLoader starts its
              worker processes
    load      per batch: waiting for the loader's next batch (host side; no
              device copy), and the final call that finds the epoch over
    copy      host->device copy (+ uint8 normalization / memory-format change)
    train     forward, loss, backward, optimizer step  (sub-labels forward,
              backward, optimizer_step)
    metrics   loss.item(), top-1 bookkeeping, the divergence check
    shutdown  once per epoch: releasing the iterator, where a DataLoader shuts
              its worker processes down

On a CPU each phase also records this process's CPU seconds, `{phase}_cpu_s`, and
the epoch's, `epoch_cpu_s` (keys declared in engine/phases.py): a phase whose wall time
exceeds its CPU time waits. `epoch_s` is the synchronized wall time of the whole epoch, worker start-up to
worker shutdown, so it is what pytest-benchmark's round measures too, and
epoch_s - (startup_s + load_s + copy_s + train_s + metrics_s + shutdown_s) is
the loop's own overhead (progress bar, callbacks), which nothing times.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import record_function

from ..errors import DivergenceError, LabError
from ..interrupts import deferred_interrupt
from .clock import SyncClock, clock_for
from .metrics import EpochMetrics, num_outputs
from .phases import (
    CPU_KEYS,
    EPOCH_CPU_KEY,
    EPOCH_S,
    IMAGES_PER_S,
    PHASE_LIST,
    QUALITY_KEYS,
    TIMED_KEYS,
    EpochRecord,
)
from .step import StepConfig, StepOps, to_device, train_step
from .workers import loader_failure

if TYPE_CHECKING:
    from tqdm.auto import tqdm


class GraphedStep(Protocol):
    """What train_one_epoch needs of `graphstep.GraphedTrainStep` (kept there: it is CUDA-only)."""

    def begin_epoch(self) -> EpochMetrics: ...
    def stage(self, x: torch.Tensor, y: torch.Tensor) -> None: ...
    def run(self) -> None: ...


def capped(loader: Iterable, max_batches: int | None) -> int | None:
    """Batches this epoch will run, when known."""
    try:
        total = len(loader)  # type: ignore[arg-type]  # an Iterable may lack len(): the TypeError is caught
    except TypeError:
        return max_batches
    return total if max_batches is None else min(total, max_batches)


def progress_bar(total: int | None, enabled: bool, desc: str) -> tqdm[Any]:
    from tqdm.auto import tqdm  # imported lazily: only interactive runs draw a bar

    return tqdm(total=total, disable=not enabled, desc=desc, unit="batch", leave=False, dynamic_ncols=True)


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    device: torch.device | str,
    *,
    epoch: int = 0,
    max_batches: int | None = None,
    step: StepConfig = StepConfig(),
    clock: SyncClock | None = None,
    progress: bool = False,
    on_batch_end: Callable[[int], None] | None = None,
    sync_phases: bool = True,
    check_every: int = 50,
    graphed: GraphedStep | None = None,
    ops: StepOps = StepOps(),
) -> dict[str, Any]:
    """Train for one epoch (at most `max_batches` batches) and return the flat C1/C2 record.

    `sync_phases=False` is the fast path (C8): no device sync or loss.item() per
    batch, so host and device overlap; phase times are then host-side only
    (`phases_synced` is False in the record) and non-finite loss is caught
    every `check_every` batches instead of at once. `epoch_s` is synced either way.
    `graphed` (a `graphstep.GraphedTrainStep`) runs each step as one CUDA graph
    replay instead of `train_step`; its metrics are kept inside the graph. `ops` is the run's
    copy step and loss (the lab's unless a planted bug replaced them, see perf/plants.py).
    """
    device = torch.device(device)
    if max_batches is not None and max_batches < 1:
        raise LabError(f"max_batches must be >= 1 or None, got {max_batches}")
    clock = clock or clock_for(device)
    clock.reset()
    regions = (
        clock if sync_phases else SyncClock(timer=clock.timer, cpu_timer=clock.cpu_timer)
    )  # unsynced regions: host-side time only
    metrics = (
        graphed.begin_epoch() if graphed is not None else EpochMetrics(num_outputs(model), device, eager=sync_phases)
    )
    model.train()
    total = capped(loader, max_batches)
    bar = progress_bar(total, progress, f"epoch {epoch}")
    batches = 0
    start, cpu_start = clock.now(), clock.cpu_now()
    with regions.region("startup"), record_function("startup"), deferred_interrupt():
        iterator: Iterator | None = iter(loader)
    try:
        while max_batches is None or batches < max_batches:
            with regions.region("load"), record_function("load"):
                batch = next(iterator, None)  # type: ignore[arg-type]  # None only once the loop is over
            if batch is None:
                break
            loss_value = None
            if graphed is not None:
                with regions.region("copy"), record_function("copy"):
                    graphed.stage(batch[0], batch[1])
                with regions.region("train"), record_function("train"):
                    graphed.run()  # metrics are updated inside the step
            else:
                with regions.region("copy"), record_function("copy"):
                    x, y = (ops.copy or to_device)(batch[0], batch[1], device, step)
                with regions.region("train"), record_function("train"):
                    loss, logits = train_step(model, optimizer, x, y, step, criterion=ops.criterion)
            with regions.region("metrics"), record_function("metrics"):
                if graphed is None:
                    loss_value = metrics.update(loss, logits.detach(), y)
                if loss_value is None and (batches + 1) % check_every == 0:
                    loss_value = metrics.check_finite()
                if loss_value is not None and not math.isfinite(loss_value):
                    raise DivergenceError(epoch, batches, loss_value)
            batches += 1
            bar.update(1)
            if on_batch_end is not None:
                on_batch_end(batches)
        # Dropping the iterator shuts DataLoader workers down: inside the epoch, as its own phase.
        with regions.region("shutdown"), record_function("shutdown"), deferred_interrupt():
            iterator = None
        epoch_s = clock.now() - start
        epoch_cpu_s = None if cpu_start is None else clock.cpu_now() - cpu_start  # type: ignore[operator]  # cpu_now() is a float whenever cpu_start is
        if not metrics.eager and not math.isfinite(total_loss := metrics.check_finite()):
            raise DivergenceError(epoch, batches - 1, total_loss)
    except (ConnectionError, EOFError, RuntimeError) as exc:
        failure = loader_failure(exc, iterator, epoch, batches)
        if failure is None:
            raise
        raise failure from exc
    finally:
        bar.close()
        with deferred_interrupt():
            iterator = None  # after an error: workers shut down here, on no clock
    if batches == 0:
        raise LabError("the training loader yielded no batches: is the dataset empty?")
    record: dict[str, object] = {"epoch": epoch, "batches": batches, "images": metrics.images}
    record.update({phase.key: regions.total(phase.name) for phase in PHASE_LIST})
    if regions.keeps_cpu:
        record.update({phase.cpu_key: regions.cpu_total(phase.name) for phase in PHASE_LIST})
        record[EPOCH_CPU_KEY] = epoch_cpu_s
    record["phases_synced"] = sync_phases
    record[EPOCH_S] = epoch_s
    record[IMAGES_PER_S] = metrics.images / epoch_s if epoch_s > 0 else float("inf")
    record.update(metrics.summary())
    return record


def evaluate(
    model: nn.Module,
    loader: Iterable,
    device: torch.device | str,
    *,
    max_batches: int | None = None,
    step: StepConfig = StepConfig(),
    clock: SyncClock | None = None,
) -> dict[str, Any]:
    """Test loss and top-1, run outside every training timing."""
    device = torch.device(device)
    clock = clock or clock_for(device)
    metrics = EpochMetrics(num_outputs(model), device)
    model.eval()
    start = clock.now()
    with deferred_interrupt():
        iterator: Iterator | None = iter(loader)
    batches = 0  # counted as in training: the index of the batch being fetched, for a failure's message
    try:
        while max_batches is None or batches < max_batches:
            # not a for loop: no batch is fetched past max_batches
            batch = next(iterator, None)  # type: ignore[arg-type]  # None only once the loop is over
            if batch is None:
                break
            x, y = to_device(batch[0], batch[1], device, step)
            # no_grad as a block, not a decorator, so that mutation testing (which skips decorated functions) reaches
            # it.
            with (
                torch.no_grad(),
                torch.autocast(device.type, dtype=step.amp_dtype or torch.float32, enabled=step.amp_dtype is not None),
            ):
                logits = model(x)
                loss = F.cross_entropy(logits, y)
            metrics.update(loss, logits, y)
            batches += 1
    except (ConnectionError, EOFError, RuntimeError) as exc:
        failure = loader_failure(exc, iterator, None, batches)
        if failure is None:
            raise
        raise failure from exc
    finally:
        with deferred_interrupt():
            iterator = None  # shuts test-loader workers down
    summary = metrics.summary()
    return {
        "test_loss": summary["loss"],
        "test_top1": summary["top1"],
        "test_images": metrics.images,
        "eval_s": clock.now() - start,
    }


def summarize(records: Sequence[EpochRecord]) -> dict[str, object]:
    """Means of the phase times (and CPU times, where every epoch has them) over epochs; loss and top-1 of the last
    epoch."""
    if not records:
        return {}
    summed = (*TIMED_KEYS, *(key for key in CPU_KEYS if all(key in r for r in records)))
    summary: dict[str, object] = {key: sum(float(r[key]) for r in records) / len(records) for key in summed}
    steady = records[1:] or records
    summary["steady_epoch_s"] = sum(float(r[EPOCH_S]) for r in steady) / len(steady)
    summary["first_epoch_s"] = float(records[0][EPOCH_S])
    summary[IMAGES_PER_S] = sum(int(r["images"]) for r in records) / sum(float(r[EPOCH_S]) for r in records)
    summary.update({key: records[-1][key] for key in QUALITY_KEYS})
    summary["epochs"] = len(records)
    return summary
