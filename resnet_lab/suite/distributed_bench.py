"""What the D benchmarks do, once (the D counterpart of `suite/benchmarking.py`).

D1 runs in this process on one device. D2-D5 run in a `RankGroup` whose rank 0 is this process,
so pytest-benchmark times rank 0's epochs: rounds = epochs, as in every training group, and
`extra_info` has the same keys as theirs plus the data-parallel ones (`world_size`,
`batch_per_rank`, `global_batch`, `backend`, `threads_per_rank`, ...). One group per (device,
world size) serves D2, D3 and D4 in a session.

On the CPU the DataLoader runs in the training process (no workers): its time is data I/O, which
the D questions exclude, and worker processes would take the cores the ranks are measured on.
"""

from __future__ import annotations

import gc
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ..data import DataConfig, LabDataset, LoaderConfig, load_datasets
from ..distributed.allreduce import allreduce_round, allreduce_summary
from ..distributed.ddp import DDP_BUCKET_CAP_MB, DataParallelRun, ParallelConfig
from ..distributed.launch import RankContext, World, capacity_reason, default_backend
from ..distributed.ranks import RankGroup
from ..engine.loop import summarize
from ..engine.run import RunConfig
from ..spec.groups import D1
from .benchmarking import SUMMARY_KEYS
from .options import LabOptions

D_EPOCHS = 2  # the lab: two epochs, the second one reported
D5_EPOCHS = 5
FIRST_BATCH, BATCH_FACTOR = 32, 4  # 32, 128, 512, 2048, ... until the device runs out of memory
WEAK_SCALING = (
    "weak scaling: each rank keeps its batch (batch_per_rank), so the global batch grows with the ranks "
    "(world_size x batch_per_rank) and an epoch takes world_size times fewer steps; the per-device batch is "
    "what fits one device's memory, so adding devices adds work per step instead of splitting a fixed batch"
)


@dataclass(frozen=True)
class DPreset:
    """How much D work a suite preset does."""

    cpu_max_batch: int  # a CPU has no out-of-memory error to stop D1 at (the kernel kills the process)
    world_sizes: tuple[int, ...]
    allreduce_rounds: int
    allreduce_iters: int  # allreduces per timed round, back to back (nccl-tests' iters)
    d5: bool  # D5 trains five full epochs: full preset only
    d3_max_batch: int | None = None  # D3 runs every step twice; smoke keeps it to the smallest batch


D_PRESETS = {
    # Smoke: D1 and D2 at 32 and 128, D3 at 32, D4; D2-D4 at world size 2 on one process group.
    "smoke": DPreset(
        cpu_max_batch=128, world_sizes=(2,), allreduce_rounds=5, allreduce_iters=5, d5=False, d3_max_batch=32
    ),
    "full": DPreset(cpu_max_batch=2048, world_sizes=(2, 4), allreduce_rounds=10, allreduce_iters=20, d5=True),
}


def batch_sizes(limit: int = 50_000) -> tuple[int, ...]:
    """D1's per-rank batches: 32, 128, 512, ... up to `limit` (the training set's size)."""
    sizes, batch = [], FIRST_BATCH
    while batch <= limit:
        sizes.append(batch)
        batch *= BATCH_FACTOR
    return tuple(sizes)


def bucket_bytes(cap_mb: float = DDP_BUCKET_CAP_MB) -> int:
    return int(cap_mb * 1024 * 1024)  # DDP counts bucket_cap_mb in MiB


def d_workers(device: str) -> int:
    """DataLoader workers per rank: the lab's 2 on CUDA; none on the CPU (see the module docstring)."""
    return 0 if torch.device(device).type == "cpu" else LoaderConfig().num_workers


def out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "can't allocate memory" in str(exc)


@dataclass(frozen=True)
class DSpec:
    """One D benchmark's configuration."""

    group: str
    device: str = "cpu"
    world_size: int = 1
    batch_per_rank: int = 128
    epochs: int = D_EPOCHS
    lr_rule: str = "lab"
    measure_comm: bool = False
    evaluate: bool = False

    @property
    def backend(self) -> str | None:
        return default_backend(self.device) if self.world_size > 1 else None

    def run_config(self, options: LabOptions) -> RunConfig:
        return RunConfig(
            device=self.device,
            epochs=self.epochs,
            max_batches=options.max_batches,
            eval_batches=options.eval_batches,
            loader=LoaderConfig(batch_size=self.batch_per_rank, num_workers=d_workers(self.device)),
        )

    def parallel(self) -> ParallelConfig:
        return ParallelConfig(lr_rule=self.lr_rule, measure_comm=self.measure_comm)


# ----------------------------------------------------------------------------- rank commands
# Module-level functions: RankGroup pickles them to every rank.


def load_data(context: RankContext, source: str) -> int:
    if "data" not in context.state:
        context.state["data"] = load_datasets(DataConfig(source=source))
    return len(context.state["data"][0])


def start_run(
    context: RankContext, key: str, config: RunConfig, parallel: ParallelConfig, with_test: bool
) -> dict[str, int]:
    train_set, test_set = context.state["data"]
    run = DataParallelRun(config, train_set, test_set if with_test else None, world=context.world, parallel=parallel)
    context.state[key] = run
    return run.gradients


def run_epoch(context: RankContext, key: str) -> dict[str, object]:
    return context.state[key].run_epoch()


def finish_run(context: RankContext, key: str) -> dict[str, object]:
    """The test figures (rank 0) and the run's memory freed on every rank."""
    run = context.state.pop(key)
    result = run.evaluate()
    del run
    gc.collect()
    return result


# ----------------------------------------------------------------------------- session state


@dataclass
class DState:
    """The D groups' shared state in one pytest session: D1's answers and the open rank groups."""

    d1_step_s: dict[tuple[str, int], float] = field(default_factory=dict)  # (device, batch) -> D1's reported step
    oom_batch: dict[str, int] = field(default_factory=dict)  # device -> smallest batch that ran out of memory
    groups: dict[tuple[str, int], RankGroup] = field(default_factory=dict)

    def largest_fitting(self, device: str) -> int | None:
        fits = [b for (d, b) in self.d1_step_s if d == device]
        return max(fits) if fits else None

    def skip_reason(self, spec: DSpec, options: LabOptions, train_images: int) -> str | None:
        """Why this machine or preset cannot run `spec`, or None."""
        if spec.world_size > 1:
            reason = capacity_reason(spec.device, spec.world_size)
            if reason:
                return reason
        elif spec.device.startswith("cuda") and not torch.cuda.is_available():
            return capacity_reason(spec.device, 1)
        if spec.batch_per_rank > train_images:
            return f"batch {spec.batch_per_rank} is larger than the training set ({train_images} images)"
        cap = D_PRESETS[options.preset].cpu_max_batch
        if spec.device == "cpu" and spec.batch_per_rank > cap:
            return (
                f"the {options.preset} preset caps CPU batches at {cap}: a CPU has no out-of-memory error to stop at "
                "(the kernel would kill the session); use --lab-preset full for more"
            )
        oom = self.oom_batch.get(spec.device)
        if oom is not None and spec.batch_per_rank >= oom and not (spec.group == D1 and spec.batch_per_rank == oom):
            return (
                f"{spec.device} ran out of memory at batch {oom} in D1 (recorded "
                f"there), so batch {spec.batch_per_rank} does not fit"
            )
        return None

    def group(self, device: str, world_size: int, source: str, data: tuple[LabDataset, LabDataset]) -> RankGroup:
        """The open group for (device, world_size), started on first use with the data loaded on every rank."""
        key = (device, world_size)
        group = self.groups.get(key)
        if group is None or not group.open:
            for other in list(self.groups.values()):
                other.close()  # one process group per process at a time
            group = RankGroup(world_size, device)
            group.context.state["data"] = data  # rank 0 already holds the session's datasets
            group.start()
            group.run(load_data, source)
            self.groups = {key: group}
        return group

    def close(self) -> None:
        for group in self.groups.values():
            group.close()
        self.groups = {}


# ----------------------------------------------------------------------------- extra_info


def d_extra_info(
    records: list[dict[str, Any]], spec: DSpec, options: LabOptions, train_set: LabDataset, world: World
) -> dict[str, Any]:
    """The training groups' extra_info keys, then the data-parallel ones; figures of the reported (last) epoch."""
    summary = summarize(records)
    reported = records[-1]
    info: dict[str, object] = {key: summary[key] for key in SUMMARY_KEYS}
    info.update(
        epochs=records,
        data=train_set.source,
        data_source=options.data,
        preset=options.preset,
        batches_per_epoch=reported["batches"],
        full_epoch=options.max_batches is None,
        device=spec.device,
        workers=d_workers(spec.device),
        optimizer="sgd",
        batch_norm=True,
        batch_size=spec.batch_per_rank,
        world_size=spec.world_size,
        batch_per_rank=spec.batch_per_rank,
        global_batch=spec.world_size * spec.batch_per_rank,
        backend=spec.backend,
        launcher=world.launcher,
        threads_per_rank=reported.get("threads_per_rank", world.threads_per_rank),
        reported_epoch=reported["epoch"],
        training_s=reported["training_s"],
        step_s=reported["step_s"],
        train_images=len(train_set),
        # An epoch of the whole training set at the measured step time (the epochs may be capped).
        full_epoch_training_s=float(reported["step_s"])
        * math.ceil(len(train_set) / (spec.world_size * spec.batch_per_rank)),
        lr=reported.get("lr"),
    )
    return info


def speedup_record(step_s: float, world_size: int, d1_step_s: float | None) -> dict[str, object]:
    """Weak-scaling speedup against D1 at the same per-rank batch: images/s ratio, = N * step_1 / step_N."""
    if not d1_step_s:
        return {"d1_step_s": None, "speedup": None, "efficiency": None}
    return {"d1_step_s": d1_step_s, "speedup": world_size * d1_step_s / step_s, "efficiency": d1_step_s / step_s}


# ----------------------------------------------------------------------------- the benchmarks


def run_d1(benchmark: Any, spec: DSpec, options: LabOptions, train_set: LabDataset, state: DState) -> dict[str, object]:
    """D1 at one batch on one device; running out of memory is recorded as the answer, not raised."""
    run = DataParallelRun(
        spec.run_config(options),
        train_set,
        None,
        world=World(device=spec.device, threads_per_rank=torch.get_num_threads()),
    )
    failed: list[str] = []

    def epoch() -> None:
        if failed:
            return  # the device is full: the remaining rounds record nothing
        try:
            run.run_epoch()
        except RuntimeError as exc:
            if not out_of_memory(exc):
                raise
            failed.append(str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "out of memory")
            run.optimizer.zero_grad(set_to_none=True)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    benchmark.pedantic(epoch, rounds=spec.epochs, iterations=1, warmup_rounds=0)
    world = World(device=spec.device, threads_per_rank=torch.get_num_threads())
    if failed:
        state.oom_batch[spec.device] = min(spec.batch_per_rank, state.oom_batch.get(spec.device, spec.batch_per_rank))
        info: dict[str, object] = {
            "out_of_memory": True,
            "error": failed[0],
            "epochs": run.records,
            "device": spec.device,
            "world_size": 1,
            "batch_per_rank": spec.batch_per_rank,
            "global_batch": spec.batch_per_rank,
            "batch_size": spec.batch_per_rank,
            "backend": None,
            "threads_per_rank": world.threads_per_rank,
            "preset": options.preset,
            "data": train_set.source,
            "timing": "not an epoch time: the rounds ran until the device ran out of memory",
        }
    else:
        info = d_extra_info(run.records, spec, options, train_set, world)
        info.update(out_of_memory=False, **run.gradients)
        state.d1_step_s[(spec.device, spec.batch_per_rank)] = float(info["step_s"])  # type: ignore[arg-type]  # step_s is a float in every D record
    benchmark.extra_info.update(info)
    return info


def run_parallel(
    benchmark: Any,
    spec: DSpec,
    options: LabOptions,
    data: tuple[LabDataset, LabDataset],
    state: DState,
) -> dict[str, object]:
    """D2, D3, D5: `spec.epochs` epochs on every rank of the group, rank 0 timed by pytest-benchmark."""
    group = state.group(spec.device, spec.world_size, options.data, data)
    key = f"{spec.group}-{spec.batch_per_rank}-{spec.lr_rule}"
    gradients = group.run(start_run, key, spec.run_config(options), spec.parallel(), spec.evaluate)
    records: list[dict[str, Any]] = []

    def epoch() -> None:
        records.append(group.run(run_epoch, key))

    benchmark.pedantic(epoch, rounds=spec.epochs, iterations=1, warmup_rounds=0)
    test = group.run(finish_run, key)
    for index, record in enumerate(records):
        record["warmup"] = index == 0
    info = d_extra_info(records, spec, options, data[0], group.world)
    info.update(gradients, **test)
    info.update(
        speedup_record(float(info["step_s"]), spec.world_size, state.d1_step_s.get((spec.device, spec.batch_per_rank)))
    )
    info["scaling"] = "weak"
    info["scaling_note"] = WEAK_SCALING
    if spec.measure_comm:
        info.update(comm_summary(records[-1], info.get("d1_step_s")))
    benchmark.extra_info.update(info)
    return info


def comm_summary(record: dict[str, Any], d1_step_s: float | None) -> dict[str, object]:
    """D3 of the reported epoch: both methods, the overlap, the buckets."""
    batches = int(record["batches"])
    lab = float(record["ddp_training_s"]) - d1_step_s * batches if d1_step_s else None
    buckets = record.get("bucket_bytes") or []
    return {
        "ddp_training_s": record["ddp_training_s"],
        "nosync_training_s": record["nosync_training_s"],
        "comm_exposed_s": record["comm_exposed_s"],
        "allreduce_s": record["allreduce_s"],
        "overlap_s": record["overlap_s"],
        "overlap_fraction": record["overlap_fraction"],
        # The lab's method: the DDP epoch minus D1's training time for as many steps at that batch.
        "comm_lab_s": lab,
        "d1_training_s": d1_step_s * batches if d1_step_s else None,
        "buckets": len(buckets),
        "bucket_bytes": buckets,
        "last_bucket_bytes": buckets[-1] if buckets else None,
    }


def run_d4(
    benchmark: Any,
    device: str,
    world_size: int,
    size_name: str,
    size_bytes: int,
    options: LabOptions,
    data: tuple[LabDataset, LabDataset],
    state: DState,
) -> dict[str, object]:
    """D4: fp32 allreduce of `size_bytes` per rank, rounds of back-to-back operations, nccl-tests' bandwidths."""
    preset = D_PRESETS[options.preset]
    group = state.group(device, world_size, options.data, data)
    numel = size_bytes // 4
    rounds: list[dict[str, float]] = []

    def one_round() -> None:
        rounds.append(group.run(allreduce_round, numel, preset.allreduce_iters))

    benchmark.pedantic(one_round, rounds=preset.allreduce_rounds, iterations=1, warmup_rounds=1)
    info = allreduce_summary(rounds[1:] if len(rounds) > preset.allreduce_rounds else rounds, numel * 4, world_size)
    info.update(
        size=size_name,
        device=device,
        world_size=world_size,
        backend=group.world.backend,
        launcher=group.world.launcher,
        threads_per_rank=group.world.threads_per_rank,
        iters_per_round=preset.allreduce_iters,
        preset=options.preset,
    )
    benchmark.extra_info.update(info)
    return info
