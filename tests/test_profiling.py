"""Q3b's profiler summary: the phase table from known profiler figures, and a real trace of a tiny model."""

from __future__ import annotations

import contextlib
import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from resnet_lab.engine.step import StepConfig
from resnet_lab.perf.profiling import (
    PHASE_LABELS,
    ProfileConfig,
    phase_summary,
    phase_table,
    profile_run,
    trace_event_names,
)


class FakeProfile:
    """What phase_summary reads of a profiler: key_averages() events (times in microseconds)."""

    def __init__(self, events: list[SimpleNamespace]) -> None:
        self.events = events

    def key_averages(self) -> list[SimpleNamespace]:
        return self.events


def event(key: str, cpu_us: float, device_us: float | None, count: int) -> SimpleNamespace:
    return SimpleNamespace(key=key, cpu_time_total=cpu_us, device_time_total=device_us, count=count)


def test_phase_summary_by_hand():
    prof = FakeProfile(
        [
            event("forward", 3_000_000.0, 1_500_000.0, 4),
            event("aten::mm", 9_000_000.0, 0.0, 40),  # an operator, not a phase
            event("load", 500_000.0, None, 4),  # CPU-only: no device time recorded
            event("backward", 6_000_000.0, 0.0, 4),
        ]
    )
    summary = phase_summary(prof, active_steps=4)
    assert summary == {
        "load": {"cpu_time_s": 0.5, "device_time_s": 0.0, "count": 4, "cpu_time_per_step_s": 0.125},
        "forward": {"cpu_time_s": 3.0, "device_time_s": 1.5, "count": 4, "cpu_time_per_step_s": 0.75},
        "backward": {"cpu_time_s": 6.0, "device_time_s": 0.0, "count": 4, "cpu_time_per_step_s": 1.5},
    }
    assert list(summary) == ["load", "forward", "backward"]  # the loop's order, not the profiler's


def test_phase_table_shares_by_hand():
    table = phase_table(
        {
            "load": {"cpu_time_s": 1.0, "device_time_s": 0.0, "count": 3},
            "forward": {"cpu_time_s": 3.0, "device_time_s": 0.25, "count": 3},
        }
    )
    assert table.splitlines() == [
        "| phase | CPU-side s | device s | share of phase time | calls |",
        "|---|---:|---:|---:|---:|",
        "| load | 1.0000 | 0.0000 | 25.0% | 3 |",
        "| forward | 3.0000 | 0.2500 | 75.0% | 3 |",
    ]
    assert phase_table({}).splitlines()[2:] == []


def tiny_run() -> SimpleNamespace:
    """What profile_run uses of a LabRun, around a model small enough to profile in a moment."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 10))
    batches = [(torch.randn(2, 3, 4, 4), torch.randint(0, 10, (2,))) for _ in range(6)]
    return SimpleNamespace(
        step_model=model,
        train_loader=batches,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        device=torch.device("cpu"),
        config=SimpleNamespace(step=StepConfig(), sync_phases=True),
        epoch_context=contextlib.nullcontext,
        graphed=None,
    )


def test_profile_run_labels_every_phase_of_the_active_steps(tmp_path):
    config = ProfileConfig(wait=1, warmup=1, active=3)
    result = profile_run(tiny_run(), tmp_path, config)
    assert set(PHASE_LABELS) <= trace_event_names(result["trace_path"])
    # one of each phase per step: exactly the active steps are in the summary
    assert {label: row["count"] for label, row in result["phases"].items()} == {label: 3 for label in PHASE_LABELS}
    assert (result["steps"], result["profiled_batches"]) == (3, 5)
    assert json.loads((tmp_path / "q3b_phases_cpu.json").read_text()) == result["phases"]
    assert (tmp_path / "q3b_phases_cpu.md").read_text() == phase_table(result["phases"])
    assert "Self CPU" in (tmp_path / "q3b_ops_cpu.txt").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "q3b_ops_cpu.txt",
        "q3b_phases_cpu.json",
        "q3b_phases_cpu.md",
        "q3b_trace_cpu.json",
    ]


def test_profile_run_needs_enough_batches(tmp_path):
    run = tiny_run()
    run.train_loader = run.train_loader[:4]
    with pytest.raises(ValueError, match="needs 5 batches but the loader yielded 4"):
        profile_run(run, tmp_path, ProfileConfig(wait=1, warmup=1, active=3))
