"""engine/clock.py: SyncClock's regions, its time sources, and the CPU clock kept beside the wall clock, pinned with an
injected time source (tests/pinnedtime.py).
"""

from __future__ import annotations

from time import sleep

import pytest
from pinnedtime import (
    START,
    FakeTime,
)

from resnet_lab.engine.clock import SyncClock


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
