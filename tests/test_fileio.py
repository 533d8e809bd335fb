"""Atomic writes: a target is whole or absent, and Ctrl-C never strands the temporary file."""

from __future__ import annotations

import os
import signal

import pytest

from resnet_lab.fileio import atomic_open


def test_ctrl_c_during_the_write_waits_for_a_complete_file(tmp_path):
    target = tmp_path / "run.json"
    with pytest.raises(KeyboardInterrupt), atomic_open(target) as handle:
        handle.write("first half, ")
        os.kill(os.getpid(), signal.SIGINT)  # arrives mid-write
        handle.write("second half")
    assert target.read_text() == "first half, second half"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]  # no temporary file left behind


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "run.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write("new")
        raise RuntimeError("disk gone")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_signal_handler_is_restored(tmp_path):
    with atomic_open(tmp_path / "x") as handle:
        handle.write("x")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
