"""The loop's phase accounting (engine/loop.py's train_one_epoch), pinned with an injected time source.

A fake clock (tests/pinnedtime.py) moves only when a piece of work says it took time. Each batch of each phase
costs its own power of two, so every phase total is an exact sum and time counted in the wrong phase, counted
twice, dropped, or overwritten by the last batch changes it. The expected totals are sums over the cost tables,
never figures read back from the code under test. The clock itself: test_clock.py.
"""

from __future__ import annotations

import math

import pytest
import torch
from pinnedtime import (
    BATCH,
    CLASSES,
    COPY,
    COPY_CPU,
    END,
    EXPECTED,
    EXPECTED_CPU,
    LOAD,
    METRICS,
    METRICS_CPU,
    OVERHEAD,
    OVERHEAD_CPU,
    SHUTDOWN,
    STARTUP,
    TRAIN,
    TRAIN_CPU,
    CostlyLoader,
    FakeTime,
    charged,
    cpu_epoch,
    epoch,
    tiny_batches,
    tiny_model,
)
from torch import nn

from resnet_lab.engine import loop as train_module
from resnet_lab.engine import step as step_module
from resnet_lab.engine.clock import SyncClock
from resnet_lab.engine.loop import train_one_epoch
from resnet_lab.engine.metrics import EpochMetrics
from resnet_lab.engine.step import StepConfig

# ----------------------------------------------------------------------------- one epoch, phase by phase


def test_each_phase_totals_its_own_work_over_three_batches(time):
    record = epoch(time)
    assert record["batches"] == 3 and record["images"] == 3 * BATCH
    assert {key: record[key] for key in EXPECTED} == EXPECTED
    assert record["phases_synced"] is True


def test_phases_account_for_the_whole_epoch(time):
    record = epoch(time)
    parts = sum(record[key] for key in EXPECTED)
    assert parts == record["epoch_s"] == STARTUP + sum(LOAD) + END + sum(COPY) + sum(TRAIN) + sum(METRICS) + SHUTDOWN
    assert record["images_per_s"] == 3 * BATCH / record["epoch_s"]


def test_untimed_loop_work_is_the_only_remainder(time):
    """Work outside every region (a per-batch callback) shows up in epoch_s only, as the remainder."""
    spend_overhead = charged(time, OVERHEAD, lambda _batch: None)
    record = epoch(time, on_batch_end=spend_overhead)
    assert {key: record[key] for key in EXPECTED} == EXPECTED
    assert record["epoch_s"] - sum(record[key] for key in EXPECTED) == sum(OVERHEAD)


def test_unsynced_phases_use_the_same_time_source(time):
    record = epoch(time, sync_phases=False)
    assert {key: record[key] for key in EXPECTED} == EXPECTED
    assert record["epoch_s"] == sum(EXPECTED.values())
    assert record["phases_synced"] is False


def test_a_reused_clock_starts_every_epoch_from_zero(time):
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    clock = SyncClock(timer=time)
    train_one_epoch(model, CostlyLoader(time, tiny_batches(1)), opt, "cpu", clock=clock)
    time.spend(1000.0)  # between epochs: belongs to no epoch
    later = train_one_epoch(model, CostlyLoader(time, tiny_batches(1)), opt, "cpu", clock=clock)
    # Second epoch, one batch: the second entries of the cost tables.
    assert (
        later["startup_s"],
        later["load_s"],
        later["copy_s"],
        later["train_s"],
        later["metrics_s"],
        later["shutdown_s"],
    ) == (
        STARTUP,
        LOAD[0] + END,
        COPY[1],
        TRAIN[1],
        METRICS[1],
        SHUTDOWN,
    )
    assert later["epoch_s"] == STARTUP + LOAD[0] + END + COPY[1] + TRAIN[1] + METRICS[1] + SHUTDOWN


def test_an_epoch_that_takes_no_time_reports_infinite_throughput():
    fake = FakeTime()
    model = tiny_model()
    record = train_one_epoch(
        model, tiny_batches(2), torch.optim.SGD(model.parameters(), lr=0.1), "cpu", clock=SyncClock(timer=fake)
    )
    assert record["epoch_s"] == 0.0 and record["images_per_s"] == math.inf


def test_throughput_of_a_sub_second_epoch():
    fake = FakeTime()
    model = tiny_model()
    record = train_one_epoch(
        model,
        tiny_batches(2),
        torch.optim.SGD(model.parameters(), lr=0.1),
        "cpu",
        clock=SyncClock(timer=fake),
        on_batch_end=lambda _i: fake.spend(0.25),
    )
    assert (record["epoch_s"], record["images"], record["images_per_s"]) == (0.5, 2 * BATCH, 2 * BATCH / 0.5)


def test_defaults_epoch_zero_no_bar(monkeypatch):
    bars = []
    monkeypatch.setattr(train_module, "progress_bar", lambda *args: bars.append(FakeBar(*args)) or bars[-1])
    model = tiny_model()
    record = train_one_epoch(model, tiny_batches(1), torch.optim.SGD(model.parameters(), lr=0.1), "cpu")
    assert record["epoch"] == 0
    assert bars[0].opened == (1, False, "epoch 0")


def test_fast_path_syncs_only_at_the_ends_of_the_epoch():
    """sync_phases=False: no device sync per phase (host and device overlap); epoch_s is still synced."""
    fake, syncs = FakeTime(), []
    clock = SyncClock(sync=lambda: syncs.append(fake()), timer=fake)
    model = tiny_model()
    train_one_epoch(
        model, tiny_batches(3), torch.optim.SGD(model.parameters(), lr=0.1), "cpu", clock=clock, sync_phases=False
    )
    assert len(syncs) == 2
    syncs.clear()
    train_one_epoch(model, tiny_batches(3), torch.optim.SGD(model.parameters(), lr=0.1), "cpu", clock=clock)
    assert (
        len(syncs) == 2 * (1 + 3 * 4 + 1 + 1) + 2
    )  # every region's two ends (start-up, 4 per batch, the final load, shutdown), and the epoch's


class FakeGraphedStep:
    """The graphed-step protocol on a CPU: staging costs COPY, the step TRAIN; metrics are kept by the step."""

    def __init__(self, time: FakeTime, model: nn.Module) -> None:
        self.time, self.model = time, model
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        self.metrics = EpochMetrics(CLASSES, torch.device("cpu"), eager=False)
        self.copies, self.steps = iter(COPY), iter(TRAIN)

    def begin_epoch(self) -> EpochMetrics:
        self.metrics.reset()
        return self.metrics

    def stage(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.time.spend(next(self.copies))
        self.x, self.y = x, y

    def run(self) -> None:
        self.time.spend(next(self.steps))
        loss, logits = train_module.train_step(self.model, self.optimizer, self.x, self.y, StepConfig())
        self.metrics.accumulate(loss, logits, self.y)
        self.metrics.images += self.y.shape[0]


def recorded_labels(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names the loop gives torch.profiler's record_function, in order."""
    labels: list[str] = []

    class Label:
        def __init__(self, name: str) -> None:
            labels.append(name)

        def __enter__(self) -> None:
            return None

        def __exit__(self, *exc) -> None:
            return None

    monkeypatch.setattr(train_module, "record_function", Label)
    monkeypatch.setattr(step_module, "record_function", Label)  # train_step's forward, backward, optimizer_step
    return labels


STEP_LABELS = ["load", "copy", "train", "forward", "backward", "optimizer_step", "metrics"]


def test_graphed_step_phases(monkeypatch):
    fake = FakeTime()
    # With a graphed step the metrics phase is the periodic finiteness check only.
    # The check after the epoch is outside the epoch's time: it costs nothing here.
    monkeypatch.setattr(EpochMetrics, "check_finite", charged(fake, (*METRICS, 0.0), EpochMetrics.check_finite))
    model = tiny_model()
    graphed = FakeGraphedStep(fake, model)
    record = train_one_epoch(
        model,
        CostlyLoader(fake, tiny_batches()),
        graphed.optimizer,
        "cpu",
        clock=SyncClock(timer=fake),
        sync_phases=False,
        graphed=graphed,
        check_every=1,
    )
    assert {key: record[key] for key in EXPECTED} == EXPECTED
    assert record["images"] == 3 * BATCH and record["batches"] == 3
    assert math.isfinite(record["loss"])


def test_phase_labels_for_the_profiler(monkeypatch):
    labels = recorded_labels(monkeypatch)
    model = tiny_model()
    train_one_epoch(model, tiny_batches(2), torch.optim.SGD(model.parameters(), lr=0.1), "cpu")
    assert labels == ["startup", *STEP_LABELS, *STEP_LABELS, "load", "shutdown"]


def test_graphed_step_phase_labels(monkeypatch):
    labels = recorded_labels(monkeypatch)
    model = tiny_model()
    graphed = FakeGraphedStep(FakeTime(), model)
    train_one_epoch(model, tiny_batches(2), graphed.optimizer, "cpu", sync_phases=False, graphed=graphed)
    assert labels == [
        "startup",
        *STEP_LABELS,
        *STEP_LABELS,
        "load",
        "shutdown",
    ]  # the fake step runs train_step inside "train"


class FakeBar:
    def __init__(self, total, enabled, desc) -> None:
        self.opened = (total, enabled, desc)
        self.updates: list[int] = []
        self.closed = False

    def update(self, n: int) -> None:
        self.updates.append(n)

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(("max_batches", "total"), [(None, 3), (2, 2)])
def test_progress_bar_counts_batches(monkeypatch, max_batches, total):
    bars = []
    monkeypatch.setattr(train_module, "progress_bar", lambda *args: bars.append(FakeBar(*args)) or bars[-1])
    model = tiny_model()
    train_one_epoch(
        model,
        tiny_batches(3),
        torch.optim.SGD(model.parameters(), lr=0.1),
        "cpu",
        epoch=4,
        max_batches=max_batches,
        progress=True,
    )
    (bar,) = bars
    assert bar.opened == (total, True, "epoch 4")
    assert bar.updates == [1] * total and bar.closed


def test_the_model_is_put_in_training_mode():
    model = tiny_model().eval()
    seen = []
    train_one_epoch(
        model,
        tiny_batches(1),
        torch.optim.SGD(model.parameters(), lr=0.1),
        "cpu",
        on_batch_end=lambda i: seen.append((i, model.training)),
    )
    assert seen == [(1, True)]


# ----------------------------------------------------------------------------- CPU time beside wall time


def test_each_phase_records_its_cpu_time_and_waiting_records_none(time, cpu):
    record = cpu_epoch(time, cpu, on_batch_end=charged(cpu, OVERHEAD_CPU, lambda _batch: None))
    assert {key: record[key] for key in EXPECTED} == EXPECTED  # the wall times are untouched
    assert {key: record[key] for key in EXPECTED_CPU} == EXPECTED_CPU
    assert record["epoch_cpu_s"] == sum(EXPECTED_CPU.values()) + sum(OVERHEAD_CPU)


def test_unsynced_phases_keep_cpu_time_too(time, cpu):
    record = cpu_epoch(time, cpu, sync_phases=False)
    assert {key: record[key] for key in EXPECTED_CPU} == EXPECTED_CPU
    assert record["epoch_cpu_s"] == sum(EXPECTED_CPU.values())


def test_a_reused_clock_starts_every_epoch_s_cpu_time_from_zero(time, cpu):
    clock = SyncClock(timer=time, cpu_timer=cpu)
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    train_one_epoch(model, CostlyLoader(time, tiny_batches(1)), opt, "cpu", clock=clock)
    cpu.spend(1000.0)  # between epochs: belongs to no epoch
    later = train_one_epoch(model, CostlyLoader(time, tiny_batches(1)), opt, "cpu", clock=clock)
    assert (later["copy_cpu_s"], later["train_cpu_s"], later["metrics_cpu_s"]) == (
        COPY_CPU[1],
        TRAIN_CPU[1],
        METRICS_CPU[1],
    )
    assert later["epoch_cpu_s"] == COPY_CPU[1] + TRAIN_CPU[1] + METRICS_CPU[1]


def test_a_record_without_a_cpu_clock_has_no_cpu_keys(time):
    from resnet_lab.engine.phases import CPU_KEYS

    record = epoch(time)
    assert not set(CPU_KEYS) & set(record)
