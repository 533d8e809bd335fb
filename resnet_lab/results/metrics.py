"""What `compare` can compare: the figures (timing and quality), the `--fail` threshold grammar, the
CI defaults, and how one figure is read from one benchmark (statistics over its epochs or rounds).
The rule that judges a change is in results/compare.py."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..argtypes import shown
from ..engine.phases import CPU_KEYS, EPOCH_S, PHASE_KEYS
from .runs import Bench, as_number, summarize

# ---------------------------------------------------------------------------
# what can be compared
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # "timing" (noise-aware, machine-bound) or "quality" (enforced across machines)
    source: str  # "stats": pytest-benchmark's stats; "epochs": per-epoch records; "scalar": a summary value
    worse: int  # +1: larger is worse; -1: smaller is worse
    unit: str  # "s", "" or "%" (fractions shown and thresholded in percentage points)
    default_stat: str


METRICS: dict[str, Metric] = {
    EPOCH_S: Metric(EPOCH_S, "timing", "stats", +1, "s", "median"),
    # Every phase's wall time, and CPU runs' CPU seconds beside it (engine/phases.py); runs saved before the CPU
    # keys read "not recorded".
    **{key: Metric(key, "timing", "epochs", +1, "s", "median") for key in (*PHASE_KEYS, *CPU_KEYS)},
    "loss": Metric("loss", "quality", "epochs", +1, "", "last"),
    "top1": Metric("top1", "quality", "epochs", -1, "%", "last"),
    "test_loss": Metric("test_loss", "quality", "scalar", +1, "", "last"),
    "test_top1": Metric("test_top1", "quality", "scalar", -1, "%", "last"),
}
TABLE_METRICS = ("epoch_s", "load_s", "load_cpu_s", "train_s", "train_cpu_s", "loss", "top1")
STATS = ("min", "max", "mean", "median", "last")

# The thresholds CI applies to the smoke preset (and `compare`'s default when no --fail is given):
# above the run-to-run variation of repeated idle smoke runs on the 2-core CI machine, below the
# effect of twice the batches per epoch (the measurements: README, "Regression or noise?").
CI_THRESHOLDS: tuple[str, ...] = (
    "epoch_s:median:+40%",
    "load_s:median:+40%",
    "train_s:median:+40%",
    "top1:-5",
    "loss:+10%",
)
NOISE_K = 1.5  # a timing change must exceed NOISE_K x the larger of the two runs' IQR over steady rounds
MIN_DELTA_S = 0.05  # ... and this many seconds: below it, a change is timer and scheduler noise
MIN_SPREAD_ROUNDS = 2  # steady (non-warm-up) rounds needed for a spread; with fewer, no noise margin


@dataclass(frozen=True)
class Threshold:
    """`epoch_s:median:+15%` -> metric epoch_s, stat median, worse when it grows by more than 15%."""

    text: str
    metric: Metric
    stat: str
    direction: int  # +1: an increase is a violation; -1: a decrease is
    amount: float  # >= 0, a fraction when relative, else metric units (seconds, loss, percentage points)
    relative: bool

    def limit(self, old: float) -> float:
        return self.amount * abs(old) if self.relative else self.amount

    def describe_limit(self) -> str:
        sign = "+" if self.direction > 0 else "-"
        if self.relative:
            return f"{sign}{self.amount:.0%}"
        unit = {"s": " s", "%": " pt", "": ""}[self.metric.unit]
        return f"{sign}{self.amount:g}{unit}"


_AMOUNT = re.compile(r"^([+-]?)(\d+(?:\.\d*)?|\.\d+)(%?)$")


def parse_threshold(text: str) -> Threshold:
    """argparse type for --fail: METRIC[:STAT]:[+|-]AMOUNT[%]."""
    parts = text.strip().split(":")
    typed = shown(text)  # echoed back cut short: a 400-digit "threshold" is not repeated whole
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(
            f"'{typed}' is not METRIC[:STAT]:[+|-]AMOUNT[%], e.g. epoch_s:median:+15% or top1:-2"
        )
    name = parts[0]
    if name not in METRICS:
        raise argparse.ArgumentTypeError(
            f"'{typed}': unknown metric '{shown(name)}'; choose one of {', '.join(METRICS)}"
        )
    metric = METRICS[name]
    stat = parts[1] if len(parts) == 3 else metric.default_stat
    if stat not in STATS:
        raise argparse.ArgumentTypeError(
            f"'{typed}': unknown statistic '{shown(stat)}'; choose one of {', '.join(STATS)}"
        )
    if stat == "last" and metric.kind == "timing":
        raise argparse.ArgumentTypeError(
            f"'{typed}': timing metrics take min, max, mean or median over rounds, not 'last'"
        )
    match = _AMOUNT.match(parts[-1])
    if not match:
        raise argparse.ArgumentTypeError(
            f"'{typed}': threshold '{shown(parts[-1])}' is not [+|-]NUMBER[%], e.g. +15% or -2"
        )
    sign, number, percent = match.groups()
    if not math.isfinite(float(number)):
        raise argparse.ArgumentTypeError(f"'{text[:40]}': threshold amount must be a finite number")
    direction = {"+": 1, "-": -1, "": metric.worse}[sign]
    return Threshold(text, metric, stat, direction, float(number) / (100 if percent else 1), bool(percent))


# ---------------------------------------------------------------------------
# values of a metric in one benchmark
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    value: float
    # Timing: interquartile range over the steady rounds (warm-up epochs left out), None where fewer than
    # MIN_SPREAD_ROUNDS remain; quality: None (one figure).
    spread: float | None
    rounds: int


def _scale(metric: Metric, value: float) -> float:
    """top1 is stored as a fraction; compared and shown in percent (points)."""
    if metric.unit == "%" and value <= 1.0:
        return value * 100.0
    return value


def spread(values: Sequence[float]) -> float | None:
    """pytest-benchmark's IQR of `values`, or None where there are too few for one."""
    return float(summarize(values)["iqr"]) if len(values) >= MIN_SPREAD_ROUNDS else None  # type: ignore[index]  # summarize is not None for this many values


def metric_value(bench: Bench, metric: Metric, stat: str) -> Value | None:
    """The figure `stat` of `metric` in `bench` (over all rounds, the lab's epoch 1 included), with the
    spread of its steady rounds; None when the run did not record it."""
    if metric.source == "stats":
        stats = summarize(bench.round_times()) or bench.stats
        value = as_number(stats.get(stat))
        if value is None:
            return None
        rounds = as_number(stats.get("rounds"))
        return Value(value, spread(bench.round_times(steady=True)), int(rounds or 1))
    per_epoch = bench.epoch_values(metric.name) if metric.source == "epochs" else []
    if stat == "last":
        value = bench.number(metric.name)
        if value is None and per_epoch:
            value = per_epoch[-1]
        return None if value is None else Value(_scale(metric, value), None, 1)
    summary = summarize(per_epoch)
    if summary is None:
        scalar = bench.number(metric.name)  # e.g. C3-loader's single load_s, or an older run's mean
        return None if scalar is None else Value(_scale(metric, scalar), None, 1)
    steady = spread(bench.epoch_values(metric.name, steady=True))
    return Value(
        _scale(metric, summary[stat]), None if steady is None else _scale(metric, steady), int(summary["rounds"])
    )


def unusable_figure(bench: Bench, metric: Metric, stat: str) -> str | None:
    """Why `bench` has no usable `metric` ('not recorded', 'non-finite'), or None when it has one.

    A NaN in any epoch counts: metric_value skips non-finite epochs, so a run that
    diverged halfway would otherwise be judged on its finite epochs alone.
    """
    if metric.source == "stats":
        data = bench.stats.get("data")
        raw = data if isinstance(data, list) else [bench.stats.get(stat)]
    elif metric.source == "epochs" and any(metric.name in r for r in bench.epochs()):
        raw = [r[metric.name] for r in bench.epochs() if metric.name in r]
    else:
        raw = [bench.extra_info.get(metric.name)]
    raw = [v for v in raw if v is not None]
    if not raw:
        return "not recorded"
    return None if all(as_number(v) is not None for v in raw) else "non-finite"
