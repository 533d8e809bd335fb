"""The synchronizing clock: no CUDA call on a CPU; on CUDA a sync at both ends of every region."""

from itertools import pairwise

import pytest
import torch
from torch import nn

from resnet_lab.devices import requires
from resnet_lab.engine.clock import SyncClock, clock_for, device_sync_fn, synced_timer
from resnet_lab.engine.loop import train_one_epoch
from resnet_lab.optim import make_optimizer


def test_cpu_clock_makes_no_cuda_call(monkeypatch):
    def boom(*_a, **_k):
        raise AssertionError("CUDA synchronize called for a CPU device")

    monkeypatch.setattr(torch.cuda, "synchronize", boom)
    assert device_sync_fn("cpu") is None
    clock = clock_for("cpu")
    with clock.region("x"):
        pass
    assert clock.total("x") >= 0.0


def test_cuda_sync_fn_calls_synchronize_with_device(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    device_sync_fn("cuda:0")()
    assert calls == [torch.device("cuda:0")]


def test_cuda_clock_syncs_its_device(monkeypatch):
    """Runs without a GPU: only the sync function is called, and it is the device's."""
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    clock = clock_for("cuda:0")
    clock.now()
    synced_timer("cuda:0")()
    assert calls == [torch.device("cuda:0")] * 2


def test_region_syncs_at_both_ends():
    events = []
    clock = SyncClock(sync=lambda: events.append("sync"))
    with clock.region("work"):
        events.append("work")
    assert events == ["sync", "work", "sync"]


def test_every_phase_of_an_epoch_is_bracketed_by_syncs():
    """Injected sync: each timed region of the loop starts and ends with a sync (as it would on CUDA)."""
    events = []
    clock = SyncClock(sync=lambda: events.append("sync"))
    batches = [(torch.randn(4, 3, 4, 4), torch.randint(0, 10, (4,))) for _ in range(2)]
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 10))  # the loop is under test, not the model
    opt = make_optimizer("sgd", model.parameters())

    class Spy:
        def __iter__(self):
            for b in batches:
                events.append("loader")
                yield b

    original_step = opt.step

    def step(*a, **k):
        events.append("step")
        return original_step(*a, **k)

    opt.step = step
    record = train_one_epoch(model, Spy(), opt, "cpu", clock=clock)
    assert record["batches"] == 2
    # Between consecutive work markers there is always a sync: no work escapes a region's clock.
    work = [i for i, e in enumerate(events) if e != "sync"]
    assert events[0] == "sync" and events[-1] == "sync"
    for a, b in pairwise(work):
        assert "sync" in events[a:b], f"no sync between {events[a]} and {events[b]}"
    # The start-up region, 2 batches x 4 regions, the final loader call that ends the epoch, the shutdown: each 2 syncs;
    # + epoch start/end.
    assert events.count("sync") == 2 * (1 + 2 * 4 + 1 + 1) + 2


def test_regions_accumulate():
    """Real time: three entries add up (exact totals with a fake clock are in test_pinned_timing.py)."""
    clock = SyncClock()
    for _ in range(3):
        with clock.region("a"):
            pass
    assert set(clock.totals) == {"a"} and clock.total("missing") == 0.0
    assert clock.total("a") > 0.0


@pytest.mark.cuda
@requires("cuda")
def test_cuda_clock_counts_async_kernels():
    """The region's host time spans the kernels' device time, which launches alone would not."""
    x = torch.randn(4096, 4096, device="cuda")
    (x @ x).sum().item()  # cuBLAS set-up outside the measurement
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    clock = clock_for("cuda")
    with clock.region("mm"):
        start.record()
        for _ in range(10):
            x = x @ x / 4096
        end.record()
    assert end.query(), "the region ended before the kernels did: no sync"
    device_s = start.elapsed_time(end) / 1000
    assert device_s > 0
    assert clock.total("mm") >= device_s
