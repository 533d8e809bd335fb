"""`resnet-lab estimate RUN.json [...] [--preset full|smoke]`: a preset's wall time, predicted from earlier runs.

Before a scarce GPU window is spent, this says how long the suite will take there, from the
per-epoch records of earlier runs on that machine (complete or cut short; JSON or run log).

Model, per training benchmark of the preset's plan (`plan`), each part read off the records:
    epoch      = other + batches x (load + copy + train + metrics per batch)
    benchmark  = epochs x (epoch + round overhead) + first-epoch extra + evaluation + setup
`load` per batch comes from records at the same device and worker count, `train` from the same
device, optimizer, BatchNorm and C8 variant; `copy`/`metrics` per batch, `other` (worker start-up,
loop overhead), the round overhead (worker shutdown), the first epoch's extra and the setup come
from the same device and worker count where recorded, else the device's median. A benchmark whose
`load` or `train` rate has no record is named, not guessed. Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from ..errors import LabError
from ..spec import groups
from .runs import Bench, Run, as_number

TRAIN_IMAGES, TEST_IMAGES, TRAIN_BATCH, TEST_BATCH = 50_000, 10_000, 128, 100
LAB_OPTIMIZERS = ("sgd", "sgd-nesterov", "adagrad", "adadelta", "adam")


@dataclass(frozen=True)
class Planned:
    """One benchmark the preset will run (names follow the suite's test ids)."""

    question: str
    name: str
    device: str
    kind: str = "train"  # train | loader | probe
    workers: int | None = 2
    optimizer: str = "sgd"
    batch_norm: bool = True
    variant: str | None = None  # C8 variant; None for the lab's own configuration
    epochs: int = 1
    batches: int = 1
    eval_batches: int = 0  # test batches evaluated after training
    rounds: int = 1  # loader: epochs of the loader alone


@dataclass(frozen=True)
class Workload:
    preset: str
    epochs: int
    batches: int  # per training epoch
    eval_batches: int
    c8_epochs: int
    profile_batches: int
    c3_workers: tuple[int, ...]
    devices: tuple[str, ...]
    c32: int | None
    full_epochs: bool


def workload(
    preset: str,
    devices: Sequence[str],
    epochs: int | None,
    batches: int | None,
    eval_batches: int | None,
    c32: int | None,
    c3_workers: Sequence[int] | None = None,
) -> Workload:
    """The suite's preset (suite.PRESETS) with the same overrides as the --lab-* options."""
    from ..spec.presets import (  # the suite's own numbers, not a copy
        C3_DEFAULT_WORKERS,
        PRESETS,
    )

    if preset not in PRESETS:
        raise LabError(f"--preset: unknown preset '{preset}'; choose one of {', '.join(PRESETS)}")
    chosen = PRESETS[preset]
    full_batches = math.ceil(TRAIN_IMAGES / TRAIN_BATCH)
    cap = chosen.max_batches if batches is None else (batches or None)
    eval_cap = chosen.eval_batches if eval_batches is None else (eval_batches or None)
    return Workload(
        preset=preset,
        epochs=epochs or chosen.epochs,
        batches=min(full_batches, cap) if cap else full_batches,
        eval_batches=min(math.ceil(TEST_IMAGES / TEST_BATCH), eval_cap)
        if eval_cap
        else math.ceil(TEST_IMAGES / TEST_BATCH),
        c8_epochs=epochs or chosen.c8_epochs,
        profile_batches=chosen.profile_steps + 2,  # wait + warmup + active
        c3_workers=tuple(c3_workers or C3_DEFAULT_WORKERS),
        devices=tuple(devices),
        c32=c32,
        full_epochs=cap is None,
    )


def plan(work: Workload) -> list[Planned]:
    """What the suite runs for this workload, in its order, with the configurations it shares
    (the C3 point at the C3.2 count also answers C4, C5, C6 sgd and C7 BN on: not planned twice)."""
    out: list[Planned] = [Planned(groups.Q1_Q4, "test_q1_q4_record", "cpu", kind="probe", workers=None)]
    for device in work.devices:
        train = Planned("", "", device, epochs=work.epochs, batches=work.batches)
        out.append(
            replace(
                train,
                question=groups.Q3B,
                name=f"test_q3b_profile[device={device}]",
                kind="probe",
                batches=work.profile_batches,
                epochs=1,
            )
        )
        out += [replace(train, question=groups.C2, name=f"test_c2_phases[device={device}]")]
        out += [
            replace(
                train,
                question=groups.C3,
                name=f"test_c3_workers[device={device}-workers={w}]",
                workers=w,
                eval_batches=work.eval_batches,
            )
            for w in work.c3_workers
        ]
    if not work.full_epochs:
        out += [
            Planned(groups.C3_LOADER, f"test_c3_loader_only[workers={w}]", "cpu", kind="loader", workers=w)
            for w in work.c3_workers
        ]
    for device in work.devices:
        train = Planned("", "", device, epochs=work.epochs, batches=work.batches, workers=work.c32)
        out.append(replace(train, question=groups.C4, name=f"test_c4_workers[device={device}-workers=one]", workers=1))
        out += [
            replace(
                train,
                question=groups.C6,
                name=f"test_c6_optimizer[device={device}-optimizer={o}]",
                optimizer=o,
                eval_batches=work.eval_batches,
            )
            for o in LAB_OPTIMIZERS
            if o != "sgd"
        ]
        out.append(
            replace(
                train,
                question=groups.C7,
                name=f"test_c7_batch_norm[device={device}-batch_norm=False]",
                batch_norm=False,
                eval_batches=work.eval_batches,
            )
        )
    return out


def plan_c8(work: Workload, variants: Iterable[str]) -> list[Planned]:
    return [
        Planned(
            groups.C8,
            f"test_c8_variant[device={device}-variant={v}]",
            device,
            variant=v,
            epochs=work.c8_epochs,
            batches=work.batches,
            workers=work.c32,
        )
        for device in work.devices
        for v in variants
    ]


# ---------------------------------------------------------------------------
# rates read off the records
# ---------------------------------------------------------------------------


def _device(bench: Bench) -> str:
    return str(bench.param("device", "cpu"))


def _workers(bench: Bench) -> int | None:
    value = as_number(bench.param("workers"))
    return None if value is None else int(value)


@dataclass
class Rates:
    """Per-batch and per-epoch figures collected from the input runs, by configuration."""

    per_batch: dict[tuple, list[float]] = field(
        default_factory=dict
    )  # (phase, key...) -> seconds per batch, one per record
    per_epoch: dict[tuple, list[float]] = field(
        default_factory=dict
    )  # (what, key...) -> seconds, one per record/benchmark
    loader: dict[tuple, list[float]] = field(default_factory=dict)  # (device, workers) -> seconds per loader-only epoch
    probes: dict[tuple, list[float]] = field(default_factory=dict)  # (group, device) -> seconds per benchmark

    def add(self, table: dict[tuple, list[float]], key: tuple, value: float | None) -> None:
        if value is not None and math.isfinite(value):
            table.setdefault(key, []).append(value)

    def get(self, table: dict[tuple, list[float]], *keys: tuple) -> float | None:
        """The median of the first key that has values (most specific first)."""
        for key in keys:
            if table.get(key):
                return statistics.median(table[key])
        return None


def _variant(bench: Bench) -> str | None:
    if bench.group != groups.C8:
        return None
    return str(bench.param("variant"))


def collect(runs: Sequence[Run]) -> Rates:
    rates = Rates()
    for run in runs:
        for bench in run.benchmarks:
            device, workers = _device(bench), _workers(bench)
            if bench.group in (groups.Q1_Q4, groups.Q3B):
                rates.add(rates.probes, (bench.group, device), bench.stat("mean"))
                continue
            if bench.group == groups.C3_LOADER:
                rates.add(rates.loader, (device, workers), bench.stat("mean") or bench.number("load_s"))
                continue
            records = bench.epochs()
            if not records:
                continue
            optimizer = str(bench.extra("optimizer") or "sgd")
            batch_norm = bench.extra("batch_norm") is not False
            variant = _variant(bench)
            rounds = bench.round_times()
            for index, record in enumerate(records):
                batches = as_number(record.get("batches"))
                epoch_s = as_number(record.get("epoch_s"))
                recorded = {k: as_number(record.get(f"{k}_s")) for k in ("load", "copy", "train", "metrics")}
                phases = {k: v for k, v in recorded.items() if v is not None}
                if not batches or epoch_s is None or len(phases) < len(recorded):
                    continue
                if record.get("warmup") is True or index == 0:
                    continue  # steady epochs only; the first epoch's extra is taken below
                # A device-resident loader's rate depends on the variant, a DataLoader's on its workers.
                load_key = (
                    ("load", device, None, variant)
                    if bench.extra("loader") == "device-resident"
                    else ("load", device, workers, None)
                )
                rates.add(rates.per_batch, load_key, phases["load"] / batches)
                rates.add(rates.per_batch, ("copy", device), phases["copy"] / batches)
                rates.add(rates.per_batch, ("train", device, optimizer, batch_norm, variant), phases["train"] / batches)
                rates.add(rates.per_batch, ("metrics", device), phases["metrics"] / batches)
                other = epoch_s - sum(phases.values())
                rates.add(rates.per_epoch, ("other", device, workers), other)
                rates.add(rates.per_epoch, ("other", device), other)
                if index < len(rounds):
                    rates.add(rates.per_epoch, ("round", device, workers), rounds[index] - epoch_s)
                    rates.add(rates.per_epoch, ("round", device), rounds[index] - epoch_s)
            steady = [s for s in (as_number(r.get("epoch_s")) for r in records[1:]) if s is not None]
            first = as_number(records[0].get("epoch_s"))
            if first is not None and steady:
                extra = first - statistics.fmean(steady)
                rates.add(rates.per_epoch, ("first", device, variant), extra)
            test_images, eval_s = as_number(bench.extra("test_images")), as_number(bench.extra("eval_s"))
            if test_images and eval_s is not None:
                rates.add(rates.per_epoch, ("eval_per_image", device), eval_s / test_images)
            call_s = as_number(bench.extra("test_call_s"))
            if call_s is not None:
                rates.add(rates.per_epoch, ("setup", device), call_s - sum(rounds) - (eval_s or 0.0))
    return rates


@dataclass(frozen=True)
class Prediction:
    planned: Planned
    seconds: float | None
    missing: str = ""  # what the records lack, when seconds is None
    notes: tuple[str, ...] = ()  # parts taken as 0 for want of records


def predict(item: Planned, rates: Rates) -> Prediction:
    device, workers, variant = item.device, item.workers, item.variant
    if item.kind == "probe":
        seconds = rates.get(rates.probes, (item.question, device))
        return Prediction(item, seconds, "" if seconds is not None else f"no {item.question} record on {device}")
    if item.kind == "loader":
        seconds = rates.get(rates.loader, (device, workers))
        return Prediction(item, seconds, "" if seconds is not None else f"no loader-only epoch at {workers} workers")
    load = rates.get(rates.per_batch, ("load", device, None, variant), ("load", device, workers, None))
    train = rates.get(rates.per_batch, ("train", device, item.optimizer, item.batch_norm, variant))
    if load is None or train is None:
        lacks = []
        if load is None:
            lacks.append(f"loading at {workers} workers")
        if train is None:
            what = f"C8 variant {variant}" if variant else f"{item.optimizer}{'' if item.batch_norm else ' without BN'}"
            lacks.append(f"training with {what}")
        return Prediction(item, None, f"no {device} records of {' or '.join(lacks)}")
    notes = []

    def part(name: str, *keys: tuple) -> float:
        value = rates.get(rates.per_epoch if name != "copy" and name != "metrics" else rates.per_batch, *keys)
        if value is None:
            notes.append(name)
            return 0.0
        return value

    per_batch = load + train + part("copy", ("copy", device)) + part("metrics", ("metrics", device))
    other = part("other", ("other", device, workers), ("other", device))
    round_overhead = part("round", ("round", device, workers), ("round", device))
    first = part("first", ("first", device, variant), ("first", device, None))
    evaluation = (
        item.eval_batches * TEST_BATCH * part("eval_per_image", ("eval_per_image", device))
        if item.eval_batches
        else 0.0
    )
    setup = part("setup", ("setup", device))
    seconds = item.epochs * (other + item.batches * per_batch + round_overhead) + first + evaluation + setup
    return Prediction(item, seconds, notes=tuple(notes))


def c32_from(runs: Sequence[Run], full_epochs: bool) -> int | None:
    """The C3.2 count the suite would pick for this kind of workload: from C3's own training sweep when
    epochs are whole, else from the loader-only sweep (as `SweepState.c32` does); recorded or recomputed."""
    from ..spec.presets import c32_answer  # the suite's rule, not a copy

    wanted = "C3 (training" if full_epochs else "C3-loader"
    for run in runs:
        answer = run.lab.get("c3_2")
        if (
            isinstance(answer, dict)
            and str(answer.get("source", "")).startswith(wanted)
            and as_number(answer.get("workers")) is not None
        ):
            return int(answer["workers"])
    for run in runs:
        loads: dict[int, float] = {}
        for bench in run.group(groups.C3 if full_epochs else groups.C3_LOADER):
            workers, mean_load = _workers(bench), bench.number("load_s")
            values = bench.epoch_values("load_s") or ([mean_load] if mean_load else [])
            if workers is not None and values and (not full_epochs or bench.extra("full_epoch") is True):
                loads[workers] = statistics.fmean(values)
        if len(loads) >= 2:
            return int(c32_answer(loads)["workers"])  # type: ignore[call-overload]  # an int: c32_answer's record is untyped
    return None


# ---------------------------------------------------------------------------
# the prediction
# ---------------------------------------------------------------------------


def _devices(given: Sequence[str] | None, runs: Sequence[Run]) -> tuple[str, ...]:
    if given:
        return tuple(given)
    has_cuda = any(_device(b).startswith("cuda") for run in runs for b in run.benchmarks)
    return ("cuda",) if has_cuda else ("cpu",)


def estimate(runs: Sequence[Run], args: argparse.Namespace) -> tuple[list[Prediction], Workload]:
    devices = _devices(args.device, runs)
    probe = workload(args.preset, devices, args.epochs, args.batches, args.eval_batches, None)
    work = replace(probe, c32=c32_from(runs, probe.full_epochs))
    # C8 gets its C3.2 count from a loader-only sweep when it runs apart from C3 (the GPU check's c8 part).
    c8_work = replace(work, c32=c32_from(runs, False) if work.full_epochs else work.c32)
    items = per_seed(plan(work) + plan_c8(c8_work, list(args.c8)), getattr(args, "seeds", None))
    rates = collect(runs)
    return [predict(item, rates) for item in items], work


def per_seed(items: list[Planned], seeds: Sequence[int] | None) -> list[Planned]:
    """With --lab-seeds other than the default, every training benchmark once per seed, named as the suite names
    it (`-seed=N` last); a seed changes the numbers trained, not what a step costs, so each is predicted alike."""
    from ..spec.presets import DEFAULT_SEEDS  # the suite's rule for when names carry the seed

    if seeds is None or tuple(seeds) == DEFAULT_SEEDS:
        return items
    out: list[Planned] = []
    for item in items:
        if item.question in groups.SEEDED:
            out += [replace(item, name=f"{item.name[:-1]}-seed={s}]") for s in seeds]
        else:
            out.append(item)
    return out


# Groups with no benchmark of their own to time: another planned benchmark answers them (plan's docstring).
ANSWERED_BY_OTHERS = (groups.C5,)


def not_modelled() -> tuple[str, ...]:
    """The groups the suite writes that `plan` does not plan (their time is not in the total): named, not guessed.
    Derived from the plan, so a new group is listed here until a planner times it."""
    work = Workload("smoke", 1, 1, 1, 1, 1, (0,), ("cpu",), None, full_epochs=False)
    planned = {item.question for item in plan(work) + plan_c8(work, ("eager",))}
    return tuple(g for g in groups.GROUPS if g not in planned and g not in ANSWERED_BY_OTHERS)


def render(predictions: Sequence[Prediction], work: Workload) -> list[str]:
    lines = [
        f"workload: preset {work.preset}, devices {', '.join(work.devices)}, "
        f"{work.epochs} epochs x {work.batches} batches, "
        f"{work.eval_batches} test batches where evaluated; C3.2 = "
        f"{work.c32 if work.c32 is not None else 'not known from the inputs'}",
        "not predicted: C3's extension past 16 workers (run only while loading still improves), the session's start "
        f"(imports, dataset decode) and the groups estimate does not model: {', '.join(not_modelled())}",
    ]
    by_question: dict[str, list[Prediction]] = {}
    for p in predictions:
        by_question.setdefault(p.planned.question, []).append(p)
    total, uninformed = 0.0, []
    for question, preds in by_question.items():
        known = [p for p in preds if p.seconds is not None]
        seconds = sum(p.seconds for p in known)  # type: ignore[misc]  # known holds no None seconds
        total += seconds
        missing = [p for p in preds if p.seconds is None]
        text = f"{question}: {seconds:.1f} s ({len(known)} of {len(preds)} benchmarks)"
        notes = sorted({n for p in known for n in p.notes})
        if notes:
            text += f"; taken as 0 for want of records: {', '.join(notes)}"
        lines.append(text)
        for p in missing:
            lines.append(f"  not informed: {p.planned.name}: {p.missing}")
            uninformed.append(p.planned.name)
    if uninformed:
        lines.append(f"not informed by the inputs ({len(uninformed)} benchmarks): " + ", ".join(uninformed))
    lines.append(f"predicted {work.preset} preset: {total:.0f} s")
    return lines
