"""The paired decision rule (resnet_lab.results.paired) on hand-computed values and synthetic paired runs."""

from __future__ import annotations

import math
import random

import pytest

from resnet_lab.results.paired import (
    FASTER,
    SAME,
    SLOWER,
    GateRule,
    interval_depth,
    log_ratios,
    min_pairs,
    paired_estimate,
    resampled_flag_rate,
    signed_rank_counts,
    walsh_averages,
)


def test_walsh_averages_by_hand():
    assert walsh_averages([0.0, 1.0, 3.0]) == [0.0, 0.5, 1.0, 1.5, 2.0, 3.0]


def test_signed_rank_null_distribution_by_hand():
    # sign patterns of ranks {1, 2, 3}: sums 0, 1, 2, 3 (twice: {3}, {1, 2}), 4, 5, 6
    assert signed_rank_counts(3) == (1, 1, 1, 2, 1, 1, 1)
    assert sum(signed_rank_counts(10)) == 2**10


@pytest.mark.parametrize(
    "n, critical",  # one-sided 5% critical values of the signed-rank statistic (published Wilcoxon tables)
    [(5, 0), (6, 2), (8, 5), (10, 10), (12, 17), (15, 30)],
)
def test_interval_depth_matches_wilcoxon_tables(n, critical):
    depth, coverage = interval_depth(n, 0.90)
    assert depth == critical + 1
    below = sum(signed_rank_counts(n)[:depth])
    assert coverage == pytest.approx(1 - 2 * below / 2**n)
    assert coverage >= 0.90


def test_too_few_pairs_for_the_confidence():
    assert interval_depth(4, 0.90) == (0, 1.0)
    assert (min_pairs(0.90), min_pairs(0.95)) == (5, 6)
    with pytest.raises(ValueError, match="at least 5 are needed"):
        paired_estimate([1.0] * 4, [1.1] * 4)


def test_five_pairs_interval_is_the_range_of_the_ratios():
    base = [2.0, 4.0, 1.0, 3.0, 5.0]
    ratios = [1.10, 1.20, 1.05, 1.15, 1.30]
    e = paired_estimate(base, [b * r for b, r in zip(base, ratios, strict=True)])
    assert (e.low, e.high) == (pytest.approx(1.05), pytest.approx(1.30))
    assert e.confidence == pytest.approx(1 - 2 / 32)
    logs = sorted(math.log(r) for r in ratios)
    assert e.ratio == pytest.approx(math.exp(sorted((logs[i] + logs[j]) / 2 for i in range(5) for j in range(i, 5))[7]))


@pytest.mark.parametrize(
    "base, new", [([1.0, float("nan")], [1.0, 1.0]), ([1.0, 0.0], [1.0, 1.0]), ([1.0], [1.0, 2.0])]
)
def test_figures_must_be_positive_finite_and_paired(base, new):
    with pytest.raises(ValueError):
        log_ratios(base, new)


@pytest.mark.parametrize("kwargs", [{"tolerance": -0.1}, {"tolerance": 1.0}, {"confidence": 0.0}, {"confidence": 1.0}])
def test_rule_validation(kwargs):
    with pytest.raises(ValueError):
        GateRule(**kwargs)


# ---------------------------------------------------------------------------
# synthetic paired runs: load that moves both runs of a pair, noise per run, an effect on NEW
# ---------------------------------------------------------------------------


def synthetic_pairs(
    effect: float, noise: float, pairs: int = 6, seed: int = 0, drift: float = 2.0
) -> tuple[list[float], list[float]]:
    """Per-pair load factor in [1, drift] shared by both runs; lognormal noise of sd `noise` per run; NEW x effect."""
    rng = random.Random(seed)
    base, new = [], []
    for _ in range(pairs):
        load = rng.uniform(1.0, drift)
        base.append(4.0 * load * math.exp(rng.gauss(0, noise)))
        new.append(4.0 * effect * load * math.exp(rng.gauss(0, noise)))
    return base, new


def test_effect_outside_the_noise_fails():
    e = paired_estimate(*synthetic_pairs(effect=1.10, noise=0.01))
    assert e.verdict == SLOWER
    assert e.low > 1.0 and e.ratio == pytest.approx(1.10, abs=0.02)


def test_effect_inside_the_noise_passes():
    # a 3% change under 8% run-to-run noise: the interval straddles 1
    e = paired_estimate(*synthetic_pairs(effect=1.03, noise=0.08))
    assert e.low < 1.0 < e.high
    assert e.verdict == SAME


def test_a_significant_change_under_the_tolerance_passes():
    e = paired_estimate(*synthetic_pairs(effect=1.03, noise=0.002))
    assert e.low > 1.0 and e.ratio < 1.05
    assert e.verdict == SAME


def test_a_speed_up_is_reported_as_faster_and_passes():
    e = paired_estimate(*synthetic_pairs(effect=1 / 1.10, noise=0.01))
    assert e.verdict == FASTER
    assert e.high < 1.0


def test_drift_shared_by_a_pair_does_not_matter():
    # load varies 3x between pairs, far more than the 10% effect; the pairs still see 10%
    base, new = synthetic_pairs(effect=1.10, noise=0.005, drift=3.0)
    assert max(base) / min(base) > 1.5
    assert paired_estimate(base, new).verdict == SLOWER
    assert paired_estimate(base, base).verdict == SAME


def test_one_spiked_pair_does_not_flag_an_a_a_run():
    base, new = synthetic_pairs(effect=1.0, noise=0.01, pairs=8)
    new[3] *= 1.8  # a load spike during one NEW run
    e = paired_estimate(base, new)
    assert e.verdict == SAME
    assert e.ratio < 1.05


def test_resampled_flag_rate_counts_runs_with_any_figure_flagged():
    rng = random.Random(5)
    quiet = [(rng.gauss(0, 0.01), rng.gauss(0, 0.01)) for _ in range(20)]  # two figures, 1% noise, no effect
    rule = GateRule()
    assert resampled_flag_rate(quiet, 6, rule, draws=500) < 0.05
    assert resampled_flag_rate(quiet, 6, rule, shift=[math.log(1.10), 0.0], draws=500) == 1.0
    assert resampled_flag_rate(quiet, 6, rule, shift=[0.0, math.log(1.10)], draws=500) == 1.0
    assert resampled_flag_rate(quiet, 6, rule, shift=[math.log(1 / 1.10), 0.0], draws=500) < 0.05  # faster never flags
    with pytest.raises(ValueError, match="cannot draw 21 distinct pairs"):
        resampled_flag_rate(quiet, 21, rule)
