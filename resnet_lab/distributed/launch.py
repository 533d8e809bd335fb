"""Ranks and process groups, started by PyTorch's own tools; one code path for gloo (CPU) and NCCL (CUDA).

Two ways in:

* `torchrun_world()`: the CLI under `torchrun`, whose env:// rendezvous sets RANK, WORLD_SIZE,
  LOCAL_RANK, MASTER_ADDR and MASTER_PORT for every rank (also across machines with
  `--nnodes N --rdzv-endpoint HOST:PORT`).
* `ranks.RankGroup`: the benchmark suite, ranks started by torch.multiprocessing (see ranks.py).

This module holds what both share: the `World` a rank lives in, backends, devices and threads per
rank, and the process group's set-up.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from ..devices import DEVICE_TYPES, device_type
from ..errors import LabError
from ..machine import cpu_count

BACKENDS = ("gloo", "nccl")
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")  # torchrun sets these for every rank
# How long a collective waits for a slow peer. A peer that dies is reported at once by gloo (its
# sockets close); NCCL may only notice through this timeout.
PG_TIMEOUT_S = 600.0
CUDA_SKIP = DEVICE_TYPES["cuda"].skip_reason


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
    return device_type(torch.device(device)).backend


def nccl_unavailable_reason() -> str | None:
    """Why NCCL cannot run here, or None."""
    if not torch.cuda.is_available():
        return (
            "NCCL needs CUDA GPUs and this machine has none "
            "(torch.cuda.is_available() is False); use the gloo backend on the CPU"
        )
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
            raise LabError(
                "NCCL runs collectives on CUDA devices only: use --device cuda, or the gloo backend on the CPU"
            )
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
            return (
                f"{world_size} ranks need {world_size} GPUs (one rank per GPU: NCCL "
                f"does not put two ranks on one GPU); this machine has {gpus}"
            )
        return None
    cores = cpu_count()
    if world_size > cores:
        return (
            f"{world_size} CPU ranks need at least {world_size} cores (fewer and "
            f"the ranks only contend for them); this machine has {cores}"
        )
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
    if device.type == "cuda":  # cuda-only
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


RENDEZVOUS_ENV = ("MASTER_ADDR", "MASTER_PORT")  # env:// rendezvous needs both for more than one rank


def launched_by_torchrun() -> bool:
    return launcher_ranks() is not None


def launcher_ranks(env: dict[str, str] | None = None) -> tuple[int, int, int] | None:
    """(RANK, WORLD_SIZE, LOCAL_RANK) that a launcher set, None when none is set; LabError, one line,
    for a stray or partial launcher environment (a variable left in a shell, WORLD_SIZE=two)."""
    env = dict(os.environ) if env is None else env
    given = [name for name in TORCHRUN_ENV if name in env]
    if not given:
        return None
    fix = f"launch with torchrun, or unset {' '.join(given)}"
    missing = [name for name in TORCHRUN_ENV if name not in env]
    if missing:
        raise LabError(f"{', '.join(given)} set but {', '.join(missing)} not: a partial launcher environment; {fix}")
    values = {}
    for name in TORCHRUN_ENV:
        text = env[name].strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 9:
            raise LabError(f"{name}={env[name]!r} is not a rank count or index (a non-negative integer); {fix}")
        values[name] = int(text)
    rank, world_size, local_rank = (values[name] for name in TORCHRUN_ENV)
    if world_size < 1 or rank >= world_size or local_rank > rank:
        raise LabError(
            f"RANK={rank}, WORLD_SIZE={world_size}, LOCAL_RANK={local_rank} do not describe a rank of a job "
            f"(0 <= LOCAL_RANK <= RANK < WORLD_SIZE); {fix}"
        )
    unset = [name for name in RENDEZVOUS_ENV if not env.get(name, "").strip()]
    if world_size > 1 and unset:
        raise LabError(f"WORLD_SIZE={world_size} but {' and '.join(unset)} not set, so the ranks cannot meet; {fix}")
    return rank, world_size, local_rank


@contextlib.contextmanager
def torchrun_world(device: str, backend: str | None = None) -> Iterator[World]:
    """The process group of a torchrun job (env:// rendezvous), torn down on exit.

    Not under torchrun, or with one rank, this is a single process: no group, the threads as they are.
    """
    ranks = launcher_ranks()
    if ranks is None or ranks[1] == 1:
        if backend is not None:
            resolve_backend(backend, device)  # NCCL asked on a machine without it is still an error
        yield World(device=device, threads_per_rank=torch.get_num_threads())
        return
    rank, world_size, local_rank = ranks
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    name = resolve_backend(backend, device)
    per_rank_device = rank_device(device, local_rank)
    if per_rank_device.startswith("cuda") and local_rank >= torch.cuda.device_count():
        raise LabError(
            f"local rank {local_rank} has no GPU: this machine has "
            f"{torch.cuda.device_count()}; use --nproc-per-node <= that"
        )
    # torchrun sets OMP_NUM_THREADS=1 for every rank; the ranks of a host share its cores instead.
    threads = threads_per_rank(local_world_size)
    torch.set_num_threads(threads)
    world = World(rank, world_size, local_rank, local_world_size, name, per_rank_device, threads, "torchrun")
    _init_group(world)
    try:
        yield world
    finally:
        dist.destroy_process_group()
