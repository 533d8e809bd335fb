"""What the data-parallel sections (D1-D5, the scaling model) read from a benchmark, and how they write it."""

from __future__ import annotations

from collections.abc import Sequence

from ..runs import Bench, Run, as_number
from .format import NR

MODEL_WORLD_SIZES = (1, 2, 4, 8)
# Bus bandwidth of an allreduce over NVLink between H100s, as published nccl-tests runs report it
# (about 370 GB/s); used for GPU predictions where no D4 of that device was measured.
PUBLISHED_NVLINK_BUSBW = 370.0


def found(runs: Sequence[Run], group: str) -> list[tuple[Run, Bench]]:
    return [(run, b) for run in runs for b in run.group(group)]


def device_of(bench: Bench) -> str:
    return str(bench.extra("device") or bench.param("device") or NR)


def ranks_of(bench: Bench) -> int:
    return int(as_number(bench.extra("world_size")) or as_number(bench.param("world_size")) or 1)


def batch_of(bench: Bench) -> int | None:
    value = as_number(bench.extra("batch_per_rank")) or as_number(bench.param("batch_per_rank"))
    return int(value) if value is not None else None


def steps(bench: Bench) -> int | None:
    value = as_number(bench.extra("batches_per_epoch"))
    return int(value) if value else None


def per_step(bench: Bench, key: str) -> float | None:
    value, count = bench.number(key), steps(bench)
    return value / count if value is not None and count else None


def fmt_pct_signed(value: float | None) -> str:
    return NR if value is None else f"{100 * value:+.1f} %"


def fmt_share(value: float | None) -> str:
    """A fraction as percent; unlike format.fmt_pct, values above 1 (efficiency, shares) stay fractions."""
    return NR if value is None else f"{100 * value:.1f} %"


def fmt_ms(seconds: float | None) -> str:
    return NR if seconds is None else f"{1e3 * seconds:.2f}"


def oom(bench: Bench) -> bool:
    return bench.extra("out_of_memory") is True
