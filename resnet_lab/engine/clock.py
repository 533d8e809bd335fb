"""One synchronizing clock for every timed region.

CUDA kernels run asynchronously, so a host timer read without a sync measures
only the launch. `SyncClock` synchronizes the device at both ends of a region;
on a CPU its sync is `None` and no CUDA call is ever made (the lab's classic
crash: `torch.cuda.synchronize()` on a machine without CUDA). Its time source
is `time.perf_counter` unless another is injected (tests use a fake one, so
that what each phase records can be checked exactly). On a CPU it also keeps
this process's CPU seconds per region (`time.process_time`, every thread), so
that a region's waiting (wall time without CPU time) can be told from its
computing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from ..devices import synchronizer

SyncFn = Callable[[], None]
Timer = Callable[[], float]


def device_sync_fn(device: torch.device | str) -> SyncFn | None:
    """The function that waits for `device`'s queued work, or None where there is none to wait for."""
    return synchronizer(torch.device(device))  # the device table's (resnet_lab/devices.py)


@dataclass
class SyncClock:
    """Accumulates seconds per named region; `sync` (if any) runs at both ends of each region."""

    sync: SyncFn | None = None
    totals: dict[str, float] = field(default_factory=dict)
    timer: Timer = time.perf_counter
    # CPU seconds per region beside the wall seconds; None keeps none (CUDA: the sync's busy wait is no compute).
    cpu_timer: Timer | None = None
    cpu_totals: dict[str, float] = field(default_factory=dict)

    def now(self) -> float:
        """A synchronized timestamp: all work queued so far has finished."""
        if self.sync is not None:
            self.sync()
        return self.timer()

    def cpu_now(self) -> float | None:
        return self.cpu_timer() if self.cpu_timer is not None else None

    @contextmanager
    def region(self, name: str) -> Iterator[None]:
        """Time the body; a region entered again (once per batch) adds to the same total."""
        start, cpu_start = self.now(), self.cpu_now()
        try:
            yield
        finally:
            self.add(name, self.now() - start)
            self.add_cpu(name, cpu_start)

    def add(self, name: str, seconds: float) -> None:
        # Apart from `region` so that mutation testing (which skips decorated functions) reaches it.
        self.totals[name] = self.totals.get(name, 0.0) + seconds

    def add_cpu(self, name: str, cpu_start: float | None) -> None:
        """Add the CPU seconds since `cpu_start` to the region's CPU total (nothing when CPU time is not kept)."""
        cpu_end = self.cpu_now()
        if cpu_start is not None and cpu_end is not None:
            self.cpu_totals[name] = self.cpu_totals.get(name, 0.0) + cpu_end - cpu_start

    def total(self, name: str) -> float:
        return self.totals.get(name, 0.0)

    def cpu_total(self, name: str) -> float:
        return self.cpu_totals.get(name, 0.0)

    @property
    def keeps_cpu(self) -> bool:
        return self.cpu_timer is not None

    def reset(self) -> None:
        """Every total back to zero (a clock reused for the next epoch)."""
        self.totals.clear()
        self.cpu_totals.clear()


def clock_for(device: torch.device | str) -> SyncClock:
    cpu = torch.device(device).type == "cpu"
    return SyncClock(sync=device_sync_fn(device), cpu_timer=time.process_time if cpu else None)


def synced_timer(device: torch.device | str) -> Callable[[], float]:
    """A `perf_counter` that synchronizes `device` first; usable as pytest-benchmark's timer."""
    return clock_for(device).now
