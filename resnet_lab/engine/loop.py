"""The timed training loop (C1, C2): one epoch in, one flat record out.

Phases, each timed by the same synchronizing clock and labelled for
torch.profiler (Q3b):

    startup  once per epoch: `iter(loader)`, where a DataLoader starts its
             worker processes
    load     per batch: waiting for the loader's next batch (host side; no
             device copy), and the final call that finds the epoch over
    copy     host->device copy (+ uint8 normalization / memory-format change)
    train    forward, loss, backward, optimizer step  (sub-labels forward,
             backward, optimizer_step)
    metrics  loss.item(), top-1 bookkeeping, the divergence check

`epoch_s` is the synchronized wall time of the whole epoch, so
epoch_s - (startup_s + load_s + copy_s + train_s + metrics_s) is the loop's
own overhead (progress bar, callbacks), which nothing times.
"""

from __future__ import annotations

import math
import random
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import record_function

from .errors import DivergenceError, LabError
from .fastloader import normalize_batch
from .interrupts import deferred_interrupt
from .timing import SyncClock, clock_for

PHASES = ("startup", "load", "copy", "train", "metrics")


class GraphedStep(Protocol):
    """What train_one_epoch needs of `graphstep.GraphedTrainStep` (kept there: it is CUDA-only)."""

    def begin_epoch(self) -> EpochMetrics: ...
    def stage(self, x: torch.Tensor, y: torch.Tensor) -> None: ...
    def run(self) -> None: ...


class LoaderWorkerError(RuntimeError):
    """A DataLoader worker process died or hung mid-epoch; the message names the worker and the signal."""


def _exited_workers(iterator: object) -> list[str]:
    """'pid 123 killed by SIGKILL' for each exited worker of a multi-process DataLoader iterator."""
    found = []
    for worker in getattr(iterator, "_workers", ()):  # torch's multi-process iterator; read only
        code = getattr(worker, "exitcode", None)
        if code is None:
            continue
        try:
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
        except ValueError:
            how = f"killed by signal {-code}"
        found.append(f"pid {worker.pid} {how}")
    return found


def loader_failure(exc: BaseException, iterator: object, epoch: int, batch: int) -> LoaderWorkerError | None:
    """A clear error for a worker that died or hung, or None when `exc` is something else.

    torch reports a killed worker in three ways depending on timing: RuntimeError 'DataLoader worker
    (pid X) is killed by signal', RuntimeError '... exited unexpectedly', or a bare
    ConnectionResetError/EOFError while receiving a batch the dead worker had queued. Its SIGCHLD
    handler can raise the first one at any moment, including while this looks at the workers.
    """
    for _ in range(3):
        try:
            return _describe_loader_failure(exc, iterator, epoch, batch)
        except RuntimeError as late:  # torch's SIGCHLD handler reported the death meanwhile
            if not str(late).startswith("DataLoader worker (pid"):
                raise
            exc = late
    return LoaderWorkerError(f"a DataLoader worker died mid-epoch (epoch {epoch}, batch {batch}): {str(exc).strip()}")


def _describe_loader_failure(exc: BaseException, iterator: object, epoch: int, batch: int) -> LoaderWorkerError | None:
    text = str(exc)
    where = f"epoch {epoch}, batch {batch}"
    if isinstance(exc, (ConnectionError, EOFError)) or text.startswith("DataLoader worker (pid"):
        exited = _exited_workers(iterator)
        deadline = time.monotonic() + 1.0  # a socket can reset a moment before its process is reapable
        while not exited and isinstance(exc, (ConnectionError, EOFError)) and time.monotonic() < deadline:
            time.sleep(0.05)
            exited = _exited_workers(iterator)
        cause = "; ".join(exited) if exited else f"{type(exc).__name__}: {text.strip()}"
        return LoaderWorkerError(
            f"a DataLoader worker died mid-epoch ({where}): {cause}; "
            "SIGKILL is often the out-of-memory killer: use fewer workers or check the machine's memory"
        )
    if text.startswith("DataLoader timed out"):
        return LoaderWorkerError(f"{text.strip()} waiting for a batch ({where}): a DataLoader worker is hung (see LoaderConfig.timeout)")
    return None


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
            raise LabError(f"matmul precision must be one of {', '.join(MATMUL_PRECISIONS)}, got '{self.matmul_precision}'")


def configure_backends(device: torch.device, numerics: Numerics = Numerics()) -> None:
    # cuDNN autotuning pays off for the lab's fixed input shape (LAB_SPEC: cudnn.benchmark on CUDA).
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = numerics.cudnn_tf32
        torch.set_float32_matmul_precision(numerics.matmul_precision)


def resolve_device(name: str) -> torch.device:
    """A torch.device for `name`, or a LabError when it is unknown or absent here."""
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise LabError(f"unknown device '{name}': use 'cpu' or 'cuda' (optionally 'cuda:N')") from exc
    if device.type not in ("cpu", "cuda"):
        raise LabError(f"unsupported device '{name}': use 'cpu' or 'cuda'")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise LabError("device 'cuda' requested but CUDA is not available on this machine; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise LabError(f"device '{name}' does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def to_device(x: torch.Tensor, y: torch.Tensor, device: torch.device, step: StepConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Host->device copy; uint8 batches (device-resident loader) are normalized here, on the device."""
    x = x.to(device, non_blocking=True)
    y = y.to(device, non_blocking=True)
    memory_format = torch.channels_last if step.channels_last else torch.contiguous_format
    if x.dtype == torch.uint8:
        return normalize_batch(x, memory_format=memory_format), y
    return x.contiguous(memory_format=memory_format), y


def train_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, step: StepConfig,
    *, zero_grad: bool = True, autocast_cache: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward, cross-entropy, backward, step. Returns (loss, logits) still on the device.

    A CUDA graph capture (graphstep.py) zeroes the grads itself and turns autocast's
    weight-cast cache off, so that no cached cast outlives the captured region.
    """
    if zero_grad:
        optimizer.zero_grad(set_to_none=True)
    with record_function("forward"), torch.autocast(x.device.type, dtype=step.amp_dtype or torch.float32, enabled=step.amp_dtype is not None,
                                                    cache_enabled=autocast_cache):
        logits = model(x)
        loss = F.cross_entropy(logits, y)
    with record_function("backward"):
        loss.backward()
    with record_function("optimizer_step"):
        optimizer.step()
    return loss, logits


@dataclass
class EpochMetrics:
    """Running loss and top-1 over all samples seen, kept on the device.

    `update` returns the batch loss as a float when `eager` (one host sync per
    batch, as the lab's loop does with loss.item()); otherwise nothing is read
    back until `check_finite`/`summary`, so the host never waits on the device.
    """

    num_classes: int
    device: torch.device
    eager: bool = True

    def __post_init__(self) -> None:
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        self.images = 0
        self.correct = torch.zeros(self.num_classes, dtype=torch.long, device=self.device)
        self.seen = torch.zeros(self.num_classes, dtype=torch.long, device=self.device)

    def reset(self) -> None:
        """Back to zero in place: a captured CUDA graph keeps adding into these same tensors."""
        self.loss_sum.zero_()
        self.correct.zero_()
        self.seen.zero_()
        self.images = 0

    def accumulate(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        """Device-side sums only (no host work, no sync), so a CUDA graph can capture it."""
        hit = logits.argmax(dim=1).eq(y)
        # index_add_, not bincount: CUDA bincount reads y.max()/y.min() back to the host,
        # two device syncs per batch that would serialize the fast loop.
        self.correct.index_add_(0, y, hit.long())
        self.seen.index_add_(0, y, torch.ones_like(y))
        self.loss_sum += loss.detach().double() * y.shape[0]

    def update(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> float | None:
        self.accumulate(loss, logits, y)
        self.images += y.numel()
        return loss.item() if self.eager else None

    def check_finite(self) -> float:
        """The running loss sum (one sync); NaN/inf in any batch so far makes it non-finite."""
        return float(self.loss_sum.item())

    def summary(self) -> dict[str, object]:
        correct, seen = self.correct.cpu(), self.seen.cpu()
        per_class = [(c / s) if s else None for c, s in zip(correct.tolist(), seen.tolist())]
        return {
            "loss": self.loss_sum.item() / self.images if self.images else float("nan"),
            # Top-1 = correct argmax over *all* samples of the epoch, not the best class's accuracy.
            "top1": correct.sum().item() / self.images if self.images else float("nan"),
            "per_class_top1": per_class,
        }


def num_outputs(model: nn.Module) -> int:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features


def capped(loader: Iterable, max_batches: int | None) -> int | None:
    """Batches this epoch will run, when known."""
    try:
        total = len(loader)  # type: ignore[arg-type]
    except TypeError:
        return max_batches
    return total if max_batches is None else min(total, max_batches)


def progress_bar(total: int | None, enabled: bool, desc: str):
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
) -> dict[str, object]:
    """Train for one epoch (at most `max_batches` batches) and return the flat C1/C2 record.

    `sync_phases=False` is the fast path (C8): no device sync or loss.item() per
    batch, so host and device overlap; phase times are then host-side only
    (`phases_synced` is False in the record) and non-finite loss is caught
    every `check_every` batches instead of at once. `epoch_s` is synced either way.
    `graphed` (a `graphstep.GraphedTrainStep`) runs each step as one CUDA graph
    replay instead of `train_step`; its metrics are kept inside the graph.
    """
    device = torch.device(device)
    if max_batches is not None and max_batches < 1:
        raise LabError(f"max_batches must be >= 1 or None, got {max_batches}")
    clock = clock or clock_for(device)
    clock.totals.clear()
    regions = clock if sync_phases else SyncClock(timer=clock.timer)  # unsynced regions: host-side time only
    metrics = graphed.begin_epoch() if graphed is not None else EpochMetrics(num_outputs(model), device, eager=sync_phases)
    model.train()
    total = capped(loader, max_batches)
    bar = progress_bar(total, progress, f"epoch {epoch}")
    batches = 0
    start = clock.now()
    with regions.region("startup"), record_function("startup"), deferred_interrupt():
        iterator: Iterator = iter(loader)
    try:
        while max_batches is None or batches < max_batches:
            with regions.region("load"), record_function("load"):
                batch = next(iterator, None)
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
                    x, y = to_device(batch[0], batch[1], device, step)
                with regions.region("train"), record_function("train"):
                    loss, logits = train_step(model, optimizer, x, y, step)
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
        epoch_s = clock.now() - start
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
            del iterator  # shuts DataLoader workers down outside the epoch's clock
    if batches == 0:
        raise LabError("the training loader yielded no batches: is the dataset empty?")
    record: dict[str, object] = {"epoch": epoch, "batches": batches, "images": metrics.images}
    record.update({f"{phase}_s": regions.total(phase) for phase in PHASES})
    record["phases_synced"] = sync_phases
    record["epoch_s"] = epoch_s
    record["images_per_s"] = metrics.images / epoch_s if epoch_s > 0 else float("inf")
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
) -> dict[str, object]:
    """Test loss and top-1, run outside every training timing."""
    device = torch.device(device)
    clock = clock or clock_for(device)
    metrics = EpochMetrics(num_outputs(model), device)
    model.eval()
    start = clock.now()
    with deferred_interrupt():
        iterator = iter(loader)
    try:
        for batches, (x, y) in enumerate(iterator):
            if max_batches is not None and batches >= max_batches:
                break
            x, y = to_device(x, y, device, step)
            # no_grad as a block, not a decorator, so that mutation testing (which skips decorated functions) reaches it.
            with torch.no_grad(), torch.autocast(device.type, dtype=step.amp_dtype or torch.float32, enabled=step.amp_dtype is not None):
                logits = model(x)
                loss = F.cross_entropy(logits, y)
            metrics.update(loss, logits, y)
    finally:
        with deferred_interrupt():
            del iterator  # shuts test-loader workers down
    summary = metrics.summary()
    return {
        "test_loss": summary["loss"],
        "test_top1": summary["top1"],
        "test_images": metrics.images,
        "eval_s": clock.now() - start,
    }


SUMMED = ("startup_s", "load_s", "copy_s", "train_s", "metrics_s", "epoch_s")


def summarize(records: list[dict[str, object]]) -> dict[str, object]:
    """Means of the phase times over epochs; loss and top-1 of the last epoch."""
    if not records:
        return {}
    summary: dict[str, object] = {key: sum(float(r[key]) for r in records) / len(records) for key in SUMMED}  # type: ignore[arg-type]
    steady = records[1:] or records
    summary["steady_epoch_s"] = sum(float(r["epoch_s"]) for r in steady) / len(steady)  # type: ignore[arg-type]
    summary["first_epoch_s"] = float(records[0]["epoch_s"])  # type: ignore[arg-type]
    summary["images_per_s"] = sum(int(r["images"]) for r in records) / sum(float(r["epoch_s"]) for r in records)  # type: ignore[arg-type]
    summary["loss"] = records[-1]["loss"]
    summary["top1"] = records[-1]["top1"]
    summary["epochs"] = len(records)
    return summary
