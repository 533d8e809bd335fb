"""`RankGroup`: the benchmark suite's ranks. The calling process (pytest) is rank 0 and ranks 1..N-1
are `torch.multiprocessing` spawn children. They meet on a `TCPStore` that rank 0 binds on a port
the OS picks, and rank 0 hands them commands (a picklable function and its arguments) through
that store, so one process group serves several benchmarks (D2-D4 share it) while pytest-benchmark
times rank 0. A rank that dies or fails stops the whole group with a `RankFailure` naming it.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import pickle
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ..errors import LabError, RankFailure
from ..procs import die_with_parent
from .launch import (
    PG_TIMEOUT_S,
    RankContext,
    World,
    _init_group,
    capacity_reason,
    rank_device,
    resolve_backend,
    threads_per_rank,
)

POLL_S = 0.02  # command and acknowledgement polling: store.check is silent, store.wait logs every timeout
STOP = b"stop"


def put(store: dist.Store, key: str, value: bytes) -> None:
    """store.set with bytes: the C++ store takes str or bytes, torch's stub declares str only."""
    store.set(key, value)  # type: ignore[arg-type]  # bytes are accepted (see the docstring)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "is still running"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (DataLoader workers of a rank, say), from /proc; [] where there is none."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        children.setdefault(int(fields[1]), []).append(int(entry.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _wait_for(store: dist.Store, key: str, alive: Callable[[], bool]) -> bool:
    """Block until `key` is in the store (True) or `alive()` turns False (False)."""
    while not store.check([key]):
        if not alive():
            return store.check([key])
        time.sleep(POLL_S)
    return True


def _child(index: int, host: str, port: int, template: World, parent_pid: int, timeout_s: float) -> None:
    """Rank index+1: join the group, then run rank 0's commands until told to stop or rank 0 is gone."""
    # torch.multiprocessing already asks for SIGINT on parent death, which a rank's command could catch as
    # KeyboardInterrupt; SIGTERM cannot be, so rank 0 killed (even by SIGKILL) mid-command ends this rank too.
    die_with_parent(parent_pid)
    rank = index + 1
    world = replace(template, rank=rank, local_rank=rank, device=rank_device(template.device, rank))
    torch.set_num_threads(world.threads_per_rank)
    store = dist.TCPStore(host, port, world.world_size, is_master=False, timeout=datetime.timedelta(seconds=timeout_s))
    store.set(f"ready/{rank}", str(os.getpid()))
    _init_group(world, dist.PrefixStore("pg", store), timeout_s)
    context = RankContext(world)

    def parent_alive() -> bool:
        return os.getppid() == parent_pid

    seq = 0
    while True:
        try:
            if not _wait_for(store, f"cmd/{seq}", parent_alive):
                break
            payload = store.get(f"cmd/{seq}")
        except dist.DistError:
            break  # rank 0's store is gone: so is rank 0
        if payload == STOP:
            break
        try:
            fn, args, kwargs = pickle.loads(payload)
            reply = pickle.dumps(("ok", fn(context, *args, **kwargs)))
        except BaseException as exc:  # any failure is reported to rank 0, then this rank ends
            put(store, f"ack/{seq}/{rank}", pickle.dumps(("error", _one_line(exc), traceback.format_exc())))
            # Exit at once: a peer blocked in a collective with this rank sees its sockets close and fails too.
            os._exit(1)
        put(store, f"ack/{seq}/{rank}", reply)
        seq += 1
    dist.destroy_process_group()


class RankGroup:
    """N ranks in one process group: this process is rank 0, torch.multiprocessing spawns the others.

    `run(fn, *args)` calls `fn(context, *args)` on every rank (an SPMD step: each rank runs the same
    collectives) and returns rank 0's result, or every rank's with `all_ranks=True`. `port=0` lets
    the OS choose a free rendezvous port; a given port that is taken is a LabError.
    """

    def __init__(
        self,
        world_size: int,
        device: str = "cpu",
        backend: str | None = None,
        *,
        threads: int | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        timeout_s: float = PG_TIMEOUT_S,
    ) -> None:
        if world_size < 1:
            raise LabError(f"world size must be >= 1, got {world_size}")
        reason = capacity_reason(device, world_size)
        if reason:
            raise LabError(reason)
        name = resolve_backend(backend, device)
        self.world = World(
            0,
            world_size,
            0,
            world_size,
            name,
            rank_device(device, 0),
            threads or threads_per_rank(world_size),
            "torch.multiprocessing",
        )
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self.context = RankContext(self.world)
        self._store: dist.TCPStore | None = None
        self._processes: list[Any] = []
        self._spawn_context: Any = None
        self._seq = 0
        self._closed = False

    def __enter__(self) -> RankGroup:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close(force=exc[0] is not None)

    @property
    def pids(self) -> list[int]:
        """Process ids of ranks 1..N-1."""
        return [p.pid for p in self._processes]

    @property
    def open(self) -> bool:
        return self._store is not None and not self._closed

    def start(self) -> RankGroup:
        if dist.is_initialized():
            raise LabError("this process already belongs to a process group; close it before starting a RankGroup")
        try:
            self._store = dist.TCPStore(
                self.host,
                self.port,
                self.world.world_size,
                is_master=True,
                wait_for_workers=False,
                timeout=datetime.timedelta(seconds=self.timeout_s),
            )
        except dist.DistError as exc:
            raise LabError(
                f"cannot open the rendezvous on {self.host}:{self.port} ({_one_line(exc)}); "
                "the port is taken: pass port=0 to let the OS choose a free one"
            ) from None
        self.port = self._store.port
        if self.world.world_size > 1:
            context = mp.start_processes(
                _child,
                args=(self.host, self.port, self.world, os.getpid(), self.timeout_s),
                nprocs=self.world.world_size - 1,
                join=False,
                start_method="spawn",
            )
            self._processes = list(context.processes)
            self._spawn_context = context
        try:
            for rank in range(1, self.world.world_size):
                if not _wait_for(self._store, f"ready/{rank}", self._all_alive):
                    raise RankFailure("a rank ended while starting")
            with self._rank_threads():
                _init_group(self.world, dist.PrefixStore("pg", self._store), self.timeout_s)
        except BaseException as exc:
            failure = self._failure("start-up", None)
            self.close(force=True)
            if failure is not None:
                raise failure from exc
            raise
        return self

    def run(self, fn: Callable[..., Any], *args: Any, all_ranks: bool = False, **kwargs: Any) -> Any:
        if not self.open:
            raise LabError("this RankGroup is closed (or was never started); start a new one")
        assert self._store is not None
        seq, self._seq = self._seq, self._seq + 1
        what = getattr(fn, "__name__", "a command")
        put(self._store, f"cmd/{seq}", pickle.dumps((fn, args, kwargs)))
        try:
            with self._rank_threads():
                mine = fn(self.context, *args, **kwargs)
            others = [self._ack(seq, rank, what) for rank in range(1, self.world.world_size)]
        except BaseException as exc:
            failure = self._failure(what, seq)
            self.close(force=True)
            if failure is not None:
                raise failure from exc
            raise
        return [mine, *others] if all_ranks else mine

    def close(self, force: bool = False) -> None:
        """Stop every rank: a stop command when all are well, else terminate them (and their own children)."""
        if self._closed:
            return
        self._closed = True
        if self._store is not None and not force and self._all_alive():
            put(self._store, f"cmd/{self._seq}", STOP)
            deadline = time.monotonic() + 10.0
            for process in self._processes:
                process.join(max(0.0, deadline - time.monotonic()))
        for process in self._processes:
            if process.is_alive():
                orphans = descendants(process.pid)
                process.terminate()
                process.join(2.0)
                if process.is_alive():
                    process.kill()
                    process.join(2.0)
                for pid in orphans:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        if dist.is_initialized():
            dist.destroy_process_group()
        self._store = None
        self._spawn_context = None  # its error queues (and their semaphores) go with it

    # --------------------------------------------------------------------- internals

    @contextlib.contextmanager
    def _rank_threads(self) -> Iterator[None]:
        """Rank 0 runs with the per-rank thread count, and the calling process gets its own back after."""
        before = torch.get_num_threads()
        torch.set_num_threads(self.world.threads_per_rank)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def _all_alive(self) -> bool:
        return all(p.is_alive() for p in self._processes)

    def _ack(self, seq: int, rank: int, what: str) -> Any:
        assert self._store is not None
        key = f"ack/{seq}/{rank}"
        if not _wait_for(self._store, key, self._processes[rank - 1].is_alive):
            raise RankFailure(f"rank {rank} ended without finishing {what}")
        status, value, *_ = pickle.loads(self._store.get(key))
        if status != "ok":
            raise RankFailure(f"rank {rank} failed in {what}: {value}")
        return value

    def _failure(self, what: str, seq: int | None) -> RankFailure | None:
        """The rank to blame for a failed command: one that reported an error, else one that died."""
        store = self._store
        if store is not None and seq is not None:
            for rank in range(1, self.world.world_size):
                key = f"ack/{seq}/{rank}"
                if store.check([key]):
                    status, message, *_ = pickle.loads(store.get(key))
                    if status != "ok":
                        return RankFailure(f"rank {rank} failed in {what}: {message}; the other ranks were stopped")
        # A peer's sockets can close a moment before its exit is visible: give it a second.
        deadline = time.monotonic() + 1.0
        while True:
            for rank, process in enumerate(self._processes, start=1):
                if not process.is_alive():
                    process.join(0.1)
                    return RankFailure(
                        f"rank {rank} (pid {process.pid}) {_describe_exit(process.exitcode)} "
                        f"during {what}; the other ranks were stopped"
                    )
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)
