"""engine/loop.py's summarize: the means of the phase times over epochs, CPU time only where every epoch has it,
loss and top-1 of the last epoch.
"""

from __future__ import annotations

from resnet_lab.engine.loop import summarize


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


def test_summarize_by_hand():
    keys = ("startup_s", "load_s", "copy_s", "train_s", "metrics_s", "shutdown_s")
    records = [
        {
            **dict(zip(keys, (1.0, 2.0, 3.0, 4.0, 5.0, 0.5), strict=True)),
            "epoch_s": 16.0,
            "images": 100,
            "loss": 2.0,
            "top1": 0.25,
        },
        {
            **dict(zip(keys, (0.5, 1.0, 1.0, 2.0, 1.0, 0.25), strict=True)),
            "epoch_s": 6.0,
            "images": 100,
            "loss": 1.5,
            "top1": 0.5,
        },
        {
            **dict(zip(keys, (0.0, 3.0, 2.0, 6.0, 3.0, 0.0), strict=True)),
            "epoch_s": 14.0,
            "images": 40,
            "loss": 1.0,
            "top1": 0.75,
        },
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
