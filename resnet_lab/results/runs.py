"""Saved pytest-benchmark runs, read defensively: a run, its benchmarks, their values, the machine.

Shared by `resnet-lab report`, `compare`, `estimate`, `ab` and `history`; `loading.py` finds,
loads and validates the files. Anything a *run* may lack (an older run, a skipped question)
reads as `None` through the accessors here, never as an exception.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True, eq=False)
class Bench:
    """One benchmark of a run: pytest-benchmark's record, with safe accessors."""

    group: str | None
    name: str
    fullname: str
    params: dict[str, Any]
    stats: dict[str, Any]
    extra_info: dict[str, Any]

    @property
    def param_text(self) -> str:
        """`device=cpu, workers=4` (or the name when the benchmark has no params)."""
        if not self.params:
            return self.name
        return ", ".join(f"{k}={v}" for k, v in self.params.items())

    @property
    def seed(self) -> int:
        """The seed the benchmark trained with: its `seed` param (--lab-seeds), else 0, the suite's one default seed."""
        value = self.params.get(SEED_PARAM, 0)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    @property
    def configuration(self) -> str:
        """The name without its seed: what the runs of one configuration at several seeds share."""
        return without_seed(self.name)

    def pair_key(self) -> tuple[str, str, int]:
        # The seed apart, defaulting to 0: a run without --lab-seeds pairs with another's seed=0.
        return (without_seed(self.fullname), canonical_params(self.params_without_seed), self.seed)

    def name_key(self) -> tuple[str, str, int]:
        return (self.configuration, canonical_params(self.params_without_seed), self.seed)

    @property
    def params_without_seed(self) -> dict[str, Any]:
        return {k: v for k, v in self.params.items() if k != SEED_PARAM}

    def extra(self, key: str) -> Any:
        return self.extra_info.get(key)

    def param(self, key: str, default: Any = None) -> Any:
        """A parameter of the benchmark (`device`, `workers`, ...), else the same key in extra_info
        (served views and older runs carry some there only), else `default`."""
        value = self.params.get(key)
        if value is None:
            value = self.extra_info.get(key)
        return default if value is None else value

    def number(self, key: str) -> float | None:
        """A finite number from extra_info's summary keys, else None."""
        return as_number(self.extra_info.get(key))

    def epochs(self) -> list[dict[str, Any]]:
        """extra_info's per-epoch records that are dicts (empty when not recorded)."""
        records = self.extra_info.get("epochs")
        if not isinstance(records, list):
            return []
        return [r for r in records if isinstance(r, dict)]

    def epoch_values(self, key: str, *, steady: bool = False) -> list[float]:
        """One finite value per epoch record that has `key`; `steady`: warm-up epochs left out."""
        records = [r for r in self.epochs() if not (steady and r.get("warmup") is True)]
        return [v for v in (as_number(r.get(key)) for r in records) if v is not None]

    def round_times(self, *, steady: bool = False) -> list[float]:
        """pytest-benchmark's per-round times (`stats.data`) when saved, else []; `steady`: without the
        warm-up rounds (a training benchmark's rounds are its epochs, the first flagged `warmup`)."""
        data = self.stats.get("data")
        if not isinstance(data, list):
            return []
        warmup = self.warmup_flags() if steady else []
        if len(warmup) != len(data):
            warmup = [False] * len(data)  # no per-epoch records to say which rounds were warm-up
        return [v for v, w in zip((as_number(x) for x in data), warmup, strict=True) if v is not None and not w]

    def warmup_flags(self) -> list[bool]:
        """Per epoch record: whether it is a warm-up epoch (`warmup` True)."""
        return [r.get("warmup") is True for r in self.epochs()]

    def stat(self, key: str) -> float | None:
        return as_number(self.stats.get(key))


@dataclass(frozen=True, eq=False)  # identity: two loads of one file are two runs
class Run:
    """One loaded pytest-benchmark JSON file."""

    path: Path
    label: str
    machine_info: dict[str, Any]
    commit_info: dict[str, Any]
    datetime: str | None
    version: str | None
    lab: dict[str, Any]
    benchmarks: tuple[Bench, ...] = field(default=())
    schema_version: int = 1

    def group(self, name: str) -> list[Bench]:
        """The group's benchmarks, plus views of the runs that answered its questions for it (lab.served)."""
        return [b for b in self.benchmarks if b.group == name] + self.served_views(name)

    def served_views(self, group: str) -> list[Bench]:
        """The suite trains a configuration once and lets other questions read it: each such question
        appears here as the serving benchmark relabelled with the question's name and params,
        with `served_by` naming the benchmark that measured it."""
        by_name = {b.name: b for b in self.benchmarks}
        views = []
        for entry in self.lab.get("served") or []:
            if not isinstance(entry, dict) or entry.get("group") != group or entry.get("by") not in by_name:
                continue
            source = by_name[entry["by"]]
            params = object_at(entry, "params")
            evaluation = object_at(entry, "evaluation")
            views.append(
                replace(
                    source,
                    group=group,
                    name=str(entry.get("name")),
                    fullname=str(entry.get("name")),
                    params=params,
                    extra_info={**source.extra_info, **evaluation, "served_by": source.name},
                )
            )
        return views

    def serves(self, name: str) -> list[str]:
        """The questions benchmark `name` answered besides its own group."""
        return list(
            dict.fromkeys(
                str(e.get("group")) for e in self.lab.get("served") or [] if isinstance(e, dict) and e.get("by") == name
            )
        )

    def machine(self) -> MachineSummary:
        return machine_summary(self.machine_info)

    def workload(self) -> str:
        """`preset smoke, synthetic data, 2 epochs x 2 batches` from the run's `lab` key."""
        lab = self.lab
        if not lab:
            return "preset not recorded"
        parts = [f"preset {lab.get('preset', 'not recorded')}"]
        data = lab.get("data")
        parts.append(f"{data} data" if data else "data not recorded")
        epochs, batches = lab.get("epochs"), lab.get("max_batches")
        if epochs is not None:
            parts.append(f"{epochs} epochs x {'all' if batches is None else batches} batches")
        return ", ".join(parts)

    def describe(self) -> str:
        """One line for 'numbers from ...' notes."""
        return f"`{self.label}` ({self.machine().text}; {self.workload()})"


SEED_PARAM = "seed"  # the param --lab-seeds adds to the training benchmarks; its id part is the last, `-seed=N`
_SEED_ID = re.compile(r"-seed=\d+(?=\])")


def without_seed(name: str) -> str:
    """`test_c2_phases[device=cpu-seed=1]` -> `test_c2_phases[device=cpu]`; other names unchanged."""
    return _SEED_ID.sub("", name)


def canonical_params(params: dict[str, Any] | None) -> str:
    return json.dumps(params or {}, sort_keys=True, default=str)


def object_at(record: Mapping[str, Any], key: str) -> dict[str, Any]:
    """`record[key]` when it is a JSON object, else {}: saved runs of every age read alike."""
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def as_number(value: Any) -> float | None:
    """A finite int/float (not bool) as float, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


# ---------------------------------------------------------------------------
# machines
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MachineSummary:
    """What decides whether two runs' timings are comparable: CPU model and count, GPU."""

    cpu: str | None
    cpu_count: int | None
    gpu: str | None
    node: str | None
    torch: str | None

    @property
    def identity(self) -> tuple[str | None, int | None, str | None]:
        return (self.cpu, self.cpu_count, self.gpu)

    @property
    def text(self) -> str:
        cpu = self.cpu or "CPU not recorded"
        count = f" x{self.cpu_count}" if self.cpu_count else ""
        gpu = self.gpu or "no GPU"
        torch = f", torch {self.torch}" if self.torch else ""
        node = f" on {self.node}" if self.node else ""
        return f"{cpu}{count}, {gpu}{torch}{node}"


def machine_summary(info: dict[str, Any]) -> MachineSummary:
    cpu_info = object_at(info, "cpu")
    brand = cpu_info.get("brand_raw") or info.get("processor") or None
    count = info.get("cpu_count")
    if not isinstance(count, int) or isinstance(count, bool):
        count = cpu_info.get("count") if isinstance(cpu_info.get("count"), int) else None
    gpu = info.get("gpu") if isinstance(info.get("gpu"), str) and info.get("gpu") else None
    node = info.get("node") if isinstance(info.get("node"), str) else None
    torch = info.get("torch") if isinstance(info.get("torch"), str) else None
    return MachineSummary(
        cpu=brand if isinstance(brand, str) else None, cpu_count=count, gpu=gpu, node=node, torch=torch
    )


# ---------------------------------------------------------------------------
# statistics over a benchmark's rounds (epochs)
# ---------------------------------------------------------------------------


def summarize(values: Iterable[float]) -> dict[str, float] | None:
    """pytest-benchmark's own statistics (min/max/mean/median/stddev/iqr/q1/q3/rounds) of per-round values.

    Computed with pytest-benchmark's `Stats`, so a phase's spread over epochs is
    defined exactly like `epoch_s`'s (sample stddev; 0 for a single round).
    """
    from pytest_benchmark.stats import Stats  # local: report's import stays light

    data = [float(v) for v in values]
    if not data:
        return None
    stats = Stats()
    for value in data:
        stats.update(value)
    return {
        key: float(getattr(stats, key))
        for key in ("min", "max", "mean", "median", "stddev", "iqr", "q1", "q3", "rounds")
    }
