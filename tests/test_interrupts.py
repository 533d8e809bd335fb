"""Interrupted runs (resnet_lab/interrupts.py and the CLI's writes): SIGINT or SIGKILL mid-run or mid-write never
leaves a partial --json, and Ctrl-C anywhere (workers starting or stopping, training) ends in one line.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from clihelpers import in_process
from datafixtures import CountingLoader

from resnet_lab import resnet18
from resnet_lab.engine import loop as train_module
from resnet_lab.engine.loop import train_one_epoch
from resnet_lab.optim import make_optimizer

ROOT = Path(__file__).resolve().parent.parent
INTERRUPTED = "resnet-lab: interrupted; files already written are complete, nothing half-written was kept"

pytestmark = pytest.mark.usefixtures("private_cache")


# ----------------------------------------------------------------------------- (10) interrupted runs never leave a
# partial --json


def load_trials():
    spec = importlib.util.spec_from_file_location("interrupt_trials", ROOT / "scripts" / "interrupt_trials.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_interrupted_overwrites_leave_old_or_new_json_never_partial(tmp_path: Path, tiny_folder: Path) -> None:
    """Four trials (scripts/interrupt_trials.py runs many more): SIGINT and SIGKILL, at a random moment and
    mid-write."""
    trials = load_trials()
    rng = random.Random(1234)
    plan = [
        (signal.SIGINT, trials.AT_WRITE),
        (signal.SIGKILL, trials.AT_WRITE),
        (signal.SIGINT, rng.uniform(1.0, 6.0)),
        (signal.SIGKILL, rng.uniform(1.0, 6.0)),
    ]
    env = dict(os.environ)
    with ThreadPoolExecutor(2) as pool:
        results = list(
            pool.map(
                lambda item: trials.run_trial(
                    tmp_path / f"trial-{item[0]}", item[1][0], item[1][1], str(tiny_folder), env
                ),
                enumerate(plan),
            )
        )
    for trial in results:
        assert trial.outcome in ("old", "new"), trial
        assert trial.ok, trial
        if trial.signal == "SIGINT":
            assert trial.leftover_tmp == 0, trial
        if trial.signal == "SIGINT" and trial.sent and trial.returncode == 130:
            assert trial.stderr.strip() == INTERRUPTED, trial.stderr
        if not trial.sent:
            assert trial.returncode == 0 and trial.outcome == "new"
        elif trial.signal == "SIGKILL":
            assert trial.returncode in (-signal.SIGKILL, 0), trial  # 0: it finished just as the signal was sent
    for trial in results[:2]:
        if trial.write_seen:  # signalled while the new file was being written: old or new, both whole
            assert trial.returncode in (130, -signal.SIGKILL, 0), trial


def test_ctrl_c_just_after_the_temporary_file_is_created(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worst moment for Ctrl-C: the temporary file exists, the cleanup handler is not armed yet.

    The CLI holds Ctrl-C for the milliseconds the write takes: the new file lands whole, then the
    run stops with exit 130 and nothing stranded.
    """
    import tempfile
    from types import SimpleNamespace

    from resnet_lab import fileio

    def mkstemp_then_ctrl_c(**kwargs: object):
        created = tempfile.mkstemp(**kwargs)
        if Path(kwargs["dir"]) == tmp_path:  # the --json write, not the data cache's
            interrupt_self()
        return created

    monkeypatch.setattr(fileio, "tempfile", SimpleNamespace(mkstemp=mkstemp_then_ctrl_c))
    out_json = tmp_path / "out.json"
    out_json.write_text('{"earlier": true}\n')
    rc, _out, err = in_process(
        capsys,
        "train",
        "--data",
        str(tiny_folder),
        "--epochs",
        "1",
        "--max-batches",
        "1",
        "--batch-size",
        "4",
        "--num-workers",
        "0",
        "--eval-batches",
        "0",
        "--json",
        str(out_json),
    )
    assert rc == 130 and err.strip() == INTERRUPTED, err
    assert json.loads(out_json.read_text())["summary"]["epochs"] == 1, "the new results landed whole"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ----------------------------------------------------------------------------- Ctrl-C


def interrupt_self() -> None:
    """Ctrl-C now: the handler runs during the sleep."""
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)


class InterruptedWhileStarting(CountingLoader):
    """Ctrl-C arrives while the loader starts (forks) its workers, inside code that drops exceptions.

    CPython prints and drops an exception raised in an at-fork hook (logging registers one) or in a
    __del__; this loader drops it the same way.
    """

    def __iter__(self):
        with contextlib.suppress(KeyboardInterrupt):  # "Exception ignored in: <function _releaseLock ...>"
            interrupt_self()
        return super().__iter__()


class InterruptedWhileStopping(CountingLoader):
    """Ctrl-C arrives while the loader's iterator shuts its workers down in __del__."""

    class Batches:
        def __init__(self, batches: list) -> None:
            self.batches = iter(batches)

        def __iter__(self):
            return self

        def __next__(self):
            return next(self.batches)

        def __del__(self) -> None:
            interrupt_self()  # a KeyboardInterrupt raised here would be printed and dropped

    def __iter__(self):
        return self.Batches(self.batches)


@pytest.mark.parametrize(
    "loader_type", [InterruptedWhileStarting, InterruptedWhileStopping], ids=["starting", "stopping"]
)
@pytest.mark.parametrize("phase", ["train", "evaluate"])
def test_ctrl_c_while_workers_start_or_stop_is_not_lost(loader_type: type, phase: str) -> None:
    model = resnet18()
    loader = loader_type(2)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        if phase == "train":
            train_one_epoch(model, loader, make_optimizer("sgd", model.parameters()), "cpu", max_batches=1)
        else:
            train_module.evaluate(model, loader, "cpu", max_batches=1)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "the usual Ctrl-C handler is back"


def test_ctrl_c_during_training_is_one_line(tmp_path: Path, tiny_folder: Path) -> None:
    """Ctrl-C reaches the whole foreground process group, DataLoader workers included.

    Sent right after an epoch line, it lands while the next epoch forks its workers: a
    KeyboardInterrupt raised in an at-fork hook would be swallowed and training would go on.
    """
    out_json = tmp_path / "out.json"
    out_json.write_text('{"earlier": true}\n')
    proc = subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-m",
            "resnet_lab",
            "train",
            "--data",
            str(tiny_folder),
            "--epochs",
            "50",
            "--batch-size",
            "4",
            "--num-workers",
            "2",
            "--json",
            str(out_json),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True)
    reader.start()
    try:
        got = ""
        end = time.monotonic() + 90
        while not got.startswith("epoch 1/50"):  # training has started, workers and all
            got = lines.get(timeout=max(0.1, end - time.monotonic()))
        os.killpg(proc.pid, signal.SIGINT)
        rc = proc.wait(timeout=30)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        reader.join(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
    assert rc == 130, err
    assert err.strip() == INTERRUPTED, err
    assert out_json.read_text() == '{"earlier": true}\n'
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # no worker outlives the run
