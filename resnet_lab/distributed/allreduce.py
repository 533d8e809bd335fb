"""D4: an allreduce microbenchmark over the sizes DDP moves, with nccl-tests' algbw and busbw.

Each round times `iters` back-to-back fp32 allreduces on every rank after a barrier, with the
device synchronized at both ends; a round's time per operation is the slowest rank's, since a
collective is done only when every rank is.
"""

from __future__ import annotations

import statistics

import torch
import torch.distributed as dist

from ..engine.clock import clock_for
from .launch import RankContext
from .scaling import algbw_gb_per_s, busbw_gb_per_s, ring_bytes_per_rank


def allreduce_round(context: RankContext, numel: int, iters: int) -> dict[str, float]:
    """Seconds per allreduce of `numel` fp32 elements, over `iters` operations (a rank command)."""
    device = torch.device(context.world.device)
    key = f"allreduce-buffer-{numel}"
    if key not in context.state:
        # Zeros stay zeros under summation: no overflow however many rounds run.
        context.state[key] = torch.zeros(numel, dtype=torch.float32, device=device)
    buffer = context.state[key]
    clock = clock_for(device)
    dist.barrier()
    start = clock.now()
    for _ in range(iters):
        dist.all_reduce(buffer)
    per_op = torch.tensor([(clock.now() - start) / iters], dtype=torch.float64, device=device)
    dist.all_reduce(per_op, op=dist.ReduceOp.MAX)
    return {"time_s": float(per_op.item()), "iters": iters}


def allreduce_summary(rounds: list[dict[str, float]], size_bytes: int, world_size: int) -> dict[str, object]:
    """Median time per allreduce over the rounds and the bandwidths it implies (GB/s = 1e9 B/s)."""
    times = [float(r["time_s"]) for r in rounds]
    median = statistics.median(times)
    algbw = algbw_gb_per_s(size_bytes, median)
    return {
        "size_bytes": size_bytes,
        "elements": size_bytes // 4,
        "dtype": "float32",
        "round_time_s": times,
        "time_s": median,
        "best_time_s": min(times),
        "algbw_gb_per_s": algbw,
        "busbw_gb_per_s": busbw_gb_per_s(algbw, world_size),
        "ring_bytes_per_rank": ring_bytes_per_rank(size_bytes, world_size),
    }
