"""Reading saved pytest-benchmark runs: find, load, validate, and read values defensively.

Shared by `resnet-lab report` and `resnet-lab compare`. A run is the JSON that
`pytest --benchmark-json PATH`, `--benchmark-save NAME` or `--benchmark-autosave`
writes (all three have the same layout), plus the suite's own `lab` key.

Anything a user can get wrong (a missing file, invalid JSON, a file that is not
pytest-benchmark's, an unknown storage id) raises `LabError` with one line that
says what and where. Anything a *run* may lack (an older run, a skipped question)
reads as `None` through the accessors here, never as an exception.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import LabError
from ..spec.outputs import LOG_SUFFIX, read_log

# The suite's JSON layout (`schema_version` at the top level). 1: runs saved before the key existed.
# 2: the `lab` key gains `served`, `numerics`, `eval_batches`; benchmarks gain memory, numerics and `test_call_s`.
SCHEMA_VERSION = 2
DEFAULT_STORAGE = ".benchmarks"  # pytest-benchmark's --benchmark-storage default (file://./.benchmarks)
# Deeper than any run the suite writes (about 6 levels) by far; a deeper document is not one of ours, and
# reading it recursively would end in RecursionError.
MAX_DEPTH = 64
STORAGE_ID = re.compile(r"^\d{1,4}(_[^/\\]*)?$")  # 0001, 1, 0001_mysave


# ---------------------------------------------------------------------------
# finding and loading files
# ---------------------------------------------------------------------------


def machine_id() -> str:
    """The storage sub-folder pytest-benchmark uses for this interpreter, e.g. Linux-CPython-3.11-64bit."""
    from pytest_benchmark.utils import get_machine_id  # local: only needed for storage ids

    return get_machine_id()


def storage_root(storage: str) -> Path:
    """`file://./.benchmarks` or a plain folder -> Path; other storage kinds are not files we can read."""
    if "://" in storage:
        scheme, _, rest = storage.partition("://")
        if scheme != "file":
            raise LabError(f"--storage: only file storage can be read, got '{storage}' (use a folder or file://PATH)")
        storage = rest
    return Path(storage)


def resolve_run_path(spec: str, storage: str = DEFAULT_STORAGE) -> Path:
    """A file path, or a pytest-benchmark storage id (`0001`, `0001_name`) looked up in `storage`.

    Ids are looked for first under this machine's sub-folder (as pytest-benchmark
    does), then under any machine's; more than one match is an error that lists them.
    """
    path = Path(spec)
    if path.exists() or not STORAGE_ID.match(spec):
        return path
    head, sep, tail = spec.partition("_")
    prefix = f"{int(head):04d}{sep}{tail}"
    root = storage_root(storage)
    if not root.is_dir():
        raise LabError(
            f"'{spec}' is neither a file nor a saved run: the benchmark storage '{root}' does not exist (pass --storage DIR)"
        )
    pattern = f"{prefix}*.json" if sep else f"{prefix}_*.json"
    matches = sorted(root.glob(f"{machine_id()}/{pattern}")) or sorted(root.glob(f"*/{pattern}"))
    if not matches:
        raise LabError(
            f"'{spec}' is neither a file nor a saved run in '{root}' (looked for */{pattern}; pass --storage DIR)"
        )
    if len(matches) > 1:
        listed = ", ".join(str(m) for m in matches[:5])
        raise LabError(f"saved run id '{spec}' is ambiguous in '{root}': {listed}; pass the file path instead")
    return matches[0]


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
        return [v for v, w in zip((as_number(x) for x in data), warmup) if v is not None and not w]

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
            params = entry.get("params") if isinstance(entry.get("params"), dict) else {}
            evaluation = entry.get("evaluation") if isinstance(entry.get("evaluation"), dict) else {}
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

    def machine(self) -> "MachineSummary":
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


def as_number(value: Any) -> float | None:
    """A finite int/float (not bool) as float, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _read_text(path: Path) -> str:
    if not path.exists():
        raise LabError(f"'{path}' does not exist")
    if path.is_dir():
        raise LabError(f"'{path}' is a folder, not a pytest-benchmark JSON file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise LabError(f"'{path}' is not a text file (not UTF-8), so it is not pytest-benchmark JSON") from None
    except OSError as exc:
        raise LabError(f"cannot read '{path}': {exc.strerror or exc}") from None


def _read_json(path: Path) -> Any:
    """A pytest-benchmark JSON file, or a suite run log (`.jsonl`, see outputs.RunLog) read as one."""
    text = _read_text(path)
    if path.suffix == LOG_SUFFIX:
        return read_log(path, text)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise LabError(
            f"'{path}' is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); is the file truncated?"
        ) from None
    except RecursionError:
        raise LabError(
            f"'{path}' is JSON nested deeper than {MAX_DEPTH} levels; it is not a pytest-benchmark run"
        ) from None


def _too_deep(data: Any) -> str | None:
    """The path of the first value nested deeper than MAX_DEPTH (iteratively: no recursion to overflow)."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            return where or "the top level"
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, child in items:
            if isinstance(child, (dict, list)):
                stack.append((child, f"{where}.{key}" if isinstance(key, str) else f"{where}[{key}]", depth + 1))
    return None


_SCALAR = (str, int, float, bool, type(None))


def _shape_problem(index: int, raw: dict[str, Any]) -> str | None:
    """Why benchmarks[index] cannot be read (a field of the wrong type), or None."""
    at = f"benchmarks[{index}]"
    for key in ("params", "extra_info", "stats"):
        if raw.get(key) is not None and not isinstance(raw.get(key), dict):
            return f"{at}.{key} is a JSON {type(raw[key]).__name__}, not an object"
    for key, value in (raw.get("params") or {}).items():
        if not isinstance(value, _SCALAR):
            return f"{at}.params.{key} is a JSON {type(value).__name__}; a parameter is a string, number, true/false or null"
    for key in ("group", "fullname"):
        if not isinstance(raw.get(key), (str, type(None))):
            return f"{at}.{key} is a JSON {type(raw[key]).__name__}, not a string"
    return None  # odd values inside extra_info and stats read as "not recorded" (Bench's accessors)


def _not_pytest_benchmark(path: Path, why: str, data: Any) -> LabError:
    hint = "write one with pytest --benchmark-json PATH or --benchmark-save NAME"
    if isinstance(data, dict) and {"config", "summary", "epochs"} <= set(data):
        hint = "this looks like `resnet-lab train --json` output; report and compare read pytest-benchmark runs of the suite"
    return LabError(f"'{path}' is not a pytest-benchmark JSON file: {why} ({hint})")


def _bench(path: Path, index: int, raw: Any, data: Any) -> Bench:
    if not isinstance(raw, dict):
        raise _not_pytest_benchmark(path, f"benchmarks[{index}] is not an object", data)
    problem = _shape_problem(index, raw)
    if problem:
        raise LabError(f"'{path}' cannot be read: {problem}")
    name, stats = raw.get("name"), raw.get("stats")
    if not isinstance(name, str) or not isinstance(stats, dict):
        raise _not_pytest_benchmark(path, f"benchmarks[{index}] has no 'name' and 'stats'", data)
    params = raw.get("params")
    extra = raw.get("extra_info")
    fullname = raw.get("fullname")
    group = raw.get("group")
    return Bench(
        group=group if isinstance(group, str) else None,
        name=name,
        fullname=fullname if isinstance(fullname, str) else name,
        params=params if isinstance(params, dict) else {},
        stats=stats,
        extra_info=extra if isinstance(extra, dict) else {},
    )


def load_run(path: str | Path, label: str | None = None) -> Run:
    """Load and validate one pytest-benchmark JSON file (raises LabError with one line on any problem)."""
    path = Path(path)
    return parse_run(path, _read_json(path), label)


def parse_run(path: Path, data: Any, label: str | None = None) -> Run:
    """Validate a loaded pytest-benchmark JSON document (`path` names it in messages)."""
    if not isinstance(data, dict):
        raise _not_pytest_benchmark(path, f"the top level is a JSON {type(data).__name__}, not an object", data)
    deep = _too_deep(data)
    if deep:
        raise LabError(
            f"'{path}' cannot be read: {deep} is nested deeper than {MAX_DEPTH} levels; it is not a pytest-benchmark run"
        )
    benchmarks = data.get("benchmarks")
    if not isinstance(benchmarks, list):
        raise _not_pytest_benchmark(path, "no 'benchmarks' list at the top level", data)
    machine_info = data.get("machine_info")
    if not isinstance(machine_info, dict):
        raise _not_pytest_benchmark(path, "no 'machine_info' object at the top level", data)
    commit_info, lab = data.get("commit_info"), data.get("lab")
    dt, version = data.get("datetime"), data.get("version")
    return Run(
        path=path,
        label=label or path.name,
        machine_info=machine_info,
        commit_info=commit_info if isinstance(commit_info, dict) else {},
        datetime=dt if isinstance(dt, str) else None,
        version=version if isinstance(version, str) else None,
        lab=lab if isinstance(lab, dict) else {},
        benchmarks=tuple(_bench(path, i, b, data) for i, b in enumerate(benchmarks)),
        schema_version=_schema_version(path, data.get("schema_version", 1)),
    )


def _schema_version(path: Path, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LabError(f"'{path}' has an invalid schema_version {value!r}; expected a positive integer")
    if value > SCHEMA_VERSION:
        raise LabError(
            f"'{path}' was written by a newer resnet-lab (schema_version {value}, this one reads up to {SCHEMA_VERSION}); upgrade resnet-lab"
        )
    return value


def load_runs(specs: Sequence[str], storage: str = DEFAULT_STORAGE) -> list[Run]:
    """Load several runs; labels are file names, made unique (`smoke.json`, `smoke.json#2`)."""
    runs: list[Run] = []
    seen: dict[str, int] = {}
    for spec in specs:
        path = resolve_run_path(spec, storage)
        label = path.name
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            label = f"{label}#{seen[label]}"
        runs.append(load_run(path, label))
    return runs


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
    cpu_info = info.get("cpu") if isinstance(info.get("cpu"), dict) else {}
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
