"""The pinned-time helpers of the loop's tests: a fake clock that moves only when a piece of work says it took time,
and a predictor whose loss and top-1 are known by hand.

Each batch of each phase costs its own power of two, so every phase total is an exact sum and time counted in the
wrong phase, counted twice, dropped, or overwritten by the last batch changes it. The expected totals are sums over
the cost tables here, never figures read back from the code under test. The fixtures that charge this fake time
(`time`, `cpu`) are in conftest.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import nn

from resnet_lab.engine.clock import SyncClock
from resnet_lab.engine.loop import train_one_epoch

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
        for batch, cost in zip(self.batches, LOAD, strict=False):
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


def cpu_epoch(time: FakeTime, cpu: FakeTime, clock: SyncClock | None = None, **kwargs) -> dict[str, object]:
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    clock = clock or SyncClock(timer=time, cpu_timer=cpu)
    return train_one_epoch(model, CostlyLoader(time, tiny_batches()), opt, "cpu", clock=clock, **kwargs)


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
