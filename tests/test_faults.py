"""Failure modes: divergence, a killed or hung DataLoader worker, device OOM.

Each test is the user-visible promise: the run stops with an error that names the cause (never a
hang, never silently continuing). Interrupted runs and Ctrl-C: test_interrupts.py.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from clihelpers import in_process
from datafixtures import CLASSES, CountingLoader, random_images
from torch.utils.data import get_worker_info

from resnet_lab import cli, resnet18
from resnet_lab.cli import train as train_cli
from resnet_lab.data import DataError, LabDataset, LoaderConfig, make_train_loader, train_transform
from resnet_lab.engine import loop as train_module
from resnet_lab.engine.loop import train_one_epoch
from resnet_lab.engine.run import LabRun, RunConfig
from resnet_lab.engine.workers import LoaderWorkerError
from resnet_lab.errors import DivergenceError
from resnet_lab.optim import OptimConfig, make_optimizer

TEST_PID = os.getpid()


@pytest.fixture()
def deadline():
    """Fail instead of hanging: SIGALRM raises in the test after `seconds`."""

    class Hung(Exception):
        pass

    def on_alarm(signum: int, frame: object) -> None:
        raise Hung("no error surfaced in time: the run hung")

    previous = signal.signal(signal.SIGALRM, on_alarm)

    def arm(seconds: int) -> None:
        signal.alarm(seconds)

    yield arm
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


pytestmark = pytest.mark.usefixtures("private_cache")


# ----------------------------------------------------------------------------- (8) divergence


def diverge(run: LabRun, epochs: int = 3) -> DivergenceError:
    with pytest.raises(DivergenceError) as caught:
        for _ in range(epochs):
            run.run_epoch()
    return caught.value


def assert_names_epoch_and_batch(err: DivergenceError, run: LabRun) -> None:
    assert not math.isfinite(err.loss)
    assert f"epoch {err.epoch}, batch {err.batch}" in str(err) and "lower the learning rate" in str(err)
    assert err.epoch == len(run.records) + 1, "the diverged epoch is not recorded as if it were fine"
    assert all(math.isfinite(r["loss"]) for r in run.records)


def test_absurd_learning_rate_stops_at_the_batch() -> None:
    loader = CountingLoader(4)
    run = LabRun(RunConfig(optim=OptimConfig(lr=1e12)), train_loader=loader)
    err = diverge(run)
    assert_names_epoch_and_batch(err, run)
    assert loader.served == err.batch + 1, "the synced loop stops at the first non-finite loss"
    assert err.batch < len(loader) - 1


def test_fast_loop_catches_divergence_by_the_end_of_the_epoch() -> None:
    loader = CountingLoader(4)
    run = LabRun(RunConfig(optim=OptimConfig(lr=1e12), sync_phases=False), train_loader=loader)
    err = diverge(run)
    assert_names_epoch_and_batch(err, run)
    # No per-batch sync: the default check interval (50) is longer than the epoch, so the epoch-end check catches it.
    assert loader.served == len(loader) and err.batch == len(loader) - 1


def test_fast_loop_catches_divergence_at_the_check_interval() -> None:
    torch.manual_seed(0)
    model = resnet18()
    optimizer = make_optimizer("sgd", model.parameters(), OptimConfig(lr=1e12))
    loader = CountingLoader(8)
    with pytest.raises(DivergenceError) as caught:
        for epoch in (1, 2):
            train_one_epoch(model, loader, optimizer, "cpu", epoch=epoch, sync_phases=False, check_every=2)
    err = caught.value
    assert (err.batch + 1) % 2 == 0, "caught at a check, batch index check_every-1, 2*check_every-1, ..."
    assert loader.served == err.batch + 1 < len(loader), "stopped at the check, not at the end of the epoch"
    assert f"epoch {err.epoch}, batch {err.batch}" in str(err)


def test_cli_reports_divergence_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI has no learning-rate option; give it one here, as a user editing the defaults would."""
    plain = train_cli.run_config
    monkeypatch.setattr(
        train_cli, "run_config", lambda args: dataclasses.replace(plain(args), optim=OptimConfig(lr=1e12))
    )
    rc, _out, err = in_process(
        capsys,
        "train",
        "--data",
        str(tiny_folder),
        "--epochs",
        "3",
        "--max-batches",
        "3",
        "--batch-size",
        "4",
        "--num-workers",
        "0",
        "--eval-batches",
        "0",
        "--json",
        str(tmp_path / "never.json"),
    )
    assert rc == 1 and "Traceback" not in err
    line = err.strip()
    assert "\n" not in line and line.startswith("resnet-lab: error: training diverged: loss is nan at epoch "), err
    assert "lower the learning rate" in line
    assert not (tmp_path / "never.json").exists()


# ----------------------------------------------------------------------------- (9) DataLoader workers


class FailingWorkerDataset(LabDataset):
    """Worker 1 kills itself (SIGKILL) or hangs on the `nth` item it loads; the test process is never touched."""

    def __init__(self, n: int, nth: int, action: str, pid_file: Path) -> None:
        rng = np.random.default_rng(0)
        super().__init__(random_images(n, 0), rng.integers(0, 10, n), CLASSES, "synthetic", train_transform())
        self.nth, self.action, self.pid_file, self.loaded = nth, action, pid_file, 0

    def __getitem__(self, index: int):
        info = get_worker_info()
        if info is not None and info.id == 1 and os.getpid() != TEST_PID:
            self.loaded += 1  # this worker's own copy (fork)
            if self.loaded == self.nth:
                self.pid_file.write_text(str(os.getpid()))
                if self.action == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                time.sleep(3600)
        return super().__getitem__(index)


@pytest.mark.filterwarnings(r"ignore:.*use of fork\(\) may lead to deadlocks:DeprecationWarning")
@pytest.mark.parametrize("nth", [1, 4, 9])
def test_killed_worker_surfaces_with_its_cause(tmp_path: Path, deadline, nth: int) -> None:
    pid_file = tmp_path / "killed.pid"
    dataset = FailingWorkerDataset(40, nth, "kill", pid_file)
    run = LabRun(RunConfig(loader=LoaderConfig(batch_size=4, num_workers=2)), dataset)
    start = time.monotonic()
    deadline(60)
    with pytest.raises(LoaderWorkerError) as caught:
        run.run_epoch()
    assert time.monotonic() - start < 60
    message = str(caught.value)
    assert f"pid {pid_file.read_text()} killed by SIGKILL" in message, message
    assert message.startswith("a DataLoader worker died mid-epoch (epoch 1, batch ") and "fewer workers" in message
    assert isinstance(caught.value, RuntimeError)


@pytest.mark.filterwarnings(r"ignore:.*use of fork\(\) may lead to deadlocks:DeprecationWarning")
def test_hung_worker_times_out_instead_of_hanging(tmp_path: Path, deadline) -> None:
    dataset = FailingWorkerDataset(40, 2, "hang", tmp_path / "hung.pid")
    run = LabRun(RunConfig(loader=LoaderConfig(batch_size=4, num_workers=2, timeout=2)), dataset)
    deadline(60)
    with pytest.raises(
        LoaderWorkerError,
        match=r"DataLoader timed out after 2\.0 seconds waiting for a batch \(epoch "
        r"1, batch \d+\): a DataLoader worker is hung",
    ):
        run.run_epoch()


def test_every_way_torch_reports_a_dead_worker_names_it() -> None:
    """torch raises one of three errors depending on timing; each becomes the same clear LoaderWorkerError."""
    from types import SimpleNamespace

    from resnet_lab.engine.workers import loader_failure

    iterator = SimpleNamespace(
        _workers=[SimpleNamespace(pid=101, exitcode=None), SimpleNamespace(pid=102, exitcode=-signal.SIGKILL)]
    )
    for raw in (
        RuntimeError("DataLoader worker (pid 102) is killed by signal: Killed. "),
        RuntimeError("DataLoader worker (pid(s) 102) exited unexpectedly"),
        ConnectionResetError(104, "Connection reset by peer"),  # receiving a batch the dead worker had queued
        EOFError(),
    ):
        failure = loader_failure(raw, iterator, epoch=3, batch=7)
        assert isinstance(failure, LoaderWorkerError), raw
        assert str(failure).startswith(
            "a DataLoader worker died mid-epoch (epoch 3, batch 7): pid 102 killed by SIGKILL;"
        )
    assert loader_failure(RuntimeError("mat1 and mat2 shapes cannot be multiplied"), iterator, 1, 0) is None
    assert loader_failure(DivergenceError(1, 0, float("nan")), iterator, 1, 0) is None


def test_loader_timeout_setting() -> None:
    dataset = LabDataset(random_images(8, 0), np.zeros(8, dtype=np.int64), CLASSES, "synthetic", train_transform())
    assert LoaderConfig().timeout == 120
    assert make_train_loader(dataset, LoaderConfig(batch_size=4)).timeout == 120
    assert make_train_loader(dataset, LoaderConfig(batch_size=4, num_workers=0)).timeout == 0  # no workers to wait for
    assert make_train_loader(dataset, LoaderConfig(batch_size=4, timeout=0)).timeout == 0  # 0: wait forever
    for bad in (-1, float("inf"), float("nan"), True, "60"):
        with pytest.raises(DataError, match="timeout must be a number of seconds >= 0"):
            LoaderConfig(timeout=bad)


# ----------------------------------------------------------------------------- (12) device out of memory


@pytest.mark.parametrize("error", [torch.OutOfMemoryError, torch.cuda.OutOfMemoryError], ids=["torch", "torch.cuda"])
def test_out_of_memory_suggests_a_smaller_batch(
    capsys: pytest.CaptureFixture[str], tiny_folder: Path, monkeypatch: pytest.MonkeyPatch, error: type[Exception]
) -> None:
    def oom(*args: object, **kwargs: object) -> None:
        raise error(
            "CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total "
            "capacity of 79.19 GiB of which 3.12 GiB is free. "
            "Of the allocated memory 70.01 GiB is allocated by PyTorch.\nSee documentation for Memory Management"
        )

    monkeypatch.setattr(train_module, "train_step", oom)
    rc, _out, err = in_process(
        capsys,
        "train",
        "--data",
        str(tiny_folder),
        "--batch-size",
        "16",
        "--epochs",
        "1",
        "--num-workers",
        "0",
        "--eval-batches",
        "0",
    )
    assert rc == 2 and "Traceback" not in err
    assert err.strip() == (
        "resnet-lab: error: the device ran out of memory at --batch-size 16 "
        "(CUDA out of memory. Tried to allocate 20.00 GiB.); try a smaller --batch-size"
    )


def test_other_runtime_errors_are_not_disguised(
    capsys: pytest.CaptureFixture[str], tiny_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug is a bug: the CLI does not turn arbitrary errors into one-liners."""

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("shape mismatch in a layer")

    monkeypatch.setattr(train_module, "train_step", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        cli.main(["train", "--data", str(tiny_folder), "--batch-size", "4", "--epochs", "1", "--num-workers", "0"])
