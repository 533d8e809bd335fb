"""A LabRun in a spawned process of its own, for a run that changes process-wide state for good.

C8 `best` on a CPU tunes malloc (hostalloc.py), which cannot be undone: run in the pytest
process, it would change every figure measured after it. `IsolatedRun` builds the data and the
LabRun in a fresh process from their frozen configs and trains one epoch per request; the
parent's pytest-benchmark round sends the request and waits for the epoch's record, so rounds
still time epochs (the pipe's round trip is milliseconds against epochs of seconds) and the
order of benchmarks no longer matters. The child's peak memory and numerics are its own, and
are recorded as the benchmark's.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import torch

from ..data import DataConfig, load_datasets
from ..engine.loop import summarize
from ..engine.run import LabRun, RunConfig
from ..engine.workers import LoaderWorkerError
from ..errors import DivergenceError, LabError
from ..machine import numerics_state
from ..procs import die_with_parent
from .memory import peaks_record, start_peaks

POLL_S = 0.5  # how often a waiting parent checks that the child is still alive
CLOSE_S = 10.0  # how long a closing child may take to finish before it is terminated
_KNOWN = (LabError, DivergenceError, LoaderWorkerError)  # errors whose message says all; re-raised as they are


class IsolatedRun:
    """`LabRun`'s interface (run_epoch, evaluate, summary, records), trained in a spawned process."""

    def __init__(self, config: RunConfig, data: DataConfig, *, with_test: bool = False) -> None:
        self.config = config
        self.device = torch.device(config.device)
        self.records: list[dict[str, object]] = []
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of this process's state
        self._conn, child = context.Pipe()
        # Not a daemon: the child's own DataLoader workers are its children.
        self._process = context.Process(
            target=_serve, args=(child, config, data, with_test), name="resnet-lab-isolated-run"
        )
        self._process.start()
        child.close()
        ready = self._receive()
        self.pid: int = ready["pid"]
        self.host_alloc: dict[str, object] = ready["host_alloc"]

    def run_epoch(self) -> dict[str, object]:
        record = self._ask("epoch")
        self.records.append(record)
        return record

    def evaluate(self) -> dict[str, Any]:
        return self._ask("evaluate")

    def observe_check(self, config: RunConfig, batches: Any, plant: Any = None) -> Any:
        """The equivalence check's run of this variant (perf/equivalence.observe_variant), in this run's process,
        so it trains under the process-wide state the timed epochs have. `config` must be this run's."""
        if config != self.config:
            raise LabError("an isolated run checks only its own configuration")
        return self._ask(("observe", batches, plant))

    def process_state(self) -> dict[str, object]:
        """The child's peak memory since its run was built, and the numerics in force there."""
        return self._ask("state")

    def summary(self) -> dict[str, object]:
        return summarize(self.records)

    def close(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(BrokenPipeError, OSError):
                self._conn.send("close")
            self._process.join(CLOSE_S)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()
        self._conn.close()

    def __enter__(self) -> IsolatedRun:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _ask(self, command: str | tuple) -> Any:
        self._conn.send(command)
        return self._receive()

    def _receive(self) -> Any:
        while not self._conn.poll(POLL_S):
            if not self._process.is_alive():
                break
        try:
            status, payload = self._conn.recv()
        except (EOFError, OSError):
            self._process.join(CLOSE_S)
            raise RuntimeError(
                f"the isolated run's process {self._process.pid} died (exit code {self._process.exitcode}); "
                "a negative code is the signal that killed it, SIGKILL (-9) often the out-of-memory killer"
            ) from None
        if status == "error":
            raise payload
        return payload


def _portable(exc: BaseException) -> BaseException:
    """`exc` as the parent can raise it: itself where its message says all, else with the child's traceback."""
    if isinstance(exc, _KNOWN):
        try:
            pickle.loads(pickle.dumps(exc))
            return exc
        except Exception:  # any pickling failure: fall back to the text
            pass
    return RuntimeError("in the isolated run's process:\n" + "".join(traceback.format_exception(exc)).rstrip())


def _serve(conn: Connection, config: RunConfig, data: DataConfig, with_test: bool) -> None:
    """The child: build the data and the run, then answer requests until told to close or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to act on; it closes this process
    parent = multiprocessing.parent_process()
    die_with_parent(parent.pid if parent is not None else None)  # the parent killed mid-epoch: this run ends too
    try:
        train_set, test_set = load_datasets(data)
        device = torch.device(config.device)
        since = start_peaks(device)
        run = LabRun(config, train_set, test_set if with_test else None)
        conn.send(("ok", {"pid": os.getpid(), "host_alloc": run.host_alloc}))
    except BaseException as exc:  # every failure goes to the parent, which raises it
        conn.send(("error", _portable(exc)))
        return
    from .equivalence import observe_variant  # the check's own path, built here as in the parent

    commands: dict[str, Callable[..., Any]] = {
        "observe": lambda batches, plant: observe_variant(config, batches, plant),
        "epoch": run.run_epoch,
        "evaluate": run.evaluate,
        "state": lambda: {**peaks_record(device, since), **numerics_state()},
    }
    while True:
        try:
            command = conn.recv()
        except EOFError:
            return  # the parent is gone
        if command == "close":
            return
        name, args = (command[0], command[1:]) if isinstance(command, tuple) else (command, ())
        try:
            conn.send(("ok", commands[name](*args)))
        except BaseException as exc:
            conn.send(("error", _portable(exc)))
