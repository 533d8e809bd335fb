"""What every training benchmark does, once: build a LabRun, time epochs as rounds, record extra_info.

The benchmark modules only choose parameters; measuring lives here so it is
importable and tested like the rest of the library.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import torch

from .data import LabDataset, LoaderConfig, make_train_loader
from .machine import numerics_state
from .memory import memory_peaks
from .run import LabRun, RunConfig
from .suite import LabOptions, c32_answer
from .timing import SyncClock, clock_for
from .train import StepConfig

PHASE_KEYS = ("startup_s", "load_s", "copy_s", "train_s", "metrics_s")
# The loop's untimed bookkeeping (progress bar, callbacks) is tiny next to any phase; a
# remainder above this share of the epoch, and above the floor for very short epochs, is not.
UNTIMED_SHARE = 0.05
UNTIMED_FLOOR_S = 0.05
SUMMARY_KEYS = ("startup_s", "load_s", "copy_s", "train_s", "metrics_s", "epoch_s", "first_epoch_s", "steady_epoch_s", "images_per_s", "loss", "top1")


@dataclass(frozen=True)
class BenchSpec:
    """One training benchmark's configuration; defaults are the lab's (workers 2, SGD, BN, fp32)."""

    group: str
    device: str = "cpu"
    workers: int = 2
    optimizer: str = "sgd"
    batch_norm: bool = True
    step: StepConfig = StepConfig()
    compile_mode: str | None = None
    device_loader: bool = False
    sync_phases: bool = True
    flush_denormal: bool = False
    graph_step: bool = False
    retain_heap: bool = False
    cold_compile: bool = False
    epochs: int | None = None  # None: the preset's epochs
    evaluate: bool = True


def run_config(spec: BenchSpec, options: LabOptions) -> RunConfig:
    return RunConfig(
        device=spec.device,
        epochs=spec.epochs or options.epochs,
        optimizer=spec.optimizer,
        batch_norm=spec.batch_norm,
        max_batches=options.max_batches,
        eval_batches=options.eval_batches,
        step=spec.step,
        compile_mode=spec.compile_mode,
        device_loader=spec.device_loader,
        sync_phases=spec.sync_phases,
        flush_denormal=spec.flush_denormal,
        graph_step=spec.graph_step,
        retain_heap=spec.retain_heap,
        cold_compile=spec.cold_compile,
        loader=LoaderConfig(num_workers=spec.workers),
        numerics=options.numerics,
    )


def run_training_benchmark(
    benchmark: Any,
    spec: BenchSpec,
    options: LabOptions,
    train_set: LabDataset,
    test_set: LabDataset | None,
    *,
    train_loader: Iterable | None = None,
    extra: dict[str, object] | None = None,
    evaluate_now: bool = True,
) -> LabRun:
    """rounds = epochs on one model, so pytest-benchmark's statistics are over epochs.

    `evaluate_now=False` keeps the test evaluation for later (`SweepState.evaluation`): C3 trains
    every worker count, but only the one that turns out to be C3.2 is ever read for test accuracy.
    """
    config = run_config(spec, options)
    with memory_peaks(torch.device(config.device)) as memory:
        run = LabRun(config, train_set, test_set if spec.evaluate else None, train_loader=train_loader)
        benchmark.extra_info["epochs"] = run.records  # filled epoch by epoch: a run cut short keeps its finished epochs
        benchmark.pedantic(run.run_epoch, rounds=config.epochs, iterations=1, warmup_rounds=0)
        problems = [f"epoch {r['epoch']}: {p}" for r in run.records for p in epoch_problems(r)]
        if problems:
            pytest.fail("the epoch records do not add up: " + "; ".join(problems), pytrace=False)
        benchmark.extra_info.update(training_extra_info(run, spec, options, train_set))
        if evaluate_now:
            benchmark.extra_info.update(run.evaluate())
    benchmark.extra_info.update(memory)
    benchmark.extra_info.update(numerics_state())
    benchmark.extra_info.update(extra or {})
    return run


def train_or_serve(
    request: Any, benchmark: Any, spec: BenchSpec, options: LabOptions, lab_data: tuple, sweep: "SweepState",
    extra: dict[str, object] | None = None,
) -> LabRun:
    """Train `spec` as this benchmark, unless a benchmark of this session already trained exactly it:
    then this question is answered by that run, recorded in `sweep.served`, and skipped with the reason."""
    reason = sweep.serve_reason(spec, request.node.name, request.node.callspec.params)
    if reason:
        pytest.skip(reason)
    train_set, test_set = lab_data
    return run_training_benchmark(benchmark, spec, options, train_set, test_set, extra=extra)


def training_extra_info(run: LabRun, spec: BenchSpec, options: LabOptions, train_set: LabDataset) -> dict[str, object]:
    summary = run.summary()
    info: dict[str, object] = {key: summary[key] for key in SUMMARY_KEYS}
    info.update(
        epochs=run.records,
        data=train_set.source,
        data_source=options.data,
        preset=options.preset,
        batches_per_epoch=run.records[0]["batches"] if run.records else 0,
        full_epoch=options.max_batches is None,
        device=str(run.device),
        workers=spec.workers,
        optimizer=run.config.as_record()["optimizer"],
        batch_norm=spec.batch_norm,
        batch_size=run.config.loader.batch_size,
    )
    return info


def epoch_problems(record: dict[str, object]) -> list[str]:
    """What is wrong with a training benchmark's per-epoch record; [] when nothing is.

    Every batch passes through load, copy, train and metrics, so on a real clock
    each of them is positive. All phases are read from the same clock as epoch_s
    and lie inside it, so together they cannot exceed it (beyond rounding); with
    synchronized phases, what they leave out is only the loop's own bookkeeping,
    so a large remainder means work escaped every phase.
    """
    problems = []
    for key in PHASE_KEYS[1:]:
        if not float(record[key]) > 0:  # type: ignore[arg-type]
            problems.append(f"{key} is {record[key]}: the phase was not timed")
    if not float(record["startup_s"]) >= 0:  # type: ignore[arg-type]
        problems.append(f"startup_s is {record['startup_s']}")
    epoch_s = float(record["epoch_s"])  # type: ignore[arg-type]
    phases = sum(float(record[key]) for key in PHASE_KEYS)  # type: ignore[arg-type]
    if not phases <= epoch_s + 1e-6:
        problems.append(f"the phases add up to {phases} s, more than epoch_s {epoch_s} s: time counted twice")
    if record.get("phases_synced", True) and epoch_s - phases > max(UNTIMED_SHARE * epoch_s, UNTIMED_FLOOR_S):
        problems.append(f"{epoch_s - phases:.4f} s of the {epoch_s:.4f} s epoch is in no phase")
    if not math.isfinite(float(record["loss"])):  # type: ignore[arg-type]
        problems.append(f"loss is {record['loss']}")
    if not 0.0 <= float(record["top1"]) <= 1.0:  # type: ignore[arg-type]
        problems.append(f"top1 is {record['top1']}, not a fraction")
    if not int(record["images"]) >= int(record["batches"]) >= 1:  # type: ignore[call-overload]
        problems.append(f"{record['batches']} batches of {record['images']} images")
    return problems


def loader_epoch(loader: Iterable, device: torch.device | str = "cpu", clock: SyncClock | None = None) -> dict[str, object]:
    """Iterate one epoch of a loader with no training: the C3 loader-only figure."""
    clock = clock or clock_for(device)
    images, batches = 0, 0
    with clock.region("load"):
        for x, _ in loader:
            images += x.shape[0]
            batches += 1
    load_s = clock.total("load")
    return {"load_s": load_s, "images": images, "batches": batches, "images_per_s": images / load_s if load_s > 0 else float("inf")}


def loader_only_sweep(train_set: LabDataset, workers: Iterable[int]) -> dict[int, float]:
    """load_s of one full CPU epoch per worker count (the C3.2 fallback when C3 did not run)."""
    return {w: float(loader_epoch(make_train_loader(train_set, LoaderConfig(num_workers=w)))["load_s"]) for w in workers}


@dataclass
class SweepState:
    """C3's measurements in this pytest run, the C3.2 answer derived from them once, and the
    training runs that other questions share instead of training the same configuration again."""

    training: dict[int, float] = field(default_factory=dict)  # workers -> mean load_s per epoch, with training
    training_full_epochs: bool = False
    training_device: str | None = None  # the device whose C3 sweep the answer uses
    loader: dict[int, float] = field(default_factory=dict)  # workers -> load_s of one loader-only epoch
    answer: dict[str, object] | None = None
    trained: dict[BenchSpec, str] = field(default_factory=dict)  # spec (group cleared) -> the benchmark that trained it
    served: list[dict[str, object]] = field(default_factory=list)  # questions answered by a run of another benchmark
    runs: dict[str, tuple[LabRun, dict]] = field(default_factory=dict)  # benchmark -> its trained run and extra_info
    evaluations: dict[str, dict[str, object]] = field(default_factory=dict)  # benchmark -> its deferred evaluation

    def record_trained(self, spec: BenchSpec, name: str, run: LabRun, extra_info: dict) -> None:
        """Keep a trained run (model and optimizer state included) so that questions with the same
        configuration can read it, and evaluate it, instead of training it again."""
        self.trained[replace(spec, group="")] = name
        self.runs[name] = (run, extra_info)

    def evaluation(self, name: str) -> dict[str, object]:
        """The test evaluation of benchmark `name`'s run, done once, on first need; also added to its extra_info."""
        if name not in self.evaluations:
            run, extra_info = self.runs[name]
            self.evaluations[name] = run.evaluate()
            extra_info.update(self.evaluations[name])
        return self.evaluations[name]

    def serving_run(self, spec: BenchSpec) -> str | None:
        """The benchmark of this session that already trained exactly `spec` (any group), if one did;
        one that also evaluated serves a question that needs no evaluation."""
        keys = [replace(spec, group="", evaluate=True)] + ([] if spec.evaluate else [replace(spec, group="")])
        return next((self.trained[k] for k in keys if k in self.trained), None)

    def serve_reason(self, spec: BenchSpec, name: str, params: dict[str, object]) -> str | None:
        """If a run of this session already trained `spec`, record that it answers this question and say so."""
        by = self.serving_run(spec)
        if by is None:
            return None
        self.serve(spec.group, name, params, by, self.evaluation(by) if spec.evaluate else None)
        return (f"served by {by}: the same configuration was already trained{' and evaluated' if spec.evaluate else ''} "
                f"in this run, so {spec.group} reads its figures (JSON: lab.served, extra_info.serves) instead of training it again")

    def serve(self, group: str, name: str, params: dict[str, object], by: str, evaluation: dict[str, object] | None = None) -> None:
        entry: dict[str, object] = {"group": group, "name": name, "params": dict(params), "by": by}
        if evaluation is not None:
            entry["evaluation"] = dict(evaluation)  # made for this question, after the serving benchmark was saved
        self.served.append(entry)

    def serves(self) -> dict[str, list[str]]:
        """benchmark name -> the questions it answered besides its own."""
        out: dict[str, list[str]] = {}
        for entry in self.served:
            groups = out.setdefault(str(entry["by"]), [])
            if entry["group"] not in groups:
                groups.append(str(entry["group"]))
        return out

    def c32(self, train_set: LabDataset, fallback_workers: Iterable[int]) -> dict[str, object]:
        """C3.2 from full-epoch training times if C3 ran them, else the loader-only sweep (run now if needed).

        Capped smoke epochs time mostly worker start-up, so their load_s is no
        basis for choosing a worker count; a full loader epoch is.
        """
        if self.answer is None:
            if self.training_full_epochs and len(self.training) >= 2:
                self.answer = c32_answer(self.training, source="C3 (training, full epochs)")
            else:
                if len(self.loader) < 2:
                    self.loader.update(loader_only_sweep(train_set, fallback_workers))
                self.answer = c32_answer(self.loader, source="C3-loader (full CPU loader epochs)")
        return self.answer



def lab_record(options: LabOptions, sweep: SweepState | None) -> dict[str, object]:
    """The JSON's top-level `lab` key: the workload, the numerics, the C3.2 answer, and which run answered which question."""
    return {
        "preset": options.preset,
        "data": options.data,
        "epochs": options.epochs,
        "max_batches": options.max_batches,
        "eval_batches": options.eval_batches,
        "devices": list(options.devices),
        "numerics": {
            "cudnn_tf32": options.numerics.cudnn_tf32,
            "float32_matmul_precision": options.numerics.matmul_precision,
            "note": ("CUDA fp32 convolutions run as TF32 (PyTorch's default on Ampere and newer; the lab's GPUs had none)"
                     if options.numerics.cudnn_tf32 else "CUDA fp32 convolutions in full fp32, as on the lab's GPUs (--lab-tf32 off)"),
        },
        "c3_2": sweep.answer if sweep else None,
        "served": list(sweep.served) if sweep else [],
    }
