"""Finding, loading and validating saved pytest-benchmark runs (the model they load into is `runs.py`).

A run is the JSON that `pytest --benchmark-json PATH`, `--benchmark-save NAME` or
`--benchmark-autosave` writes (all three have the same layout), plus the suite's own `lab` key,
or the run log the suite keeps beside it while it runs.

Anything a user can get wrong (a missing file, invalid JSON, a file that is not
pytest-benchmark's, an unknown storage id) raises `LabError` with one line that
says what and where.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import LabError
from ..spec.outputs import LOG_SUFFIX, read_log
from .runs import Bench, Run

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
            f"'{spec}' is neither a file nor a saved run: the benchmark storage "
            f"'{root}' does not exist (pass --storage DIR)"
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
            return (
                f"{at}.params.{key} is a JSON {type(value).__name__}; a parameter is a "
                "string, number, true/false or null"
            )
    for key in ("group", "fullname"):
        if not isinstance(raw.get(key), (str, type(None))):
            return f"{at}.{key} is a JSON {type(raw[key]).__name__}, not a string"
    return None  # odd values inside extra_info and stats read as "not recorded" (Bench's accessors)


def _not_pytest_benchmark(path: Path, why: str, data: Any) -> LabError:
    hint = "write one with pytest --benchmark-json PATH or --benchmark-save NAME"
    if isinstance(data, dict) and {"config", "summary", "epochs"} <= set(data):
        hint = (
            "this looks like `resnet-lab train --json` output; report and compare "
            "read pytest-benchmark runs of the suite"
        )
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
            f"'{path}' cannot be read: {deep} is nested deeper than {MAX_DEPTH} "
            "levels; it is not a pytest-benchmark run"
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
            f"'{path}' was written by a newer resnet-lab (schema_version {value}, "
            f"this one reads up to {SCHEMA_VERSION}); upgrade resnet-lab"
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
