"""Failure modes of data-parallel runs: a rank that raises or is killed mid-epoch stops the whole job, naming it.

Each test starts its own two ranks (a `RankGroup` whose rank 0 is this process, or a torchrun job) and
watches every process the job starts, DataLoader workers included, to check that none outlives it.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import ddphelpers
import pytest

from resnet_lab.distributed.ranks import RankGroup, descendants
from resnet_lab.errors import RankFailure


def alive(pid: int) -> bool:
    """Running, not a zombie; the multiprocessing resource tracker (interpreter-wide, not the job's) excluded."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, IndexError):
        return False
    return state != "Z" and b"resource_tracker" not in cmdline


def survivors(pids: set[int], within: float) -> list[int]:
    """The processes among `pids` still alive `within` seconds from now (returns as soon as none is)."""
    deadline = time.monotonic() + within
    while (left := [pid for pid in pids if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


class ProcessWatch:
    """Every descendant of this process seen while the block runs (ranks and their DataLoader workers)."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.seen.update(descendants(os.getpid()))
            time.sleep(0.1)

    def __enter__(self) -> ProcessWatch:
        self.seen = {pid for pid in descendants(os.getpid()) if alive(pid)}  # earlier helpers are not this job's
        self._before = set(self.seen)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def job(self) -> set[int]:
        return self.seen - self._before


def test_a_rank_that_raises_stops_the_group_naming_it() -> None:
    with (
        ProcessWatch() as watch,
        pytest.raises(RankFailure, match=r"rank 1 failed in fail_on_rank: ValueError: deliberate failure on rank 1"),
        RankGroup(2, "cpu") as ranks,
    ):
        ranks.run(ddphelpers.fail_on_rank, 1)
    assert not survivors(watch.job, within=10.0)


def test_a_rank_killed_mid_epoch_stops_every_rank_and_leaves_no_process() -> None:
    """Rank 1 is SIGKILLed after two steps, with a DataLoader worker per rank running."""
    with ProcessWatch() as watch:
        ranks = RankGroup(2, "cpu").start()
        start = time.monotonic()
        with pytest.raises(RankFailure) as caught:
            ranks.run(ddphelpers.train_until_a_rank_dies)
        stopped = time.monotonic() - start
        assert not ranks.open
    assert stopped < 60
    message = str(caught.value)
    assert message.startswith(f"rank 1 (pid {ranks.pids[0]}) was killed by SIGKILL during train_until_a_rank_dies"), (
        message
    )
    # What rank 0's own run said first (under torchrun, the line a surviving rank prints).
    assert isinstance(caught.value.__cause__, RankFailure) and str(caught.value.__cause__).startswith(
        "rank 0 lost its peers in epoch 1"
    )
    assert len(watch.job) >= 3, f"rank 1 and both ranks' DataLoader workers were seen: {watch.job}"
    assert not survivors(watch.job, within=10.0), "a process of the job outlived it by 10 s"


def local_rank_1(root: int) -> int | None:
    """The torchrun rank process with LOCAL_RANK=1 under `root`, once it has a DataLoader worker (it is mid-epoch)."""
    for pid in descendants(root):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"LOCAL_RANK=1" in environ and descendants(pid):
            return pid
    return None


@pytest.mark.skipif(not ddphelpers.TORCHRUN.exists(), reason="torchrun is not installed beside this Python")
@pytest.mark.usefixtures("private_cache")
def test_torchrun_job_stops_when_a_rank_is_killed_and_names_it(tmp_path: Path, tiny_folder: Path) -> None:
    with ProcessWatch() as watch:
        proc = ddphelpers.torchrun(
            "--data",
            str(tiny_folder),
            "--epochs",
            "100",
            "--batch-size",
            "2",
            "--num-workers",
            "1",
            "--eval-batches",
            "0",
            cwd=tmp_path,
        )
        deadline = time.monotonic() + 120
        while (victim := local_rank_1(proc.pid)) is None:
            assert proc.poll() is None and time.monotonic() < deadline, "rank 1 never started an epoch"
            time.sleep(0.2)
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        _, stderr = proc.communicate(timeout=60)
        assert time.monotonic() - killed < 60
    assert proc.returncode != 0
    assert re.search(r"rank\s*:\s*1 \(local_rank: 1\)\s+exitcode\s*:\s*-9", stderr), stderr[-2000:]
    assert not survivors(watch.job, within=10.0), "a process of the job outlived it by 10 s"
