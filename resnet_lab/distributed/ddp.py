"""The lab's training loop, data-parallel: DistributedDataParallel over DistributedSampler shards.

`DataParallelRun` is a `LabRun` whose model DDP wraps when its World has more than one rank (one
rank is the plain loop: D1's baseline, and the CLI without torchrun). Each rank trains on its
shard of every epoch; DDP averages the gradients with allreduce during backward, and BatchNorm
normalizes each rank's own batch (no SyncBatchNorm, as in the lab). Records are the job's:
images, loss and top-1 over all ranks; times of the slowest rank, plus each rank's in `ranks`.

D3's direct measurement (`ParallelConfig.measure_comm`): every step runs twice on the same batch,
once under `no_sync()` (forward and backward without allreduce) and once synced, with a
communication hook (`CommTimer`, PyTorch's allreduce hook plus timestamps) timing each bucket's
allreduce. Synced minus local is the communication that backward did not hide; the hook's
allreduce time minus that is what overlapped with backward. The order of the two passes
alternates per batch, so neither always runs on warm caches. Only the synced pass updates the
weights (its gradients are the DDP ones), so the run trains exactly as without the measurement.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, cast

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from ..data import LabDataset, make_test_loader, make_train_loader
from ..engine.clock import clock_for
from ..engine.loop import evaluate, train_one_epoch
from ..engine.metrics import EpochMetrics, num_outputs
from ..engine.phases import EPOCH_S, IMAGES_PER_S, RANK_KEYS
from ..engine.run import LabRun, RunConfig
from ..engine.step import StepConfig, to_device
from ..engine.workers import loader_failure
from ..errors import DivergenceError, LabError, RankFailure
from ..interrupts import deferred_interrupt
from .launch import World
from .scaling import union_length

LR_RULES = ("lab", "linear-warmup")
DDP_BUCKET_CAP_MB = 25.0  # DistributedDataParallel's default bucket_cap_mb (MiB)


@dataclass(frozen=True)
class ParallelConfig:
    """How the data-parallel run trains and what it measures; defaults are the lab's."""

    bucket_cap_mb: float = DDP_BUCKET_CAP_MB
    # "lab": lr as prescribed whatever the batch; "linear-warmup": lr * global_batch / base_batch,
    # reached linearly from the prescribed lr over warmup_epochs (Goyal et al., 2017, "Accurate,
    # Large Minibatch SGD"; their 5 of 90 epochs, here 1 of the lab's 5 by default).
    lr_rule: str = "lab"
    warmup_epochs: int = 1
    base_batch: int = 128  # the batch the lab's lr belongs to
    measure_comm: bool = False  # D3: paired no_sync/synced passes with the allreduce timed

    def __post_init__(self) -> None:
        if self.lr_rule not in LR_RULES:
            raise LabError(f"unknown lr rule '{self.lr_rule}': choose one of {', '.join(LR_RULES)}")
        if self.bucket_cap_mb <= 0 or self.warmup_epochs < 0 or self.base_batch < 1:
            raise LabError(f"bucket_cap_mb must be > 0, warmup_epochs >= 0 and base_batch >= 1: {self}")


def gradient_size(model: torch.nn.Module) -> dict[str, int]:
    """Elements and bytes of the gradients DDP reduces each step (every trainable parameter)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return {
        "gradient_elements": sum(p.numel() for p in params),
        "gradient_bytes": sum(p.numel() * p.element_size() for p in params),
    }


def collective_failure(exc: BaseException) -> bool:
    """A collective failed because a peer rank died or hung (gloo and NCCL word it differently)."""
    text = str(exc)
    return isinstance(exc, dist.DistError) or "/gloo/" in text or "NCCL" in text or "Connection closed by peer" in text


class CommTimer:
    """A DDP communication hook: PyTorch's `allreduce_hook`, with each bucket's allreduce timed.

    A span runs from the moment DDP hands a bucket over (its gradients are ready) until its
    allreduce has finished. On the CPU both ends are host clock readings, the second in the
    future's callback; on CUDA they are events in stream order, read after the step's sync.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self._spans: list[list[Any]] = []
        self.bucket_bytes: list[int] = []  # the last step's buckets in the order they were ready
        self._origin: Any = None

    def _mark(self) -> Any:
        if self.cuda:  # cuda-only
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def hook(self, state, bucket):  # type: ignore[no-untyped-def]  # DDP checks annotations, see below
        # No annotations: DDP checks them against the real classes, and this module's are strings.
        span = [self._mark(), None]
        self._spans.append(span)
        self.bucket_bytes.append(bucket.buffer().numel() * bucket.buffer().element_size())

        def finished(fut):  # type: ignore[no-untyped-def]  # as hook: DDP checks annotations
            span[1] = self._mark()
            return fut.value()

        return default_hooks.allreduce_hook(state, bucket).then(finished)

    def begin_step(self) -> None:
        self._spans, self.bucket_bytes = [], []
        self._origin = self._mark() if self.cuda else None

    def end_step(self) -> float:
        """Seconds during which at least one bucket was being reduced in this step (after its backward)."""
        if self.cuda:  # cuda-only
            torch.cuda.synchronize()
            spans = [(self._origin.elapsed_time(s) / 1e3, self._origin.elapsed_time(e) / 1e3) for s, e in self._spans]
        else:
            spans = [(s, e) for s, e in self._spans]
        return union_length(spans)


def combine_rank_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One record for the job: images summed, loss and top-1 weighted by images, times of the slowest rank.

    Every time comes from the one rank whose epoch took longest (the job's epoch ends with it),
    so the phases still add up within the record.
    """
    job = dict(max(records, key=lambda r: float(r[EPOCH_S])))
    images = sum(int(r["images"]) for r in records)
    job["images"] = images
    for key in ("loss", "top1"):
        if all(isinstance(r.get(key), (int, float)) for r in records):
            job[key] = sum(float(r[key]) * int(r["images"]) for r in records) / images
    job["per_class_top1"] = None  # per-class counts stay on each rank
    job[IMAGES_PER_S] = images / job[EPOCH_S] if job.get(EPOCH_S) else float("inf")
    job["ranks"] = [{k: r.get(k) for k in RANK_KEYS} for r in records]
    return job


def comm_derived(record: dict[str, Any]) -> dict[str, Any]:
    """D3's figures from the paired passes' totals (seconds per epoch)."""
    copy, local, synced, update = (float(record[k]) for k in ("copy_s", "local_s", "synced_s", "update_s"))
    exposed = synced - local
    reduce = float(record["allreduce_s"])
    return {
        "nosync_training_s": copy + local + update,
        "ddp_training_s": copy + synced + update,
        "training_s": copy + synced + update,
        "comm_exposed_s": exposed,
        "overlap_s": reduce - exposed,
        "overlap_fraction": (reduce - exposed) / reduce if reduce > 0 else None,
    }


def _forward_backward(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, step: StepConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.autocast(x.device.type, dtype=step.amp_dtype or torch.float32, enabled=step.amp_dtype is not None):
        logits = model(x)
        loss = F.cross_entropy(logits, y)
    loss.backward()
    return loss, logits


class DataParallelRun(LabRun):
    """A LabRun on every rank of `world`: DDP model, DistributedSampler shard, the job's records."""

    def __init__(
        self,
        config: RunConfig,
        train_set: LabDataset,
        test_set: LabDataset | None = None,
        *,
        world: World = World(),
        parallel: ParallelConfig = ParallelConfig(),
        progress: bool = False,
    ) -> None:
        self.world, self.parallel = world, parallel
        if world.world_size > 1 and (config.compile_mode or config.graph_step or config.device_loader):
            raise LabError(
                "data-parallel runs use the lab's eager loop and DataLoader: "
                "compile_mode, graph_step and device_loader are single-device options"
            )
        if parallel.measure_comm and world.world_size < 2:
            raise LabError("measuring communication needs at least 2 ranks")
        config = replace(config, device=world.device if world.world_size > 1 else config.device)
        self.sampler: DistributedSampler[int] | None = (
            DistributedSampler(
                train_set, num_replicas=world.world_size, rank=world.rank, shuffle=True, seed=config.seed
            )
            if world.world_size > 1
            else None
        )
        # Worker seeds differ per rank, so the ranks' augmentations are independent draws.
        loader = make_train_loader(
            train_set, replace(config.loader, seed=config.loader.seed + world.rank), config.device, sampler=self.sampler
        )
        test_loader = None
        if test_set is not None:
            # Each rank evaluates its shard of the test set (in order; padded to equal shards).
            shard: DistributedSampler[int] | None = (
                DistributedSampler(test_set, num_replicas=world.world_size, rank=world.rank, shuffle=False)
                if world.world_size > 1
                else None
            )
            test_loader = make_test_loader(test_set, config.loader, config.device, sampler=shard)
        self.global_batch = world.world_size * config.loader.batch_size
        steps = len(loader) if config.max_batches is None else min(len(loader), config.max_batches)
        self.base_lr = config.optim.lr
        self.peak_lr = (
            self.base_lr * self.global_batch / parallel.base_batch
            if parallel.lr_rule == "linear-warmup"
            else self.base_lr
        )
        self.warmup_steps = parallel.warmup_epochs * steps if parallel.lr_rule == "linear-warmup" else 0
        super().__init__(config, train_loader=loader, test_loader=test_loader, progress=progress and world.lead)
        self.steps_done = 0
        self._set_lr()
        self.gradients = gradient_size(self.model)
        self.comm_timer: CommTimer | None = None
        if world.world_size > 1:
            # DDP broadcasts rank 0's weights and buffers here, so every rank starts identical.
            self.step_model = DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                bucket_cap_mb=parallel.bucket_cap_mb,
            )
            # Augmentation drawn in this process (no workers) differs per rank too.
            torch.manual_seed(config.seed + world.rank)
            if parallel.measure_comm:
                self.comm_timer = CommTimer(self.device)
                self.step_model.register_comm_hook(None, self.comm_timer.hook)

    def _set_lr(self) -> None:
        if self.warmup_steps and self.steps_done < self.warmup_steps:
            lr = self.base_lr + (self.peak_lr - self.base_lr) * self.steps_done / self.warmup_steps
        else:
            lr = self.peak_lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _after_step(self, _batches: int) -> None:
        self.steps_done += 1
        self._set_lr()

    def _train_epoch(self, on_batch_end: Callable[[int], None] | None = None) -> dict[str, object]:
        epoch = len(self.records) + 1

        def after_step(batches: int) -> None:
            self._after_step(batches)
            if on_batch_end is not None:
                on_batch_end(batches)

        if self.sampler is not None:
            self.sampler.set_epoch(epoch - 1)  # a fresh global shuffle every epoch, the same on every rank
        try:
            if self.parallel.measure_comm:
                record: dict[str, Any] = self._comm_epoch(epoch)
            else:
                record = train_one_epoch(
                    self.step_model,
                    self.train_loader,
                    self.optimizer,
                    self.device,
                    epoch=epoch,
                    max_batches=self.config.max_batches,
                    step=self.config.step,
                    progress=self.progress,
                    sync_phases=self.config.sync_phases,
                    on_batch_end=after_step,
                )
                record["training_s"] = float(record["copy_s"]) + float(record["train_s"])
            record["lr"] = self.optimizer.param_groups[0]["lr"]
            if self.world.world_size > 1:
                gathered: list[Any] = [None] * self.world.world_size
                dist.all_gather_object(gathered, record)
                record = combine_rank_records(gathered)
        except RuntimeError as exc:
            if self.world.world_size > 1 and collective_failure(exc):
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise RankFailure(
                    f"rank {self.world.rank} lost its peers in epoch {epoch}: another rank stopped, died or hung "
                    f"({first[:200]}); the launcher's log names the rank"
                ) from exc
            raise
        record.update(
            world_size=self.world.world_size,
            batch_per_rank=self.config.loader.batch_size,
            global_batch=self.global_batch,
            threads_per_rank=torch.get_num_threads(),
            step_s=float(record["training_s"]) / int(record["batches"]),
        )
        return record

    def _comm_epoch(self, epoch: int) -> dict[str, Any]:
        """One epoch of D3's paired passes (module docstring); per-epoch totals of each part."""
        assert self.comm_timer is not None
        # measure_comm needs 2 ranks or more, and those wrap the model in DDP (__init__).
        ddp = cast(DistributedDataParallel, self.step_model)
        optimizer, device, step = self.optimizer, self.device, self.config.step
        clock = clock_for(device)
        metrics = EpochMetrics(num_outputs(self.model), device)
        self.step_model.train()
        batches, allreduce, buckets = 0, 0.0, []
        start = clock.now()
        with clock.region("startup"), deferred_interrupt():
            iterator: Any = iter(self.train_loader)
        try:
            while self.config.max_batches is None or batches < self.config.max_batches:
                with clock.region("load"):
                    batch = next(iterator, None)
                if batch is None:
                    break
                with clock.region("copy"):
                    x, y = to_device(batch[0], batch[1], device, step)
                for synced in (False, True) if batches % 2 == 0 else (True, False):
                    optimizer.zero_grad(set_to_none=True)
                    if synced:
                        self.comm_timer.begin_step()
                        with clock.region("synced"):
                            loss, logits = _forward_backward(ddp, x, y, step)
                        allreduce += self.comm_timer.end_step()
                        buckets = list(self.comm_timer.bucket_bytes)
                        with clock.region("update"):
                            optimizer.step()
                        with clock.region("metrics"):
                            value = metrics.update(loss, logits.detach(), y)
                            if value is not None and not math.isfinite(value):
                                raise DivergenceError(epoch, batches, value)
                    else:
                        with clock.region("local"), ddp.no_sync():
                            _forward_backward(ddp, x, y, step)
                optimizer.zero_grad(set_to_none=True)  # the local pass's gradients are measurement only
                batches += 1
                self._after_step(batches)
            with clock.region("shutdown"), deferred_interrupt():
                iterator = None  # DataLoader workers shut down inside the epoch, as in the lab's loop
            epoch_s = clock.now() - start
        except (ConnectionError, EOFError, RuntimeError) as exc:
            failure = loader_failure(exc, iterator, epoch, batches)
            if failure is None:
                raise
            raise failure from exc
        finally:
            with deferred_interrupt():
                iterator = None
        if batches == 0:
            raise LabError("the training loader yielded no batches: is the dataset empty?")
        record: dict[str, Any] = {"epoch": epoch, "batches": batches, "images": metrics.images}
        for part in ("startup", "load", "copy", "local", "synced", "update", "metrics", "shutdown"):
            record[f"{part}_s"] = clock.total(part)
        record["train_s"] = record["synced_s"] + record["update_s"]  # the DDP step, as train_s is elsewhere
        record["allreduce_s"] = allreduce
        record["bucket_bytes"] = buckets
        record["phases_synced"] = True
        record[EPOCH_S] = epoch_s
        record[IMAGES_PER_S] = metrics.images / epoch_s if epoch_s > 0 else float("inf")
        record.update(metrics.summary())
        record.update(comm_derived(record))
        return record

    def evaluate(self) -> dict[str, Any]:
        """Test loss and top-1 over every rank's shard (eval_batches per rank), with rank 0's BatchNorm statistics.

        Every rank runs DDP's forward the same number of times, and DDP broadcasts rank 0's
        buffers before each: all shards are evaluated with the same model.
        """
        if self.test_loader is None or self.config.eval_batches == 0:
            return {}
        result = evaluate(
            self.step_model, self.test_loader, self.device, max_batches=self.config.eval_batches, step=self.config.step
        )
        if self.world.world_size == 1:
            return result
        gathered: list[Any] = [None] * self.world.world_size
        dist.all_gather_object(gathered, result)
        images = sum(int(r["test_images"]) for r in gathered)
        return {
            "test_loss": sum(float(r["test_loss"]) * int(r["test_images"]) for r in gathered) / images,
            "test_top1": sum(float(r["test_top1"]) * int(r["test_images"]) for r in gathered) / images,
            "test_images": images,
            "eval_s": max(float(r["eval_s"]) for r in gathered),
        }
