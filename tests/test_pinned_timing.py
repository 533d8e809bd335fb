"""The clock and the loop's phase accounting, pinned with an injected time source.

A fake clock moves only when a piece of work says it took time. Each batch of
each phase costs its own power of two, so every phase total is an exact sum
and time counted in the wrong phase, counted twice, dropped, or overwritten by
the last batch changes it. The expected totals are sums over the cost tables
below, never figures read back from the code under test.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from time import sleep
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_lab.engine import loop as train_module
from resnet_lab.engine import step as step_module
from resnet_lab.engine.clock import SyncClock
from resnet_lab.engine.loop import evaluate, summarize, train_one_epoch
from resnet_lab.engine.metrics import EpochMetrics
from resnet_lab.engine.step import StepConfig
from resnet_lab.engine.workers import LoaderWorkerError
from resnet_lab.errors import DivergenceError, LabError

# Seconds of fake time per piece of work; three batches per epoch.
STARTUP = 1.0  # iter(loader): worker start-up
LOAD = (2.0, 4.0, 8.0)  # waiting for each batch
END = 16.0  # the loader call that finds the epoch over
COPY = (32.0, 64.0, 128.0)
TRAIN = (256.0, 512.0, 1024.0)
METRICS = (2048.0, 4096.0, 8192.0)
OVERHEAD = (16384.0, 32768.0, 65536.0)  # per-batch callback work that no phase times
SHUTDOWN = 131072.0  # releasing the iterator: worker shutdown
BATCH = 2
CLASSES = 10
START = 1024.0  # the fake clock's reading before any work: not 0, so a start time added is not a start time subtracted


class FakeTime:
    """A time source that advances only by `spend`."""

    def __init__(self) -> None:
        self.seconds = START

    def __call__(self) -> float:
        return self.seconds

    def spend(self, seconds: float) -> None:
        self.seconds += seconds


def charged(time: FakeTime, costs: tuple[float, ...], fn: Callable) -> Callable:
    """`fn`, spending costs[i] of fake time on its i-th call."""
    calls = iter(costs)

    def wrapper(*args, **kwargs):
        time.spend(next(calls))
        return fn(*args, **kwargs)

    return wrapper


def tiny_batches(n: int = len(LOAD), size: int = BATCH, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(size, 3, 4, 4, generator=gen), torch.randint(0, CLASSES, (size,), generator=gen)) for _ in range(n)
    ]


class CostlyLoader:
    """Tiny batches; creating the iterator costs STARTUP, each fetch LOAD[i], the final empty fetch END,
    releasing the iterator SHUTDOWN (where a DataLoader shuts its workers down)."""

    def __init__(self, time: FakeTime, batches: list) -> None:
        self.time = time
        self.batches = batches

    def __iter__(self) -> Iterator:
        self.time.spend(STARTUP)
        return CostlyIterator(self.time, self._fetch())

    def _fetch(self) -> Iterator:
        for batch, cost in zip(self.batches, LOAD):
            self.time.spend(cost)
            yield batch
        self.time.spend(END)


class CostlyIterator:
    def __init__(self, time: FakeTime, batches: Iterator) -> None:
        self.time, self.batches = time, batches

    def __iter__(self) -> Iterator:
        return self

    def __next__(self):
        return next(self.batches)

    def __del__(self) -> None:
        self.time.spend(SHUTDOWN)


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, CLASSES))


@pytest.fixture
def time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    """Fake time charged by the loop's own copy, train and metrics calls."""
    fake = FakeTime()
    monkeypatch.setattr(train_module, "to_device", charged(fake, COPY, train_module.to_device))
    monkeypatch.setattr(train_module, "train_step", charged(fake, TRAIN, train_module.train_step))
    monkeypatch.setattr(EpochMetrics, "update", charged(fake, METRICS, EpochMetrics.update))
    return fake


def epoch(time: FakeTime, model: nn.Module | None = None, **kwargs) -> dict[str, object]:
    model = model or tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return train_one_epoch(model, CostlyLoader(time, tiny_batches()), opt, "cpu", clock=SyncClock(timer=time), **kwargs)


EXPECTED = {
    "startup_s": STARTUP,
    "load_s": sum(LOAD) + END,
    "copy_s": sum(COPY),
    "train_s": sum(TRAIN),
    "metrics_s": sum(METRICS),
    "shutdown_s": SHUTDOWN,
}


# ----------------------------------------------------------------------------- the clock


def test_region_adds_every_entry_to_its_total():
    fake = FakeTime()
    clock = SyncClock(timer=fake)
    for cost in (1.0, 2.0, 4.0):
        with clock.region("load"):
            fake.spend(cost)
    with clock.region("copy"):
        fake.spend(8.0)
    assert clock.totals == {"load": 7.0, "copy": 8.0}
    assert clock.total("load") == 7.0 and clock.total("missing") == 0.0


def test_default_time_source_is_wall_time():
    """Waiting (for a loader, for the device) is time spent: a region counts it, not only CPU time."""
    clock = SyncClock()
    with clock.region("wait"):
        sleep(0.01)
    assert clock.total("wait") >= 0.01


def test_region_counts_its_time_when_the_body_raises():
    fake = FakeTime()
    clock = SyncClock(timer=fake)
    with pytest.raises(KeyError), clock.region("load"):
        fake.spend(3.0)
        raise KeyError("boom")
    assert clock.total("load") == 3.0


def test_now_syncs_before_reading_the_time():
    fake = FakeTime()
    # The sync is the work's end: time it spends must be inside the reading.
    clock = SyncClock(sync=lambda: fake.spend(5.0), timer=fake)
    assert clock.now() == START + 5.0
    with clock.region("train"):
        fake.spend(1.0)
    assert (
        clock.total("train") == 6.0
    )  # the start sync happens before the start reading, the end sync before the end one


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


# ----------------------------------------------------------------------------- divergence, loader failures


def nan_model() -> nn.Module:
    model = tiny_model()
    with torch.no_grad():
        model[1].weight.fill_(float("nan"))
    return model


@pytest.mark.parametrize(
    ("check_every", "batch", "finished"),
    [(2, 1, [1]), (50, 2, [1, 2, 3])],
    ids=["every-2", "after-the-epoch"],
)
def test_unsynced_loop_catches_divergence_at_its_check(check_every, batch, finished):
    """No per-batch sync: a NaN loss is found at the first batch i with (i + 1) % check_every == 0, else after the epoch."""
    model = nan_model()
    seen = []
    with pytest.raises(DivergenceError) as err:
        train_one_epoch(
            model,
            tiny_batches(3),
            torch.optim.SGD(model.parameters(), lr=0.1),
            "cpu",
            epoch=2,
            sync_phases=False,
            check_every=check_every,
            on_batch_end=seen.append,
        )
    assert (err.value.epoch, err.value.batch) == (2, batch) and math.isnan(err.value.loss)
    assert seen == finished


def test_default_check_is_every_fifty_batches():
    model = nan_model()
    with pytest.raises(DivergenceError) as err:
        train_one_epoch(
            model, tiny_batches(51, size=1), torch.optim.SGD(model.parameters(), lr=0.1), "cpu", sync_phases=False
        )
    assert err.value.batch == 49


def test_synced_loop_catches_divergence_at_the_first_batch():
    model = nan_model()
    with pytest.raises(DivergenceError) as err:
        train_one_epoch(
            model, tiny_batches(3), torch.optim.SGD(model.parameters(), lr=0.1), "cpu", epoch=5, check_every=50
        )
    assert (err.value.epoch, err.value.batch) == (5, 0) and math.isnan(err.value.loss)


class FailingLoader:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __iter__(self) -> Iterator:
        yield from tiny_batches(1)
        raise self.exc


class DeadWorkerIterator:
    """A multi-process DataLoader iterator, as far as the loop looks at one, whose worker was killed after `delivered` batches."""

    def __init__(self, delivered: int) -> None:
        self._workers = [SimpleNamespace(exitcode=-9, pid=4321)]
        self.batches = tiny_batches(delivered)

    def __iter__(self) -> DeadWorkerIterator:
        return self

    def __next__(self):
        if self.batches:
            return self.batches.pop()
        raise RuntimeError("DataLoader worker (pid 4321) is killed by signal: Killed.")


class DeadWorkerLoader:
    def __init__(self, delivered: int = 1) -> None:
        self.delivered = delivered

    def __iter__(self) -> DeadWorkerIterator:
        return DeadWorkerIterator(self.delivered)


def test_a_dead_worker_becomes_a_loader_worker_error_naming_it():
    model = tiny_model()
    with pytest.raises(LoaderWorkerError, match=r"\(epoch 3, batch 1\): pid 4321 killed by SIGKILL;"):
        train_one_epoch(model, DeadWorkerLoader(), torch.optim.SGD(model.parameters(), lr=0.1), "cpu", epoch=3)


@pytest.mark.parametrize("delivered", [0, 2])
def test_a_worker_dead_during_evaluation_is_named_with_the_batch_it_was_fetching(delivered):
    with pytest.raises(
        LoaderWorkerError, match=rf"died during evaluation \(batch {delivered}\): pid 4321 killed by SIGKILL;"
    ) as caught:
        evaluate(tiny_model(), DeadWorkerLoader(delivered), "cpu")
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_other_errors_during_evaluation_pass_through_unchanged():
    with pytest.raises(RuntimeError, match="^unrelated$"):
        evaluate(tiny_model(), FailingLoader(RuntimeError("unrelated")), "cpu")


def test_other_errors_pass_through_unchanged():
    model = tiny_model()
    with pytest.raises(RuntimeError, match="^unrelated$"):
        train_one_epoch(
            model, FailingLoader(RuntimeError("unrelated")), torch.optim.SGD(model.parameters(), lr=0.1), "cpu"
        )


def test_an_empty_loader_is_refused():
    model = tiny_model()
    with pytest.raises(LabError) as err:
        train_one_epoch(model, [], torch.optim.SGD(model.parameters(), lr=0.1), "cpu")
    assert str(err.value) == "the training loader yielded no batches: is the dataset empty?"


def test_zero_max_batches_is_refused_and_one_is_allowed():
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(LabError, match="got 0"):
        train_one_epoch(model, tiny_batches(1), opt, "cpu", max_batches=0)
    assert train_one_epoch(model, tiny_batches(3), opt, "cpu", max_batches=1)["batches"] == 1


# ----------------------------------------------------------------------------- loss and top-1


class ConstantPredictor(nn.Module):
    """Logit 5 for class `cls`, 0 for the others, whatever the input."""

    def __init__(self, cls: int) -> None:
        super().__init__()
        self.linear = nn.Linear(1, CLASSES)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.bias.zero_()
            self.linear.bias[cls] = 5.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1)[:, :1] * 0)


# Cross-entropy of logits (5, 0, ..., 0): -log softmax, by hand.
HIT_LOSS = math.log(math.exp(5) + 9) - 5
MISS_LOSS = math.log(math.exp(5) + 9)


def labelled(*labels: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.zeros(len(y), 3, 4, 4), torch.tensor(y)) for y in labels]


# Class 0 predicted: batch 1 has 2 hits of 2, batch 2 has 1 hit of 4, batch 3 has 0 hits of 1.
UNEVEN = labelled([0, 0], [0, 1, 2, 3], [4])
UNEVEN_TOP1 = 3 / 7
UNEVEN_LOSS = (3 * HIT_LOSS + 4 * MISS_LOSS) / 7  # per sample, not the mean of the three batch means


def test_epoch_loss_and_top1_are_per_sample_over_uneven_batches():
    model = ConstantPredictor(0)
    record = train_one_epoch(model, UNEVEN, torch.optim.SGD(model.parameters(), lr=0.0), "cpu")
    assert record["top1"] == pytest.approx(UNEVEN_TOP1)
    assert record["loss"] == pytest.approx(UNEVEN_LOSS)
    assert record["per_class_top1"] == [1.0, 0.0, 0.0, 0.0, 0.0, None, None, None, None, None]


@pytest.mark.parametrize("eager", [True, False])
def test_epoch_metrics_by_hand(eager):
    metrics = EpochMetrics(CLASSES, torch.device("cpu"), eager=eager)
    model = ConstantPredictor(0)
    returned = []
    for x, y in UNEVEN:
        logits = model(x)
        returned.append(metrics.update(F.cross_entropy(logits, y), logits, y))
    if eager:
        assert returned == pytest.approx([HIT_LOSS, (HIT_LOSS + 3 * MISS_LOSS) / 4, MISS_LOSS])
    else:
        assert returned == [None, None, None]
    assert metrics.images == 7
    assert metrics.check_finite() == pytest.approx(3 * HIT_LOSS + 4 * MISS_LOSS)
    assert metrics.summary() == {
        "loss": pytest.approx(UNEVEN_LOSS),
        "top1": pytest.approx(UNEVEN_TOP1),
        "per_class_top1": [1.0, 0.0, 0.0, 0.0, 0.0, None, None, None, None, None],
    }
    metrics.reset()
    assert metrics.images == 0 and metrics.check_finite() == 0.0
    assert metrics.correct.tolist() == [0] * CLASSES and metrics.seen.tolist() == [0] * CLASSES


def test_top1_takes_each_sample_s_own_argmax():
    metrics = EpochMetrics(3, torch.device("cpu"))
    logits = torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 1.0], [0.0, 1.0, 4.0]])  # predicts 1, 0, 2
    y = torch.tensor([1, 1, 2])
    metrics.update(F.cross_entropy(logits, y), logits, y)
    assert metrics.summary()["top1"] == pytest.approx(2 / 3)
    assert metrics.summary()["per_class_top1"] == [None, 0.5, 1.0]


def test_loss_is_summed_in_double_precision():
    """A float32 running sum would drop the 1.0 next to 2**24 (a long epoch of large losses loses precision)."""
    metrics = EpochMetrics(CLASSES, torch.device("cpu"))
    logits, y = torch.zeros(1, CLASSES), torch.zeros(1, dtype=torch.long)
    metrics.update(torch.tensor(2.0**24), logits, y)
    metrics.update(torch.tensor(1.0), logits, y)
    assert metrics.check_finite() == 2.0**24 + 1.0


def test_running_sums_live_on_the_training_device():
    """No copy per batch: the sums are kept where the batch is (meta here; the GPU in a CUDA run)."""
    metrics = EpochMetrics(3, torch.device("meta"), eager=False)
    metrics.update(
        torch.zeros((), device="meta"),
        torch.zeros(2, 3, device="meta"),
        torch.zeros(2, dtype=torch.long, device="meta"),
    )
    assert metrics.images == 2
    assert [t.device.type for t in (metrics.loss_sum, metrics.correct, metrics.seen)] == ["meta"] * 3


def test_empty_metrics_summary_is_nan():
    summary = EpochMetrics(CLASSES, torch.device("cpu")).summary()
    assert math.isnan(summary["loss"]) and math.isnan(summary["top1"])
    assert summary["per_class_top1"] == [None] * CLASSES


# ----------------------------------------------------------------------------- evaluation


class TimedList:
    """`batches`, creating the iterator costs STARTUP and each fetch LOAD[i] of fake time."""

    def __init__(self, time: FakeTime, batches: list) -> None:
        self.time, self.batches = time, batches

    def __iter__(self) -> Iterator:
        self.time.spend(STARTUP)
        for batch, cost in zip(self.batches, LOAD):
            self.time.spend(cost)
            yield batch


def test_evaluate_reports_top1_and_mean_loss_of_a_known_predictor():
    fake = FakeTime()
    model = ConstantPredictor(0).train()
    result = evaluate(model, TimedList(fake, UNEVEN), "cpu", clock=SyncClock(timer=fake))
    assert result["test_top1"] == pytest.approx(UNEVEN_TOP1)
    assert result["test_loss"] == pytest.approx(UNEVEN_LOSS)
    assert result["test_images"] == 7
    assert result["eval_s"] == STARTUP + sum(LOAD)
    assert model.training is False


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_evaluate_runs_the_forward_in_the_step_s_autocast_dtype(dtype):
    model = ConstantPredictor(0)
    dtypes = []
    model.register_forward_hook(lambda _m, _i, out: dtypes.append(out.dtype))
    result = evaluate(model, UNEVEN, "cpu", step=StepConfig(amp_dtype=dtype))
    assert dtypes == [dtype] * 3
    assert result["test_top1"] == pytest.approx(UNEVEN_TOP1)


def test_evaluate_stops_at_max_batches():
    result = evaluate(ConstantPredictor(0), UNEVEN, "cpu", max_batches=2)
    assert result["test_images"] == 6
    assert result["test_top1"] == pytest.approx(3 / 6)
    assert result["test_loss"] == pytest.approx((3 * HIT_LOSS + 3 * MISS_LOSS) / 6)


class CountingLoader:
    """UNEVEN's batches, noting the index of each one fetched (with workers, each fetch is real loading work)."""

    def __init__(self) -> None:
        self.fetched: list[int] = []

    def __iter__(self) -> Iterator:
        for i, batch in enumerate(UNEVEN):
            self.fetched.append(i)
            yield batch


def test_evaluate_fetches_no_batch_past_max_batches():
    loader = CountingLoader()
    assert evaluate(ConstantPredictor(0), loader, "cpu", max_batches=2)["test_images"] == 6
    assert loader.fetched == [0, 1]


def test_evaluate_computes_no_gradients():
    model = ConstantPredictor(0)
    grads = []
    model.register_forward_hook(lambda _m, _i, out: grads.append(out.requires_grad))
    evaluate(model, UNEVEN, "cpu")
    assert grads == [False, False, False]


# ----------------------------------------------------------------------------- CPU time beside wall time

# Fake CPU seconds of the computing pieces of work (powers of two apart from the wall costs); the loader's
# start-up, fetches and shutdown only wait, so their phases must record no CPU time at all.
COPY_CPU = (0.5, 0.25, 0.125)
TRAIN_CPU = (1 / 16, 1 / 32, 1 / 64)
METRICS_CPU = (1 / 128, 1 / 256, 1 / 512)
OVERHEAD_CPU = (1 / 1024, 1 / 2048, 1 / 4096)
EXPECTED_CPU = {
    "startup_cpu_s": 0.0,
    "load_cpu_s": 0.0,
    "copy_cpu_s": sum(COPY_CPU),
    "train_cpu_s": sum(TRAIN_CPU),
    "metrics_cpu_s": sum(METRICS_CPU),
    "shutdown_cpu_s": 0.0,
}


@pytest.fixture
def cpu(time: FakeTime, monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    """A fake CPU clock charged by the computing calls on top of `time`'s wall charges."""
    fake = FakeTime()
    monkeypatch.setattr(train_module, "to_device", charged(fake, COPY_CPU, train_module.to_device))
    monkeypatch.setattr(train_module, "train_step", charged(fake, TRAIN_CPU, train_module.train_step))
    monkeypatch.setattr(EpochMetrics, "update", charged(fake, METRICS_CPU, EpochMetrics.update))
    return fake


def cpu_epoch(time: FakeTime, cpu: FakeTime, clock: SyncClock | None = None, **kwargs) -> dict[str, object]:
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    clock = clock or SyncClock(timer=time, cpu_timer=cpu)
    return train_one_epoch(model, CostlyLoader(time, tiny_batches()), opt, "cpu", clock=clock, **kwargs)


def test_region_keeps_cpu_time_beside_wall_time():
    wall, cpu = FakeTime(), FakeTime()
    clock = SyncClock(timer=wall, cpu_timer=cpu)
    for w, c in ((1.0, 0.5), (2.0, 0.25)):
        with clock.region("train"):
            wall.spend(w)
            cpu.spend(c)
    with clock.region("load"):
        wall.spend(4.0)  # waiting: no CPU
    assert clock.totals == {"train": 3.0, "load": 4.0}
    assert clock.cpu_totals == {"train": 0.75, "load": 0.0}
    assert clock.cpu_total("train") == 0.75 and clock.cpu_total("missing") == 0.0
    clock.reset()
    assert clock.totals == {} and clock.cpu_totals == {}


def test_a_clock_without_a_cpu_timer_keeps_no_cpu_time():
    wall = FakeTime()
    clock = SyncClock(timer=wall)
    with clock.region("train"):
        wall.spend(1.0)
    assert clock.cpu_totals == {} and not clock.keeps_cpu and clock.cpu_now() is None


def test_the_cpu_clock_is_process_cpu_time_and_a_sleep_is_not_cpu():
    from resnet_lab.engine.clock import clock_for

    clock = clock_for("cpu")
    assert clock.cpu_timer is __import__("time").process_time
    with clock.region("wait"):
        sleep(0.05)
    assert clock.total("wait") >= 0.05 and clock.cpu_total("wait") < 0.025


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


def test_summarize_means_cpu_time_only_where_every_epoch_has_it():
    base = {
        "startup_s": 0.0,
        "load_s": 1.0,
        "copy_s": 0.0,
        "train_s": 2.0,
        "metrics_s": 0.0,
        "shutdown_s": 0.0,
        "epoch_s": 4.0,
        "images": 8,
        "loss": 1.0,
        "top1": 0.5,
    }
    cpu_keys = {
        "startup_cpu_s": 0.0,
        "load_cpu_s": 0.25,
        "copy_cpu_s": 0.0,
        "train_cpu_s": 1.5,
        "metrics_cpu_s": 0.0,
        "shutdown_cpu_s": 0.0,
        "epoch_cpu_s": 2.0,
    }
    both = summarize([{**base, **cpu_keys}, {**base, **{k: 2 * v for k, v in cpu_keys.items()}}])
    assert (both["train_cpu_s"], both["load_cpu_s"], both["epoch_cpu_s"]) == (2.25, 0.375, 3.0)
    mixed = summarize([{**base, **cpu_keys}, base])  # an old epoch record: no CPU figure rather than a wrong one
    assert "train_cpu_s" not in mixed and mixed["train_s"] == 2.0


# ----------------------------------------------------------------------------- summaries over epochs


def test_summarize_by_hand():
    keys = ("startup_s", "load_s", "copy_s", "train_s", "metrics_s", "shutdown_s")
    records = [
        {**dict(zip(keys, (1.0, 2.0, 3.0, 4.0, 5.0, 0.5))), "epoch_s": 16.0, "images": 100, "loss": 2.0, "top1": 0.25},
        {**dict(zip(keys, (0.5, 1.0, 1.0, 2.0, 1.0, 0.25))), "epoch_s": 6.0, "images": 100, "loss": 1.5, "top1": 0.5},
        {**dict(zip(keys, (0.0, 3.0, 2.0, 6.0, 3.0, 0.0))), "epoch_s": 14.0, "images": 40, "loss": 1.0, "top1": 0.75},
    ]
    summary = summarize(records)
    assert {key: summary[key] for key in keys} == {
        "startup_s": 0.5,
        "load_s": 2.0,
        "copy_s": 2.0,
        "train_s": 4.0,
        "metrics_s": 3.0,
        "shutdown_s": 0.25,
    }
    assert summary["epoch_s"] == 12.0
    assert summary["first_epoch_s"] == 16.0
    assert summary["steady_epoch_s"] == 10.0  # epochs 2 and 3
    assert summary["images_per_s"] == 240 / 36.0
    assert (summary["loss"], summary["top1"], summary["epochs"]) == (1.0, 0.75, 3)
    assert summarize([]) == {}


def test_summarize_one_epoch_is_its_own_steady_state():
    record = {
        "startup_s": 0.0,
        "load_s": 1.0,
        "copy_s": 0.0,
        "train_s": 2.0,
        "metrics_s": 0.0,
        "shutdown_s": 0.0,
        "epoch_s": 4.0,
        "images": 8,
        "loss": 1.0,
        "top1": 0.5,
    }
    summary = summarize([record])
    assert summary["steady_epoch_s"] == summary["first_epoch_s"] == summary["epoch_s"] == 4.0
    assert summary["images_per_s"] == 2.0
