"""Child processes die with their parent (resnet_lab/procs.py): `ab`'s pytest runs and the DataLoader workers of
`train`, after SIGTERM, Ctrl-C and SIGKILL of the parent, within 3 s; temporaries removed, or by the next run.

Slow (process start-ups, a real DataLoader): `.ci/run` runs them in a step of their own (`-m slow`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from test_ab import FAKE_CONFTEST, commit, make_repo

from resnet_lab import procs
from resnet_lab.suite.ab_runs import TEMP_PREFIX

pytestmark = pytest.mark.slow

GONE_S = 3.0
# A gated benchmark that records its pid and then runs for minutes: what `ab` is in the middle of when cancelled.
SLOW_C2 = """
    import os, time
    import pytest

    @pytest.mark.parametrize("device", ["cpu"], ids=lambda d: f"device={d}")
    def test_c2_phases(benchmark, device):
        with open(os.path.join(os.environ["AB_PIDS"], str(os.getpid())), "w"):
            pass
        time.sleep(300)
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except OSError:
        return False


def wait_until(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def clones_of(pid: int) -> list[Path]:
    """The base's clone(s) that `ab` process `pid` made."""
    return list(Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}{pid}.*"))


def start_ab(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    repo = make_repo(tmp_path / "repo")
    commit(
        repo,
        {
            "resnet_lab/__init__.py": "",
            "conftest.py": FAKE_CONFTEST,
            "benchmarks/test_c2_phases.py": SLOW_C2,
            ".gitignore": "__pycache__/\n",
        },
        "base",
    )
    pids = tmp_path / "pids"
    pids.mkdir()
    # -P: the parent imports the real resnet_lab, not the fake repo's (its runs get the repo's through PYTHONPATH).
    parent = subprocess.Popen(
        [sys.executable, "-P", "-m", "resnet_lab", "ab", "--base", "HEAD", "--out", str(tmp_path / "ab")],
        cwd=repo,
        env={**os.environ, "AB_PIDS": str(pids)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert wait_until(lambda: len(list(pids.iterdir())) >= 1 or parent.poll() is not None, 120), "no run started"
    assert parent.poll() is None, parent.communicate()
    assert clones_of(parent.pid), "the base's clone should exist while the runs do"
    return parent, pids


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_ab_stopped_by_a_signal_stops_its_runs_and_removes_the_clone(tmp_path, sig):
    parent, pids = start_ab(tmp_path)
    parent.send_signal(sig)
    _, err = parent.communicate(timeout=30)
    assert parent.returncode == (143 if sig == signal.SIGTERM else 130), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    runs = [int(p.name) for p in pids.iterdir()]
    assert wait_until(lambda: not any(alive(pid) for pid in runs), GONE_S), "a run outlived resnet-lab ab"
    assert not clones_of(parent.pid)


def test_ab_killed_by_sigkill_takes_its_runs_along_and_the_next_run_removes_the_clone(tmp_path):
    parent, pids = start_ab(tmp_path)
    parent.kill()
    parent.communicate(timeout=30)
    runs = [int(p.name) for p in pids.iterdir()]
    assert wait_until(lambda: not any(alive(pid) for pid in runs), GONE_S), "a run outlived a SIGKILLed resnet-lab ab"
    assert clones_of(parent.pid)  # nothing could remove it then; the next run does
    procs.remove_stale(tempfile.gettempdir(), TEMP_PREFIX)
    assert not clones_of(parent.pid)


def worker_pids(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split(")")[-1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_dataloader_workers_end_with_train(tmp_path, sig, private_cache):
    parent = subprocess.Popen(
        [sys.executable, "-m", "resnet_lab", "train", "--num-workers", "2", "--epochs", "100", "--batch-size", "8"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert wait_until(lambda: len(worker_pids(parent.pid)) >= 2 or parent.poll() is not None, 240), (
        "no DataLoader worker started"
    )
    workers = worker_pids(parent.pid)
    parent.send_signal(sig)
    _, err = parent.communicate(timeout=30)
    if sig == signal.SIGTERM:
        assert parent.returncode == 143 and "Traceback" not in err, err
    assert wait_until(lambda: not any(alive(pid) for pid in workers), GONE_S), "a DataLoader worker outlived train"


ISOLATED_PARENT = """
from resnet_lab.data import DataConfig, LoaderConfig
from resnet_lab.perf.isolated import IsolatedRun
from resnet_lab.engine.run import RunConfig

if __name__ == "__main__":
    # An epoch of minutes in the isolated process (the C8 run's home), with this parent waiting on it.
    config = RunConfig(epochs=1, eval_batches=0, retain_heap=True, loader=LoaderConfig(batch_size=8, num_workers=0))
    run = IsolatedRun(config, DataConfig(train_size=20000, test_size=16))
    print(run.pid, flush=True)
    run.run_epoch()
"""


def test_the_isolated_run_ends_when_its_parent_is_sigkilled_mid_epoch(tmp_path, private_cache):
    script = tmp_path / "parent.py"
    script.write_text(ISOLATED_PARENT)
    parent = subprocess.Popen(
        [sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    child = int(parent.stdout.readline())
    time.sleep(1.0)  # into the epoch
    assert alive(child)
    parent.kill()
    parent.communicate(timeout=30)
    assert wait_until(lambda: not alive(child), GONE_S), "the isolated run outlived its SIGKILLed parent"


RANKS_PARENT = """
import sys

sys.path.insert(0, {tests!r})
import ddphelpers
from resnet_lab.distributed.ranks import RankGroup

if __name__ == "__main__":
    ranks = RankGroup(2, "cpu").start()
    print(" ".join(map(str, ranks.pids)), flush=True)
    ranks.run(ddphelpers.busy_for, 300)  # rank 1 busy in a command: it does not poll for its parent then
"""


def test_the_d_ranks_end_when_rank_0_is_sigkilled_mid_command(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(RANKS_PARENT.format(tests=str(Path(__file__).parent)))
    parent = subprocess.Popen(
        [sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    ranks = [int(pid) for pid in parent.stdout.readline().split()]
    assert ranks, parent.communicate()
    time.sleep(1.0)  # into the command
    parent.kill()
    parent.communicate(timeout=30)
    assert wait_until(lambda: not any(alive(pid) for pid in ranks), GONE_S), "a rank outlived its SIGKILLed rank 0"
