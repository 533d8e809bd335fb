"""One synchronizing clock for every timed region.

CUDA kernels run asynchronously, so a host timer read without a sync measures
only the launch. `SyncClock` synchronizes the device at both ends of a region;
on a CPU its sync is `None` and no CUDA call is ever made (the lab's classic
crash: `torch.cuda.synchronize()` on a machine without CUDA). Its time source
is `time.perf_counter` unless another is injected (tests use a fake one, so
that what each phase records can be checked exactly).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

SyncFn = Callable[[], None]
Timer = Callable[[], float]


def device_sync_fn(device: torch.device | str) -> SyncFn | None:
    """The function that waits for `device`'s queued work, or None where there is none to wait for."""
    device = torch.device(device)
    if device.type == "cuda":  # cuda-only
        return lambda: torch.cuda.synchronize(device)
    return None


@dataclass
class SyncClock:
    """Accumulates seconds per named region; `sync` (if any) runs at both ends of each region."""

    sync: SyncFn | None = None
    totals: dict[str, float] = field(default_factory=dict)
    timer: Timer = time.perf_counter

    def now(self) -> float:
        """A synchronized timestamp: all work queued so far has finished."""
        if self.sync is not None:
            self.sync()
        return self.timer()

    @contextmanager
    def region(self, name: str) -> Iterator[None]:
        """Time the body; a region entered again (once per batch) adds to the same total."""
        start = self.now()
        try:
            yield
        finally:
            self.add(name, self.now() - start)

    def add(self, name: str, seconds: float) -> None:
        # Apart from `region` so that mutation testing (which skips decorated functions) reaches it.
        self.totals[name] = self.totals.get(name, 0.0) + seconds

    def total(self, name: str) -> float:
        return self.totals.get(name, 0.0)


def clock_for(device: torch.device | str) -> SyncClock:
    return SyncClock(sync=device_sync_fn(device))


def synced_timer(device: torch.device | str) -> Callable[[], float]:
    """A `perf_counter` that synchronizes `device` first; usable as pytest-benchmark's timer."""
    return clock_for(device).now
