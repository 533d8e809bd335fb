"""Runs -> series (one per benchmark, figure, machine and workload) -> verdicts, with the run's false-alarm
rate divided among every series judged (Bonferroni), so that a noise-only history fails the gate in at most
`alpha` of cases however many series it has."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..compare import bench_label
from ..metrics import (
    CI_THRESHOLDS,
    METRICS,
    MIN_DELTA_S,
    Metric,
    metric_value,
    parse_threshold,
    unusable_figure,
)
from ..runs import Run
from .detect import (
    INSUFFICIENT,
    REGRESSION,
    Rule,
    Verdict,
    boundaries,
    judge,
    judgeable,
)
from .sources import block_key, commit_id, is_dirty

# The figures `compare` gates by default (CI_THRESHOLDS), in that order; epoch_s is the benchmark's round time.
FIGURES: tuple[str, ...] = tuple(dict.fromkeys(t.split(":")[0] for t in CI_THRESHOLDS))
FIGURE_TITLES = {
    "epoch_s": "round time (epoch_s)",
    "train_s": "train_s per epoch",
    "load_s": "load_s per epoch",
    "top1": "top-1",
    "loss": "loss",
}
TIMING_TOLERANCE = 0.05  # the gate: a timing segment more than 5 % slower
ALPHA = 0.05  # false-alarm rate over all series of one history


def rule_for(metric: Metric, timing_tolerance: float = TIMING_TOLERANCE) -> Rule:
    """Timings: ratios beyond `timing_tolerance` and compare's MIN_DELTA_S; quality: compare's CI threshold."""
    if metric.kind == "timing":
        return Rule(metric.worse, True, timing_tolerance, MIN_DELTA_S)
    threshold = next(parse_threshold(t) for t in CI_THRESHOLDS if t.split(":")[0] == metric.name)
    return Rule(threshold.direction, threshold.relative, threshold.amount)


@dataclass(frozen=True)
class Point:
    run: Run
    value: float  # the figure, as compare reads it (e.g. the median over rounds)
    spread: float | None  # the run's own IQR over its steady rounds, where it has two

    @property
    def commit(self) -> str:
        return commit_id(self.run)

    @property
    def dirty(self) -> bool:
        return is_dirty(self.run)

    @property
    def block(self) -> tuple[str, ...]:
        """The code state the run measures: a change point never falls between two runs of one block."""
        return block_key(self.run)


@dataclass(frozen=True)
class Series:
    figure: str
    benchmark: str
    machine: str
    workload: str
    points: tuple[Point, ...]
    broken: str = ""  # the newest run records the figure as NaN/inf: a failure whatever the history says

    @property
    def metric(self) -> Metric:
        return METRICS[self.figure]

    @property
    def title(self) -> str:
        return f"{self.benchmark} · {FIGURE_TITLES.get(self.figure, self.figure)}"


@dataclass(frozen=True)
class Judged:
    series: Series
    verdict: Verdict

    @property
    def label(self) -> str:
        return self.verdict.label


def machine_text(run: Run) -> str:
    m = run.machine()
    cpu = m.cpu or "CPU not recorded"
    return f"{cpu}{f' x{m.cpu_count}' if m.cpu_count else ''}, {m.gpu or 'no GPU'}"


def build_series(runs: Sequence[Run], figures: Sequence[str] = FIGURES) -> list[Series]:
    """`runs` in history order -> one series per (figure, benchmark, machine, workload) that has a value."""
    found: dict[tuple[str, str, str, str], list[Point]] = {}
    broken: dict[tuple[str, str, str, str], str] = {}
    newest: dict[tuple[str, str, str, str], Run] = {}
    for run in runs:
        machine, workload = machine_text(run), run.workload()
        for bench in run.benchmarks:
            for figure in figures:
                metric = METRICS[figure]
                key = (figure, bench_label(bench), machine, workload)
                problem = unusable_figure(bench, metric, metric.default_stat)
                if problem == "not recorded":
                    continue
                newest[key] = run
                if problem:
                    broken[key] = f"{figure} is non-finite in {run.label}"
                    continue
                broken.pop(key, None)
                value = metric_value(bench, metric, metric.default_stat)
                if value is not None:
                    found.setdefault(key, []).append(Point(run, value.value, value.spread))
    return [Series(*key, points=tuple(found.get(key, ())), broken=broken.get(key, "")) for key in newest]


def can_judge(s: Series) -> bool:
    """Some commit boundary of the series has MIN_RUNS runs on either side."""
    return judgeable(boundaries([p.block for p in s.points], len(s.points)))


def judge_all(
    series: Sequence[Series], *, alpha: float = ALPHA, timing_tolerance: float = TIMING_TOLERANCE
) -> list[Judged]:
    """Each series' verdict at alpha / (number of series with enough runs to judge)."""
    judgeable = [s for s in series if can_judge(s)] or series
    per_series = alpha / max(1, len(judgeable))
    out = []
    for s in series:
        verdict = judge(
            [p.value for p in s.points],
            rule_for(s.metric, timing_tolerance),
            per_series,
            blocks=[p.block for p in s.points],
        )
        if s.broken:
            verdict = Verdict(REGRESSION, verdict.changes, why=s.broken, gate=True, segments=verdict.segments)
        out.append(Judged(s, verdict))
    return out


def gate_status(judged: Sequence[Judged]) -> int:
    """0: no gated regression; 1: a regression; 2: no series had enough runs to judge."""
    if any(j.verdict.gate for j in judged):
        return 1
    if all(j.label == INSUFFICIENT for j in judged):
        return 2
    return 0


def short(commit: str) -> str:
    return commit[:8]


def fmt_value(metric: Metric, value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if metric.unit == "s":
        return f"{value:.4g} s"
    if metric.unit == "%":
        return f"{value:.2f} %"
    return f"{value:.4g}"
