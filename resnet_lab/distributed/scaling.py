"""Allreduce bandwidth as nccl-tests defines it (D4), and the scaling model: data-parallel epochs on paper.

Plain numbers in and out, no torch, so the report and `resnet-lab scaling` use it freely.

Bandwidths (NVIDIA nccl-tests, doc/PERFORMANCE.md). An allreduce of S bytes per rank that takes
t seconds on n ranks has

    algbw = S / t                    (algorithm bandwidth)
    busbw = algbw * 2(n-1)/n         (bus bandwidth: a ring allreduce sends and receives
                                      2(n-1)/n * S bytes per rank, so busbw is what each rank's
                                      link carried, comparable across n and with the link's peak)

GB/s here are 1e9 bytes per second, as in nccl-tests.

The model, per training step of one rank, weak scaling (b images per rank, N ranks):

    compute     c = c1 * share               c1: D1's step (copy, forward, backward, update) at batch b
                                             on one device; share: how many ranks split one device's
                                             compute (1 with a GPU per rank; N when N ranks share a CPU)
    allreduce   a = 2(N-1)/N * G / busbw     G: gradient bytes (11,173,962 fp32 for the lab's model)
    no overlap  t = c + a
    overlap     t = c + max(a_last, a - f * c)
                                             DDP reduces buckets while backward (a fraction f of the
                                             step) still runs; only the last bucket, complete when
                                             backward ends, cannot hide: a_last is its allreduce
    epoch       ceil(images / (N * b)) * t
    speedup     epoch(1) / epoch(N)          efficiency = speedup / N
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

GB = 1e9  # nccl-tests' GB
LAB_IMAGES = 50_000  # CIFAR-10's training set, the lab's epoch
# Backward does about twice the forward's arithmetic, so about 2/3 of a step is backward
# (the update is small next to both); an assumption of the model, changeable per call.
BACKWARD_FRACTION = 2 / 3


def ring_bytes_per_rank(size_bytes: float, world_size: int) -> float:
    """Bytes each rank sends (and receives) in a ring allreduce of `size_bytes`: 2(n-1)/n * S."""
    return 2 * (world_size - 1) / world_size * size_bytes


def algbw_gb_per_s(size_bytes: float, seconds: float) -> float:
    return size_bytes / seconds / GB


def busbw_gb_per_s(algbw: float, world_size: int) -> float:
    """nccl-tests' bus bandwidth of an allreduce: algbw * 2(n-1)/n."""
    return algbw * 2 * (world_size - 1) / world_size


def allreduce_s(size_bytes: float, world_size: int, busbw: float) -> float:
    """Seconds for an allreduce of `size_bytes` on `world_size` ranks at bus bandwidth `busbw` (GB/s)."""
    if world_size <= 1:
        return 0.0
    return ring_bytes_per_rank(size_bytes, world_size) / (busbw * GB)


def union_length(spans: list[tuple[float, float]]) -> float:
    """Length of the union of [start, end] intervals: time during which at least one was running."""
    total, reach = 0.0, -math.inf
    for start, end in sorted(spans):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


@dataclass(frozen=True)
class ScalingInputs:
    """What the model needs; see the module docstring for each symbol."""

    step_s: float  # c1: one device's measured training step at batch_per_rank (D1)
    batch_per_rank: int
    gradient_bytes: int  # G
    busbw_gb_per_s: float  # the link's bus bandwidth (D4's, or a published figure)
    images: int = LAB_IMAGES
    backward_fraction: float = BACKWARD_FRACTION  # f
    last_bucket_bytes: int | None = None  # None: the whole gradient is one bucket (nothing hides)
    ranks_share_device: bool = False  # True: N ranks split one device (CPU ranks on one host)

    def __post_init__(self) -> None:
        if not (
            self.step_s > 0
            and self.batch_per_rank >= 1
            and self.gradient_bytes > 0
            and self.busbw_gb_per_s > 0
            and self.images >= 1
        ):
            raise ValueError(f"scaling inputs must be positive: {self}")
        if not 0 <= self.backward_fraction <= 1:
            raise ValueError(f"backward_fraction must be within [0, 1], got {self.backward_fraction}")


def predict(inputs: ScalingInputs, world_size: int) -> dict[str, float | int]:
    """Per-step and per-epoch seconds for `world_size` ranks, without and with backward/allreduce overlap."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    compute = inputs.step_s * (world_size if inputs.ranks_share_device else 1)
    reduce = allreduce_s(inputs.gradient_bytes, world_size, inputs.busbw_gb_per_s)
    last = allreduce_s(
        inputs.last_bucket_bytes if inputs.last_bucket_bytes is not None else inputs.gradient_bytes,
        world_size,
        inputs.busbw_gb_per_s,
    )
    steps = math.ceil(inputs.images / (world_size * inputs.batch_per_rank))
    no_overlap = compute + reduce
    overlap = compute + max(min(last, reduce), reduce - inputs.backward_fraction * compute)
    return {
        "world_size": world_size,
        "global_batch": world_size * inputs.batch_per_rank,
        "steps_per_epoch": steps,
        "compute_s": compute,
        "allreduce_s": reduce,
        "step_no_overlap_s": no_overlap,
        "step_overlap_s": overlap,
        "epoch_no_overlap_s": steps * no_overlap,
        "epoch_overlap_s": steps * overlap,
    }


def scaling_table(inputs: ScalingInputs, world_sizes: list[int]) -> list[dict[str, float | int]]:
    """`predict` for each world size, with speedup and efficiency against one rank on one device."""
    one = predict(replace(inputs, ranks_share_device=False), 1)
    rows = []
    for n in world_sizes:
        row = predict(inputs, n)
        for mode in ("no_overlap", "overlap"):
            speedup = float(one[f"epoch_{mode}_s"]) / float(row[f"epoch_{mode}_s"])
            row[f"speedup_{mode}"] = speedup
            row[f"efficiency_{mode}"] = speedup / n
        rows.append(row)
    return rows


def relative_error(predicted: float, measured: float) -> float:
    """(predicted - measured) / measured: +10% means the model predicts 10% too slow."""
    return (predicted - measured) / measured
