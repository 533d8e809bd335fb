"""results/compare.py's noise-aware rule and results/metrics.py's --fail grammar, on hand-computed numbers: the
thresholds, the spread, the boundaries and defaults, pinned.
"""

from __future__ import annotations

import argparse
import statistics

import pytest
from fixtures.labruns import make_run, stats_of, write_run

from resnet_lab.results.compare import (
    CI_THRESHOLDS,
    METRICS,
    Value,
    metric_value,
    parse_threshold,
    quality_violation,
    timing_violation,
)
from resnet_lab.results.loading import load_run
from resnet_lab.results.runs import summarize

# ---------------------------------------------------------------------------
# --fail grammar
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, metric, stat, direction, amount, relative",
    [
        ("epoch_s:median:+15%", "epoch_s", "median", 1, 0.15, True),
        ("load_s:mean:+25%", "load_s", "mean", 1, 0.25, True),
        ("top1:-2", "top1", "last", -1, 2.0, False),
        ("train_s:0.5", "train_s", "median", 1, 0.5, False),  # no sign: the metric's bad direction
        ("top1:mean:3", "top1", "mean", -1, 3.0, False),
        ("loss:+10%", "loss", "last", 1, 0.10, True),
        ("epoch_s:min:-.5%", "epoch_s", "min", -1, 0.005, True),
    ],
)
def test_threshold_grammar(text, metric, stat, direction, amount, relative):
    t = parse_threshold(text)
    assert (t.metric.name, t.stat, t.direction, t.relative) == (metric, stat, direction, relative)
    assert t.amount == pytest.approx(amount)


@pytest.mark.parametrize(
    "text, message",
    [
        ("epoch_s", "is not METRIC"),
        ("a:b:c:d", "is not METRIC"),
        ("speed:+1", "unknown metric 'speed'"),
        ("epoch_s:p99:+1%", "unknown statistic 'p99'"),
        ("epoch_s:last:+1%", "not 'last'"),
        ("epoch_s:median:fast", "is not [+|-]NUMBER[%]"),
        ("top1:--2", "is not [+|-]NUMBER[%]"),
    ],
)
def test_threshold_grammar_errors(text, message):
    with pytest.raises(argparse.ArgumentTypeError) as exc:
        parse_threshold(text)
    assert message in str(exc.value)


def test_ci_thresholds_parse():
    assert [parse_threshold(t).text for t in CI_THRESHOLDS] == list(CI_THRESHOLDS)


# ---------------------------------------------------------------------------
# the noise-aware rule, on hand-computed numbers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "old, new, threshold, k, floor, violated, margin",
    [
        # +30% beyond +15%, spread margin 1.5 x 0.1 = 0.15 < 0.3: a regression
        (Value(1.0, 0.10, 5), Value(1.3, 0.05, 5), "epoch_s:median:+15%", 1.5, 0.05, True, 0.15),
        # same change, but the new run varies by 0.25 over its rounds: 1.5 x 0.25 = 0.375 > 0.3, noise
        (Value(1.0, 0.10, 5), Value(1.3, 0.25, 5), "epoch_s:median:+15%", 1.5, 0.05, False, 0.375),
        # +10% is inside a +15% threshold whatever the spread
        (Value(1.0, 0.0, 5), Value(1.1, 0.0, 5), "epoch_s:median:+15%", 1.5, 0.05, False, 0.0),
        # +50% of 40 ms is 20 ms: below the 50 ms floor
        (Value(0.04, 0.0, 2), Value(0.06, 0.0, 2), "load_s:median:+15%", 1.5, 0.05, False, 0.0),
        # absolute threshold in seconds
        (Value(2.0, 0.0, 2), Value(2.6, 0.0, 2), "train_s:median:+0.5", 1.5, 0.05, True, 0.0),
        # faster is never a violation of a + threshold
        (Value(2.0, 0.0, 2), Value(1.0, 0.0, 2), "train_s:median:+15%", 1.5, 0.05, False, 0.0),
    ],
)
def test_timing_rule(old, new, threshold, k, floor, violated, margin):
    got, got_margin = timing_violation(parse_threshold(threshold), old, new, k, floor)
    assert got is violated
    assert got_margin == pytest.approx(margin)


def test_phase_values_are_pytest_benchmark_statistics_over_epochs(tmp_path):
    bench = load_run(write_run(tmp_path / "three.json", make_run(seed=0, epochs=3))).group("C2")[0]
    loads = [r["load_s"] for r in bench.extra_info["epochs"]]
    value = metric_value(bench, METRICS["load_s"], "median")
    assert value.value == pytest.approx(statistics.median(loads))  # the figure: every epoch, the lab's epoch 1 included
    # The spread: epochs 2 and 3 only (IQR of two values, as pytest-benchmark computes it: max - min), not the warm-up
    # gap.
    assert value.spread == pytest.approx(abs(loads[2] - loads[1]))
    epoch = metric_value(bench, METRICS["epoch_s"], "median")
    rounds = bench.stats["data"]
    assert epoch.value == pytest.approx(bench.stats["median"]) and epoch.spread == pytest.approx(
        abs(rounds[2] - rounds[1])
    )
    assert summarize(bench.epoch_values("epoch_s"))["median"] == pytest.approx(bench.stats["median"])
    top1 = metric_value(bench, METRICS["top1"], "last")
    assert top1.value == pytest.approx(100 * bench.extra_info["epochs"][-1]["top1"]) and top1.spread is None


def test_one_steady_round_has_no_spread(tmp_path):
    base_path = write_run(tmp_path / "base.json", make_run(seed=0))
    """Two epochs (the smoke preset): one steady round, no spread; the warm-up gap is not taken for noise."""
    bench = load_run(base_path).group("C2")[0]
    assert metric_value(bench, METRICS["load_s"], "median").spread is None
    assert metric_value(bench, METRICS["epoch_s"], "median").spread is None
    probe = load_run(base_path).group("Q1-Q4")[0]  # one round, no epoch records
    assert metric_value(probe, METRICS["epoch_s"], "median").spread is None


def test_rounds_without_epoch_records_all_count_as_steady(tmp_path):
    data = make_run(seed=0, groups=("loader",))
    rounds = [0.5, 0.75, 1.0]
    data["benchmarks"][1]["stats"] = stats_of(rounds)  # the device-resident loader's rounds
    bench = load_run(write_run(tmp_path / "loader.json", data)).benchmarks[1]
    assert (
        metric_value(bench, METRICS["epoch_s"], "median").spread
        == pytest.approx(summarize(rounds)["iqr"])
        == pytest.approx(0.375)
    )


# ---------------------------------------------------------------------------
# the rule's boundaries and defaults, pinned
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "old, new, threshold, violated",
    [
        # +16% against +15%: the limit is 15% of BASE (0.15 s), not of NEW (0.174 s)
        (1.0, 1.16, "epoch_s:median:+15%", True),
        (1.0, 1.14, "epoch_s:median:+15%", False),
        # exactly at the limit (binary-exact numbers): not beyond it; one step more is
        (2.0, 2.5, "train_s:median:+25%", False),
        (2.0, 2.5625, "train_s:median:+25%", True),
        (2.0, 2.5, "train_s:median:+0.5", False),
        (2.0, 2.5625, "train_s:median:+0.5", True),
        # a '-' threshold: getting faster by more than 10% of BASE is the violation
        (2.0, 1.75, "load_s:median:-10%", True),
        (2.0, 1.875, "load_s:median:-10%", False),
        (2.0, 2.5625, "load_s:median:-10%", False),
    ],
)
def test_timing_limit_is_relative_to_base(old, new, threshold, violated):
    got, margin = timing_violation(parse_threshold(threshold), Value(old, 0.0, 5), Value(new, 0.0, 5), 1.5, 0.05)
    assert (got, margin) == (violated, 0.0)


@pytest.mark.parametrize(
    "old, new, threshold, violated",
    [
        (2.0, 2.25, "loss:+10%", True),  # +0.25 > 10% of BASE's 2.0
        (2.0, 2.1875, "loss:+10%", False),
        (2.0, 2.5, "loss:+0.5", False),
        (50.0, 47.5, "top1:-2", True),  # points, in percent
        (50.0, 48.0, "top1:-2", False),
        (50.0, 55.0, "top1:-2", False),
    ],
)
def test_quality_limit_is_relative_to_base(old, new, threshold, violated):
    assert quality_violation(parse_threshold(threshold), Value(old, None, 1), Value(new, None, 1)) is violated


def test_relative_limit_is_a_magnitude():
    assert parse_threshold("loss:+25%").limit(-2.0) == 0.5
    assert parse_threshold("loss:+0.25").limit(-2.0) == 0.25


@pytest.mark.parametrize(
    "old, new, violated",
    [
        # margin 1.5 x 0.25 = 0.375 s: a change of exactly that is noise, one step more is not
        (Value(1.0, 0.25, 5), Value(1.375, 0.0, 5), False),
        (Value(1.0, 0.25, 5), Value(1.4375, 0.0, 5), True),
    ],
)
def test_noise_margin_is_exclusive(old, new, violated):
    assert timing_violation(parse_threshold("epoch_s:median:+10%"), old, new, 1.5, 0.05) == (violated, 0.375)


def test_min_delta_is_exclusive():
    threshold = parse_threshold("epoch_s:median:+1%")
    assert timing_violation(threshold, Value(1.0, 0.0, 5), Value(1.0625, 0.0, 5), 1.5, 0.0625) == (False, 0.0)
    assert timing_violation(threshold, Value(1.0, 0.0, 5), Value(1.125, 0.0, 5), 1.5, 0.0625) == (True, 0.0)


def test_margin_is_k_times_the_larger_spread():
    threshold = parse_threshold("epoch_s:median:+10%")
    # old spread 0.1, new 0.2: margin 2 x 0.2 = 0.4; a +0.5 s change is beyond it, +0.35 s is not
    assert timing_violation(threshold, Value(1.0, 0.1, 5), Value(1.5, 0.2, 5), 2.0, 0.05) == (True, 0.4)
    assert timing_violation(threshold, Value(1.0, 0.2, 5), Value(1.35, 0.1, 5), 2.0, 0.05) == (False, 0.4)
    # a missing spread counts as none
    assert timing_violation(threshold, Value(1.0, None, 1), Value(1.5, None, 1), 2.0, 0.05) == (True, 0.0)
