"""What every training benchmark records and checks: extra_info, the epoch-record checks, C3's loader epoch and C3.2
state."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from resnet_lab.data import LoaderConfig
from resnet_lab.engine.clock import SyncClock
from resnet_lab.engine.loop import summarize
from resnet_lab.engine.run import RunConfig
from resnet_lab.suite.benchmarking import epoch_problems, loader_epoch, training_extra_info
from resnet_lab.suite.options import LabOptions
from resnet_lab.suite.sweep import SweepState


def record(**changes: object) -> dict[str, object]:
    """A sound epoch record: phases 0.25 + 1 + 0.5 + 2 + 0.125 + 0.125 = 4 s of a 4.125 s epoch."""
    base = {
        "epoch": 1,
        "batches": 2,
        "images": 256,
        "startup_s": 0.25,
        "load_s": 1.0,
        "copy_s": 0.5,
        "train_s": 2.0,
        "metrics_s": 0.125,
        "shutdown_s": 0.125,
        "epoch_s": 4.125,
        "images_per_s": 256 / 4.125,
        "loss": 2.25,
        "top1": 0.125,
    }
    return {**base, **changes}


def test_a_sound_record_has_no_problem():
    assert epoch_problems(record()) == []
    assert (
        epoch_problems(record(startup_s=0.0, shutdown_s=0.0, epoch_s=3.625, top1=1.0)) == []
    )  # no workers, phases = epoch, all correct
    assert epoch_problems(record(top1=0.0, images=2, batches=2)) == []


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"train_s": 0.0, "epoch_s": 2.0625}, "train_s is 0.0: the phase was not timed"),
        ({"copy_s": 0.0, "epoch_s": 3.625}, "copy_s is 0.0: the phase was not timed"),
        ({"load_s": 0.0, "epoch_s": 3.125}, "load_s is 0.0: the phase was not timed"),
        ({"metrics_s": -0.5, "epoch_s": 3.5}, "metrics_s is -0.5: the phase was not timed"),
        ({"startup_s": -0.25, "epoch_s": 3.625}, "startup_s is -0.25"),
        ({"shutdown_s": -0.125, "epoch_s": 3.875}, "shutdown_s is -0.125"),
        ({"epoch_s": 3.5}, "the phases add up to 4.0 s, more than epoch_s 3.5 s: time counted twice"),
        ({"loss": math.nan}, "loss is nan"),
        ({"loss": math.inf}, "loss is inf"),
        ({"top1": 1.5}, "top1 is 1.5, not a fraction"),
        ({"top1": -0.125}, "top1 is -0.125, not a fraction"),
        ({"batches": 0, "images": 0}, "0 batches of 0 images"),
        ({"batches": 3, "images": 2}, "3 batches of 2 images"),
        # 4 s of phases: at most 5% of the epoch may be left over
        ({"epoch_s": 4.1875}, None),
        ({"epoch_s": 4.25}, "0.2500 s of the 4.2500 s epoch is in no phase"),
        ({"train_s": 0.0625}, "2.0625 s of the 4.1250 s epoch is in no phase"),  # training escaped its phase
    ],
)
def test_each_wrong_figure_is_named(changes, problem):
    assert epoch_problems(record(**changes)) == ([problem] if problem else [])


def test_untimed_remainder_has_a_floor_for_short_epochs():
    # phases 0.125 s of a 0.171875 s epoch: 27% left over, but 0.046875 s is under the 0.05 s floor
    short = record(
        startup_s=0.0,
        load_s=0.03125,
        copy_s=0.03125,
        train_s=0.03125,
        metrics_s=0.03125,
        shutdown_s=0.0,
        epoch_s=0.171875,
    )
    assert epoch_problems(short) == []
    assert epoch_problems({**short, "epoch_s": 0.1796875}) == ["0.0547 s of the 0.1797 s epoch is in no phase"]


def test_unsynced_phases_may_leave_device_time_to_the_epoch():
    """The fast path times phases on the host only: the device's queued work ends up in epoch_s alone."""
    assert epoch_problems(record(epoch_s=8.0, phases_synced=False)) == []
    assert epoch_problems(record(epoch_s=8.0, phases_synced=True)) == ["4.0000 s of the 8.0000 s epoch is in no phase"]


def fake_run(config: RunConfig, records: list[dict[str, object]]) -> SimpleNamespace:
    return SimpleNamespace(
        config=config, records=records, device=torch.device("cpu"), summary=lambda: summarize(records)
    )


def test_training_extra_info_by_hand():
    records = [
        record(epoch=1, batches=3, images=300, epoch_s=4.5, loss=2.0, top1=0.25, warmup=True),
        record(
            epoch=2,
            batches=3,
            images=300,
            startup_s=0.75,
            load_s=2.0,
            shutdown_s=0.375,
            epoch_s=6.75,
            loss=1.5,
            top1=0.5,
            warmup=False,
        ),
    ]
    config = RunConfig(optimizer="nesterov", batch_norm=False, loader=LoaderConfig(batch_size=64, num_workers=3))
    options = LabOptions(preset="full", data="/data/cifar", max_batches=None)
    info = training_extra_info(fake_run(config, records), options, SimpleNamespace(source="cifar-10-batches-py"))
    assert info == {
        "startup_s": 0.5,
        "load_s": 1.5,
        "copy_s": 0.5,
        "train_s": 2.0,
        "metrics_s": 0.125,
        "shutdown_s": 0.25,
        "epoch_s": 5.625,
        "first_epoch_s": 4.5,
        "steady_epoch_s": 6.75,
        "images_per_s": 600 / 11.25,
        "loss": 1.5,
        "top1": 0.5,
        "epochs": records,
        "data": "cifar-10-batches-py",
        "data_source": "/data/cifar",
        "preset": "full",
        "batches_per_epoch": 3,
        "full_epoch": True,
        "device": "cpu",
        "workers": 3,
        "optimizer": "sgd-nesterov",
        "batch_norm": False,
        "batch_size": 64,
    }
    smoke = training_extra_info(fake_run(RunConfig(), records[:1]), LabOptions(), SimpleNamespace(source="synthetic"))
    assert (
        smoke["full_epoch"],
        smoke["batches_per_epoch"],
        smoke["optimizer"],
        smoke["workers"],
        smoke["batch_size"],
    ) == (False, 3, "sgd", 2, 128)


class TimedLoader:
    """Three batches of 4, 4 and 2 images; fetching each costs 1, 2 and 4 s, the end of the epoch 8 s."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock

    def __iter__(self):
        for size, cost in ((4, 1.0), (4, 2.0), (2, 4.0)):
            self.clock[0] += cost
            yield torch.zeros(size, 3, 2, 2), torch.zeros(size, dtype=torch.long)
        self.clock[0] += 8.0


def test_loader_epoch_by_hand():
    now = [0.0]
    result = loader_epoch(TimedLoader(now), clock=SyncClock(timer=lambda: now[0]))
    assert result == {"load_s": 15.0, "images": 10, "batches": 3, "images_per_s": 10 / 15.0}


def test_loader_epoch_of_no_time_is_infinitely_fast():
    result = loader_epoch([(torch.zeros(2, 3), torch.zeros(2))], clock=SyncClock(timer=lambda: 0.0))
    assert result["images_per_s"] == math.inf and result["images"] == 2


def test_c32_comes_from_full_training_epochs_when_c3_ran_them():
    state = SweepState(training={0: 10.0, 4: 5.25, 8: 5.0}, training_full_epochs=True, loader={0: 1.0, 4: 2.0})
    answer = state.c32(train_set=None, fallback_workers=())
    assert (answer["workers"], answer["source"]) == (4, "C3 (training, full epochs)")
    assert state.c32(train_set=None, fallback_workers=()) is answer  # decided once per session


@pytest.mark.parametrize(
    ("full", "training"),
    [(False, {0: 10.0, 4: 5.0}), (True, {0: 10.0})],
    ids=["capped-epochs", "one-count"],
)
def test_c32_falls_back_to_the_loader_sweep(full, training):
    state = SweepState(training=training, training_full_epochs=full, loader={0: 8.0, 4: 2.0, 8: 2.125})
    answer = state.c32(train_set=None, fallback_workers=())
    assert (answer["workers"], answer["source"]) == (4, "C3-loader (full CPU loader epochs)")
