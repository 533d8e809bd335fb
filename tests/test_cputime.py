"""Telling a slowdown that computes from one that waits (results/cputime.py), and the CPU keys' checks."""

from __future__ import annotations

import math

import pytest

from resnet_lab.engine.phases import CPU_KEYS, CPU_PHASE_KEYS, PHASES, cpu_key
from resnet_lab.results.cputime import BOTH, COMPUTES, WAITS, change_kind, kind_note


@pytest.mark.parametrize(
    ("wall", "cpu", "kind"),
    [
        (1.10, 1.10, COMPUTES),
        (1.10, 1.076, COMPUTES),  # over three quarters of the change is CPU time
        (1.10, 1.074, BOTH),
        (1.10, 1.05, BOTH),
        (1.10, 1.026, BOTH),
        (1.10, 1.024, WAITS),  # under a quarter
        (1.10, 1.0, WAITS),
        (1.10, 0.97, WAITS),  # CPU time fell while wall time rose
        (1.02, 1.0, ""),  # no slowdown to attribute
        (0.90, 0.90, ""),
        (1.10, None, ""),  # an older run without CPU time: not guessed
    ],
)
def test_change_kind(wall, cpu, kind):
    assert change_kind(wall, cpu) == kind


def test_kind_note_quotes_the_cpu_ratio():
    assert kind_note(1.10, 1.0) == " (waits more: CPU 1.000x)"
    assert kind_note(1.0, 1.0) == ""


def test_the_cpu_keys_are_the_phase_keys_with_cpu_in_their_unit():
    assert tuple(f"{p}_cpu_s" for p in PHASES) == CPU_PHASE_KEYS and CPU_KEYS[-1] == "epoch_cpu_s"
    assert cpu_key("train_s") == "train_cpu_s" and cpu_key("round_s") == "round_cpu_s"
    with pytest.raises(ValueError, match="not a wall-time key"):
        cpu_key("loss")


def epoch_record(**changes) -> dict:
    record = {
        "epoch": 0,
        "batches": 2,
        "images": 8,
        "startup_s": 0.0,
        "load_s": 0.5,
        "copy_s": 0.1,
        "train_s": 2.0,
        "metrics_s": 0.1,
        "shutdown_s": 0.0,
        "epoch_s": 2.75,
        "loss": 2.0,
        "top1": 0.25,
        "startup_cpu_s": 0.0,
        "load_cpu_s": 0.25,
        "copy_cpu_s": 0.1,
        "train_cpu_s": 3.9,
        "metrics_cpu_s": 0.1,
        "shutdown_cpu_s": 0.0,
        "epoch_cpu_s": 4.5,
    }
    record.update(changes)
    return record


def test_epoch_problems_check_the_cpu_keys_and_accept_records_without_them():
    from resnet_lab.suite.benchmarking import epoch_problems

    assert epoch_problems(epoch_record()) == []
    old = {k: v for k, v in epoch_record().items() if k not in CPU_KEYS}
    assert epoch_problems(old) == []
    assert epoch_problems(epoch_record(train_cpu_s=-0.5)) == ["train_cpu_s is -0.5"]
    assert epoch_problems(epoch_record(load_cpu_s=math.nan)) == ["load_cpu_s is nan"]
    assert epoch_problems(epoch_record(epoch_cpu_s=4.0)) == [
        "the phases' CPU time adds up to 4.35 s, more than epoch_cpu_s 4.0 s"
    ]
    partial = {k: v for k, v in epoch_record().items() if k != "copy_cpu_s"}
    assert epoch_problems(partial) == [
        "CPU time recorded for only startup_cpu_s, load_cpu_s, train_cpu_s, "
        "metrics_cpu_s, shutdown_cpu_s, epoch_cpu_s: missing copy_cpu_s"
    ]
