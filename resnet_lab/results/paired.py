"""The paired A/B decision: is NEW slower than BASE, given runs taken in alternation on one machine?

Each pair i (one BASE run and one NEW run, back to back) gives a ratio
r_i = new_i / base_i of one figure. Load that drifts over minutes moves both
runs of a pair together, so the ratios are far less noisy than the two
sides' figures on their own.

Estimate and interval (on log r, so 2x slower and 2x faster are symmetric):
the Hodges-Lehmann estimate, the median of all pairwise means (Walsh
averages) of the log ratios, and the exact distribution-free confidence
interval of the Wilcoxon signed-rank test, read off the sorted Walsh averages
(Hollander & Wolfe, *Nonparametric Statistical Methods*, section 3.2). One
pair hit by a load spike moves neither much.

Verdict, with the rule's tolerance t:
  slower  the interval lies above 1 and the estimate above 1 + t (the gate fails);
  faster  the interval lies below 1 and the estimate below 1 / (1 + t) (reported, passes);
  same    anything else: no change the runs can tell apart from noise, or one under t.

Pure Python on purpose: the CLI imports this module, and it must not pull in torch or numpy.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

SLOWER, FASTER, SAME = "slower", "faster", "same"


@dataclass(frozen=True)
class GateRule:
    """When a paired comparison fails: see the module docstring."""

    tolerance: float = 0.05  # relative change a regression must exceed (as well as the interval's bound)
    confidence: float = 0.90  # two-sided; each one-sided error is (1 - confidence) / 2

    def __post_init__(self) -> None:
        if not 0.0 <= self.tolerance < 1.0:
            raise ValueError(f"tolerance must be in [0, 1), got {self.tolerance}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")


@dataclass(frozen=True)
class PairedEstimate:
    pairs: int
    ratio: float  # Hodges-Lehmann estimate of new / base
    low: float
    high: float
    confidence: float  # the interval's exact coverage (>= the rule's confidence)
    verdict: str


def log_ratios(base: Sequence[float], new: Sequence[float]) -> list[float]:
    """log(new_i / base_i) per pair; every figure must be a positive finite number."""
    if len(base) != len(new):
        raise ValueError(f"{len(base)} base figures but {len(new)} new ones: pairs need one of each")
    for value in (*base, *new):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"paired figures must be positive and finite, got {value}")
    return [math.log(n / b) for b, n in zip(base, new, strict=True)]


def walsh_averages(values: Sequence[float]) -> list[float]:
    """(x_i + x_j) / 2 for all i <= j, sorted."""
    return sorted((values[i] + values[j]) / 2 for i in range(len(values)) for j in range(i, len(values)))


@cache
def signed_rank_counts(n: int) -> tuple[int, ...]:
    """counts[t] = number of the 2**n sign patterns whose signed-rank sum T+ equals t (exact null distribution)."""
    counts = [1] + [0] * (n * (n + 1) // 2)
    for rank in range(1, n + 1):
        for total in range(len(counts) - 1, rank - 1, -1):
            counts[total] += counts[total - rank]
    return tuple(counts)


def interval_depth(n: int, confidence: float) -> tuple[int, float]:
    """The largest d >= 1 with P(T+ <= d - 1) <= (1 - confidence) / 2, and the coverage 1 - 2 P(T+ <= d - 1).

    d = 0 means no interval reaches `confidence` with n pairs (the data can never exclude 1).
    """
    counts = signed_rank_counts(n)
    total = 2**n
    tail = (1.0 - confidence) / 2
    depth, below = 0, 0
    while depth < len(counts) // 2 and (below + counts[depth]) / total <= tail:
        below += counts[depth]
        depth += 1
    return depth, 1.0 - 2 * below / total


def min_pairs(confidence: float) -> int:
    """The fewest pairs whose exact interval can reach `confidence` (5 at 90%, 6 at 95%)."""
    n = 1
    while interval_depth(n, confidence)[0] == 0:
        n += 1
    return n


def verdict(ratio: float, low: float, high: float, rule: GateRule) -> str:
    if low > 1.0 and ratio > 1.0 + rule.tolerance:
        return SLOWER
    if high < 1.0 and ratio < 1.0 / (1.0 + rule.tolerance):
        return FASTER
    return SAME


def paired_estimate(base: Sequence[float], new: Sequence[float], rule: GateRule = GateRule()) -> PairedEstimate:
    """Estimate, interval and verdict for one figure measured in len(base) pairs."""
    logs = log_ratios(base, new)
    depth, coverage = interval_depth(len(logs), rule.confidence)
    if depth == 0:
        raise ValueError(
            f"{len(logs)} pairs cannot give a {rule.confidence:.0%} interval; at "
            f"least {min_pairs(rule.confidence)} are needed"
        )
    walsh = walsh_averages(logs)
    ratio = math.exp(statistics.median(walsh))
    low, high = math.exp(walsh[depth - 1]), math.exp(walsh[len(walsh) - depth])
    return PairedEstimate(len(logs), ratio, low, high, coverage, verdict(ratio, low, high, rule))


def resampled_flag_rate(
    pair_logs: Sequence[Sequence[float]],
    pairs: int,
    rule: GateRule,
    shift: Sequence[float] | None = None,
    draws: int = 20_000,
    seed: int = 0,
) -> float:
    """The fraction of simulated gate runs that flag at least one figure as slower.

    `pair_logs[i]` holds one recorded pair's log ratios, one per gated figure. Each
    simulated run draws `pairs` distinct recorded pairs (without replacement, so no
    pair is counted twice in one interval), adds `shift[k]` to figure k's log ratios
    (an injected effect: log(1.10) is a 10% slowdown) and applies the rule per figure.
    """
    import random  # local: only the trial analysis resamples

    if pairs > len(pair_logs):
        raise ValueError(f"cannot draw {pairs} distinct pairs from {len(pair_logs)} recorded ones")
    figures = len(pair_logs[0])
    shift = list(shift) if shift is not None else [0.0] * figures
    rng = random.Random(seed)
    ones = [1.0] * pairs
    flagged = 0
    for _ in range(draws):
        sample = rng.sample(list(pair_logs), pairs)
        for k in range(figures):
            new = [math.exp(p[k] + shift[k]) for p in sample]
            if paired_estimate(ones, new, rule).verdict == SLOWER:
                flagged += 1
                break
    return flagged / draws
