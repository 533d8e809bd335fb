"""Where a run writes, checked before it spends any time; and its per-benchmark log.

A benchmark session can run for many minutes, and pytest-benchmark opens its
JSON only at the very end: a missing folder or an unwritable path would lose
the whole run. `ensure_writable_file`/`ensure_writable_dir` create what is
missing and prove it can be written, raising `LabError` with one line.

`RunLog` appends each finished benchmark to a JSON-lines file beside the JSON
(in --lab-out when the run is saved only to pytest-benchmark's storage) as it
finishes (one `write` + fsync per line), so a run killed by SIGKILL, a time
box, or a disk that fills at the end still keeps what it measured;
`results.loading.load_run` reads such a file like the JSON. No torch here.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from ..errors import LabError

LOG_SUFFIX = ".jsonl"


def _mkdir(folder: Path, what: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise LabError(f"{what}: cannot create folder '{folder}': a file is in the way") from None
    except OSError as exc:
        raise LabError(f"{what}: cannot create folder '{folder}': {exc.strerror or exc}") from None
    if not folder.is_dir():
        raise LabError(f"{what}: '{folder}' exists and is not a folder")


def ensure_writable_dir(folder: str | os.PathLike[str], what: str) -> Path:
    """Create `folder` if missing and prove a file can be created in it."""
    path = Path(folder)
    _mkdir(path, what)
    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise LabError(f"{what}: folder '{path}' is not writable: {exc.strerror or exc}") from None
    return path


def ensure_writable_file(target: str | os.PathLike[str], what: str) -> Path:
    """Create the folder of `target` if missing and prove `target` can be written (an existing file is not changed)."""
    path = Path(target)
    if path.is_dir():
        raise LabError(f"{what}: '{path}' is a folder; give a file path such as out/run.json")
    ensure_writable_dir(path.parent if str(path.parent) else Path("."), what)
    if path.exists():
        try:
            with open(path, "ab"):  # append mode: proves write access without truncating
                pass
        except OSError as exc:
            raise LabError(f"{what}: file '{path}' is not writable: {exc.strerror or exc}") from None
    return path


def option_path(value: Any) -> Path | None:
    """A path option as pytest-benchmark hands it over: a Path (5.3) or a file it already opened (5.2's FileType)."""
    if value is None:
        return None
    return Path(value.name) if hasattr(value, "write") else Path(value)


def log_path_for(json_path: str | os.PathLike[str]) -> Path:
    """`out/smoke.json` -> `out/smoke.jsonl`: the per-benchmark log beside the JSON."""
    path = Path(json_path)
    return path.with_suffix(LOG_SUFFIX) if path.suffix == ".json" else path.with_name(path.name + LOG_SUFFIX)


def _dumps(record: dict[str, Any]) -> str:
    # One line per record; NaN/inf become null so every line is strict JSON.
    return json.dumps(_finite(record), default=str, separators=(",", ":"))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class RunLog:
    """Append-only JSON-lines record of a session: a header, then one line per finished benchmark.

    Line kinds: {"kind": "header", machine_info, commit_info, datetime, version}, {"kind":
    "benchmark", "benchmark": {...as in the JSON}}, {"kind": "lab", "lab": {...}} (the latest wins).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.lines = 0

    def start(self, header: dict[str, Any]) -> None:
        """Begin a fresh log (an older one at this path belongs to an earlier run)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.append({"kind": "header", **header})

    def append(self, record: dict[str, Any]) -> None:
        line = (_dumps(record) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.lines += 1

    def benchmark(self, record: dict[str, Any]) -> None:
        self.append({"kind": "benchmark", "benchmark": record})

    def lab(self, lab: dict[str, Any]) -> None:
        self.append({"kind": "lab", "lab": lab})

    def discard(self) -> None:
        """The JSON was written in full: the log has nothing more to offer."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def read_log(path: Path, text: str) -> dict[str, Any]:
    """A run log's lines as the dict pytest-benchmark's JSON would hold; a torn last line is skipped."""
    run: dict[str, Any] = {
        "machine_info": None,
        "commit_info": {},
        "benchmarks": [],
        "datetime": None,
        "version": None,
        "lab": {},
    }
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # the process died while writing it
                break
            raise LabError(f"'{path}' line {number} is not valid JSON: the run log is damaged") from None
        kind = record.get("kind") if isinstance(record, dict) else None
        if kind == "header":
            run.update(
                {
                    k: record[k]
                    for k in ("machine_info", "commit_info", "datetime", "version", "schema_version")
                    if k in record
                }
            )
        elif kind == "benchmark":
            run["benchmarks"].append(record.get("benchmark"))
        elif kind == "lab":
            run["lab"] = record.get("lab")
        else:
            raise LabError(f"'{path}' line {number} is not a resnet-lab run log record (no known 'kind')")
    return run
