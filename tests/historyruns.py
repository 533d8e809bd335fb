"""Synthetic saved histories for the `history` tests: a committed real run of the A/B gate's two benchmarks
(results/ab-gate/), rewritten per run with its own commit, date and scaled timings."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

TEMPLATE = next(
    (Path(__file__).resolve().parents[1] / "results" / "ab-gate" / "gate-aa-1" / "storage").glob("*/0001_*.json")
)
MACHINE_DIR = "Linux-CPython-3.11-64bit"
T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def commit_sha(i: int) -> str:
    return f"{i:02x}" * 20


def scaled_run(
    scale: float, commit: int, run: int, *, dirty: bool = False, cpu: str | None = None, loss: float | None = None
) -> dict:
    """The template with every timing (per-epoch phases, rounds, stats) times `scale`, committed at `commit`."""
    data = copy.deepcopy(json.loads(TEMPLATE.read_text()))
    for bench in data["benchmarks"]:
        stats = bench["stats"]
        for key in ("min", "max", "mean", "stddev", "median", "iqr", "q1", "q3", "ld15iqr", "hd15iqr", "total"):
            stats[key] = stats[key] * scale
        stats["data"] = [v * scale for v in stats["data"]]
        for record in bench["extra_info"].get("epochs", []):
            for key in ("epoch_s", "load_s", "copy_s", "train_s", "metrics_s", "startup_s", "shutdown_s"):
                if isinstance(record.get(key), (int, float)):
                    record[key] *= scale
            if loss is not None and "loss" in record:
                record["loss"] = loss
        if loss is not None and "loss" in bench["extra_info"]:
            bench["extra_info"]["loss"] = loss
        for key in ("epoch_s", "load_s", "copy_s", "train_s", "metrics_s"):
            if isinstance(bench["extra_info"].get(key), (int, float)):
                bench["extra_info"][key] *= scale
    when = T0 + timedelta(hours=commit)
    data["commit_info"].update(
        id=commit_sha(commit), time=when.isoformat(), author_time=when.isoformat(), dirty=dirty, branch="main"
    )
    data["datetime"] = (when + timedelta(minutes=5 + run)).isoformat()
    if cpu is not None:
        data["machine_info"]["cpu"]["brand_raw"] = cpu
    return data


def write_history(storage: Path, scales: Sequence[float], runs_per_commit: int = 1, **kwargs) -> list[Path]:
    """One saved run per scale, `runs_per_commit` runs per commit, numbered as pytest-benchmark's storage does;
    a second call on the same storage continues the numbering and the commits (later commits)."""
    folder = storage / MACHINE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    start = len(list(folder.glob("*.json")))
    paths = []
    for i, scale in enumerate(scales):
        commit = (start + i) // runs_per_commit
        path = folder / f"{start + i + 1:04d}_{commit_sha(commit)}_run{start + i}.json"
        path.write_text(json.dumps(scaled_run(scale, commit, i % runs_per_commit, **kwargs)))
        paths.append(path)
    return paths


def as_run_log(data: dict) -> str:
    """The same run as the suite's run log (run.jsonl) holds it."""
    header = {
        "kind": "header",
        **{k: data[k] for k in ("machine_info", "commit_info", "datetime", "version") if k in data},
    }
    lines = [
        header,
        *({"kind": "benchmark", "benchmark": b} for b in data["benchmarks"]),
        {"kind": "lab", "lab": data.get("lab", {})},
    ]
    return "".join(json.dumps(line) + "\n" for line in lines)
