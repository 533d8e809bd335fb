"""Ranks and process groups, started by PyTorch's own tools; one code path for gloo (CPU) and NCCL (CUDA).

Two ways in:

* `torchrun_world()`: the CLI under `torchrun`, whose env:// rendezvous sets RANK, WORLD_SIZE,
  LOCAL_RANK, MASTER_ADDR and MASTER_PORT for every rank (also across machines with
  `--nnodes N --rdzv-endpoint HOST:PORT`).
* `RankGroup`: the benchmark suite. The calling process (pytest) is rank 0 and ranks 1..N-1 are
  `torch.multiprocessing` spawn children. They meet on a `TCPStore` that rank 0 binds on a port
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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ..errors import LabError, RankFailure
from ..machine import cpu_count

BACKENDS = ("gloo", "nccl")
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")  # torchrun sets these for every rank
# How long a collective waits for a slow peer. A peer that dies is reported at once by gloo (its
# sockets close); NCCL may only notice through this timeout.
PG_TIMEOUT_S = 600.0
POLL_S = 0.02  # command and acknowledgement polling: store.check is silent, store.wait logs every timeout
STOP = b"stop"
CUDA_SKIP = "CUDA is not available here (torch.cuda.is_available() is False); run on a GPU machine or pass --lab-device cpu"


@dataclass(frozen=True)
class World:
    """Who this process is in a data-parallel job; a single process is rank 0 of 1 with no backend."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    backend: str | None = None
    device: str = "cpu"
    threads_per_rank: int = 1
    launcher: str = "single process"

    @property
    def lead(self) -> bool:
        return self.rank == 0

    def record(self) -> dict[str, object]:
        return {
            "world_size": self.world_size,
            "backend": self.backend,
            "threads_per_rank": self.threads_per_rank,
            "local_world_size": self.local_world_size,
            "launcher": self.launcher,
        }


@dataclass
class RankContext:
    """What a command sees on its rank: the World, and state kept between commands (a run, its data)."""

    world: World
    state: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- backends and capacity


def default_backend(device: torch.device | str) -> str:
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def nccl_unavailable_reason() -> str | None:
    """Why NCCL cannot run here, or None."""
    if not torch.cuda.is_available():
        return "NCCL needs CUDA GPUs and this machine has none (torch.cuda.is_available() is False); use the gloo backend on the CPU"
    if not dist.is_nccl_available():
        return "this torch build has no NCCL (torch.distributed.is_nccl_available() is False); use the gloo backend"
    return None


def resolve_backend(backend: str | None, device: torch.device | str) -> str:
    """The backend for `device` (None: NCCL on CUDA, gloo on the CPU); LabError when it cannot run here."""
    if not dist.is_available():
        raise LabError("this torch build has no torch.distributed; data-parallel runs need it")
    device = torch.device(device)
    name = default_backend(device) if backend is None else backend.strip().lower()
    if name not in BACKENDS:
        raise LabError(f"unknown backend '{backend}': use gloo (CPU) or nccl (CUDA)")
    if name == "nccl":
        reason = nccl_unavailable_reason()
        if reason:
            raise LabError(reason)
        if device.type != "cuda":
            raise LabError("NCCL runs collectives on CUDA devices only: use --device cuda, or the gloo backend on the CPU")
    elif not dist.is_gloo_available():
        raise LabError("this torch build has no gloo backend; on CUDA use nccl")
    return name


def capacity_reason(device: str, world_size: int) -> str | None:
    """Why this machine cannot hold `world_size` ranks on `device`, or None when it can."""
    kind = torch.device(device).type
    if kind == "cuda":
        if not torch.cuda.is_available():
            return CUDA_SKIP
        gpus = torch.cuda.device_count()
        if world_size > gpus:
            return f"{world_size} ranks need {world_size} GPUs (one rank per GPU: NCCL does not put two ranks on one GPU); this machine has {gpus}"
        return None
    cores = cpu_count()
    if world_size > cores:
        return f"{world_size} CPU ranks need at least {world_size} cores (fewer and the ranks only contend for them); this machine has {cores}"
    return None


def threads_per_rank(ranks_on_host: int) -> int:
    """Intra-op threads per rank so that the ranks on one host do not oversubscribe its cores."""
    return max(1, cpu_count() // max(1, ranks_on_host))


def rank_device(device: str, local_rank: int) -> str:
    """Each CUDA rank owns one GPU, cuda:LOCAL_RANK; CPU ranks share the CPU."""
    kind = torch.device(device).type
    if kind == "cuda":
        if torch.device(device).index not in (None, local_rank):
            raise LabError(f"each data-parallel rank uses cuda:LOCAL_RANK; pass --device cuda, not {device}")
        return f"cuda:{local_rank}"
    return "cpu"


def _init_group(world: World, store: dist.Store | None = None, timeout_s: float = PG_TIMEOUT_S) -> None:
    device = torch.device(world.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        world.backend,
        store=store,
        rank=world.rank if store is not None else -1,
        world_size=world.world_size if store is not None else -1,
        timeout=datetime.timedelta(seconds=timeout_s),
        device_id=device if device.type == "cuda" else None,
    )


# ----------------------------------------------------------------------------- torchrun


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in TORCHRUN_ENV)


@contextlib.contextmanager
def torchrun_world(device: str, backend: str | None = None) -> Iterator[World]:
    """The process group of a torchrun job (env:// rendezvous), torn down on exit.

    Not under torchrun, or with one rank, this is a single process: no group, the threads as they are.
    """
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        if backend is not None:
            resolve_backend(backend, device)  # NCCL asked on a machine without it is still an error
        yield World(device=device, threads_per_rank=torch.get_num_threads())
        return
    rank, world_size, local_rank = (int(os.environ[name]) for name in TORCHRUN_ENV)
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    name = resolve_backend(backend, device)
    per_rank_device = rank_device(device, local_rank)
    if per_rank_device.startswith("cuda") and local_rank >= torch.cuda.device_count():
        raise LabError(f"local rank {local_rank} has no GPU: this machine has {torch.cuda.device_count()}; use --nproc-per-node <= that")
    # torchrun sets OMP_NUM_THREADS=1 for every rank; the ranks of a host share its cores instead.
    threads = threads_per_rank(local_world_size)
    torch.set_num_threads(threads)
    world = World(rank, world_size, local_rank, local_world_size, name, per_rank_device, threads, "torchrun")
    _init_group(world)
    try:
        yield world
    finally:
        dist.destroy_process_group()


# ----------------------------------------------------------------------------- RankGroup


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
        except BaseException as exc:  # noqa: BLE001 - any failure is reported to rank 0, then this rank ends
            store.set(f"ack/{seq}/{rank}", pickle.dumps(("error", _one_line(exc), traceback.format_exc())))
            # Exit at once: a peer blocked in a collective with this rank sees its sockets close and fails too.
            os._exit(1)
        store.set(f"ack/{seq}/{rank}", reply)
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
        self.world = World(0, world_size, 0, world_size, name, rank_device(device, 0), threads or threads_per_rank(world_size), "torch.multiprocessing")
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
                self.host, self.port, self.world.world_size, is_master=True, wait_for_workers=False,
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
                _child, args=(self.host, self.port, self.world, os.getpid(), self.timeout_s),
                nprocs=self.world.world_size - 1, join=False, start_method="spawn",
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
        self._store.set(f"cmd/{seq}", pickle.dumps((fn, args, kwargs)))
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
            self._store.set(f"cmd/{self._seq}", STOP)
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
                        f"rank {rank} (pid {process.pid}) {_describe_exit(process.exitcode)} during {what}; the other ranks were stopped"
                    )
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)
