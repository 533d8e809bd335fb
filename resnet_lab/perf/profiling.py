"""Q3b: a torch.profiler trace of a few training steps with the loop's phases labelled.

Schedule-based (wait / warmup / active) so cold-start work stays out of the
trace; `prof.step()` runs after each batch. Writes a Chrome/Perfetto trace,
torch's own operator table and a phase table into one folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, schedule

from ..devices import device_type
from ..engine.loop import train_one_epoch
from ..engine.run import LabRun
from ..fileio import atomic_open, write_json

# Labels set by train_one_epoch's record_function calls.
PHASE_LABELS = ("load", "copy", "forward", "backward", "optimizer_step", "metrics")


@dataclass(frozen=True)
class ProfileConfig:
    wait: int = 1
    warmup: int = 1
    active: int = 3

    @property
    def steps(self) -> int:
        return self.wait + self.warmup + self.active


def activities(device: torch.device) -> list[ProfilerActivity]:
    activity = device_type(device).profiler_activity
    return [ProfilerActivity.CPU] + ([getattr(ProfilerActivity, activity)] if activity else [])


def phase_summary(prof: profile, active_steps: int) -> dict[str, dict[str, float]]:
    """Seconds per labelled phase over the active steps, from the profiler's own aggregation."""
    averages = {event.key: event for event in prof.key_averages()}
    summary = {}
    for label in PHASE_LABELS:
        event = averages.get(label)
        if event is None:
            continue
        device_us = getattr(event, "device_time_total", 0.0) or 0.0
        summary[label] = {
            "cpu_time_s": event.cpu_time_total / 1e6,
            "device_time_s": device_us / 1e6,
            "count": int(event.count),
            "cpu_time_per_step_s": event.cpu_time_total / 1e6 / active_steps,
        }
    return summary


def phase_table(summary: dict[str, dict[str, float]]) -> str:
    total = sum(row["cpu_time_s"] for row in summary.values()) or 1.0
    lines = ["| phase | CPU-side s | device s | share of phase time | calls |", "|---|---:|---:|---:|---:|"]
    for label, row in summary.items():
        lines.append(
            f"| {label} | {row['cpu_time_s']:.4f} | {row['device_time_s']:.4f} | "
            f"{row['cpu_time_s'] / total:.1%} | {row['count']} |"
        )
    return "\n".join(lines) + "\n"


def trace_event_names(trace_path: str | Path) -> set[str]:
    with open(trace_path, encoding="utf-8") as handle:
        trace = json.load(handle)
    return {event.get("name", "") for event in trace.get("traceEvents", [])}


def profile_run(run: LabRun, out_dir: str | Path, config: ProfileConfig = ProfileConfig()) -> dict[str, object]:
    """Profile `config.steps` training batches of `run`; return paths and the phase summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tag = f"{run.device.type}"
    trace_path, table_path, summary_path = (
        out / f"q3b_trace_{tag}.json",
        out / f"q3b_ops_{tag}.txt",
        out / f"q3b_phases_{tag}.md",
    )
    result: dict[str, object] = {}

    def on_trace_ready(prof: profile) -> None:
        # Export to a temp name then rename, so a killed run leaves no half trace.
        tmp = trace_path.with_suffix(".json.partial")
        prof.export_chrome_trace(str(tmp))
        tmp.replace(trace_path)
        sort_key = "device_time_total" if run.device.type == "cuda" else "cpu_time_total"
        with atomic_open(table_path, "w", encoding="utf-8") as handle:
            handle.write(prof.key_averages().table(sort_by=sort_key, row_limit=30))
        result["phases"] = phase_summary(prof, config.active)

    sched = schedule(wait=config.wait, warmup=config.warmup, active=config.active, repeat=1)
    # The run's own epoch context and loop settings: the profiled steps are the steps its epochs run.
    with (
        run.epoch_context(),
        profile(activities=activities(run.device), schedule=sched, on_trace_ready=on_trace_ready) as prof,
    ):
        record = train_one_epoch(
            run.step_model,
            run.train_loader,
            run.optimizer,
            run.device,
            max_batches=config.steps,
            step=run.config.step,
            sync_phases=run.config.sync_phases,
            graphed=run.graphed,
            on_batch_end=lambda _i: prof.step(),
        )
    if record["batches"] < config.steps:
        raise ValueError(f"profiling needs {config.steps} batches but the loader yielded {record['batches']}")
    phases = result.get("phases", {})
    with atomic_open(summary_path, "w", encoding="utf-8") as handle:
        handle.write(phase_table(phases))  # type: ignore[arg-type]  # result['phases'] maps names to seconds
    write_json(out / f"q3b_phases_{tag}.json", phases)
    return {
        "trace_path": str(trace_path),
        "table_path": str(table_path),
        "phase_table_path": str(summary_path),
        "phases": phases,
        "steps": config.active,
        "profiled_batches": config.steps,
    }
