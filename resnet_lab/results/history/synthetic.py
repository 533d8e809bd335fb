"""Synthetic histories to measure the detector by (issue 22's rates): 20 runs with log-normal noise, and a step,
a drift, a single outlier or nothing planted; plus the run-to-run spread of the committed A/B trials
(results/ab-gate/), the noisier case. The detector alone: no plotting, no files written."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..loading import load_run
from ..metrics import METRICS, metric_value
from .detect import REGRESSION, Rule, Verdict, judge

RUNS = 20
STEP_AT = 10  # 0-based: the 11th run is the first of the slower segment
STEP = 1.15
SERIES_PER_HISTORY = (
    4  # the timing series of the A/B gate's two benchmarks: C2 epoch_s, train_s, load_s; loader round time
)
TIMING = Rule(worse=+1, log_scale=True, tolerance=0.05)
SCENARIOS = ("step", "noise", "drift", "outlier", "newest outlier")


def history(
    rng: np.random.Generator, scenario: str, sigma: float, runs: int = RUNS, runs_per_commit: int = 1
) -> np.ndarray:
    """One series of `runs` commits around 1.0, `runs_per_commit` runs each with log-normal noise `sigma`, and the
    scenario planted per commit: step: x1.15 from commit 11 on; drift: a straight ramp in log to x1.15 at the
    last commit; outlier: commit 11's first run x1.5; newest outlier: the last run x1.5; noise: nothing."""
    level = np.zeros(runs)
    if scenario == "step":
        level[STEP_AT:] = math.log(STEP)
    elif scenario == "drift":
        level = np.linspace(0.0, math.log(STEP), runs)
    elif scenario not in ("noise", "outlier", "newest outlier"):
        raise ValueError(f"unknown scenario {scenario!r}")
    level = np.repeat(level, runs_per_commit)
    if scenario == "outlier":
        level[STEP_AT * runs_per_commit] = math.log(1.5)
    elif scenario == "newest outlier":
        level[-1] = math.log(1.5)
    return np.exp(level + rng.normal(0.0, sigma, level.size))


def located(verdict: Verdict, at: int = STEP_AT, within: int = 1, runs_per_commit: int = 1) -> bool:
    """A step (not a drift) reported within `within` commits of commit `at`."""
    return verdict.drift is None and any(
        abs(c.index - at * runs_per_commit) <= within * runs_per_commit for c in verdict.changes
    )


@dataclass(frozen=True)
class Rates:
    scenario: str
    sigma: float
    histories: int
    regression: float  # histories whose newest run is labelled a regression (any of the series)
    located: float  # a step reported within +-1 commit of commit 11 (first series)
    drift: float  # the first series reported as a drift
    suspicious: float  # the first series labelled suspicious
    exact: float  # a step reported at commit 11 itself (its first run)
    runs_per_commit: int = 1


def rates(
    scenario: str,
    sigma: float,
    histories: int = 200,
    *,
    alpha: float = 0.05,
    series: int = SERIES_PER_HISTORY,
    seed: int = 0,
    runs_per_commit: int = 1,
) -> Rates:
    """Each history has `series` independent series (the planted one first, the others noise), judged at
    alpha / series each, as `history` divides its false-alarm rate; with `runs_per_commit` > 1, the runs of a
    commit are one block, as `history` judges them."""
    rng = np.random.default_rng(seed)
    blocks = np.repeat(np.arange(RUNS), runs_per_commit).tolist() if runs_per_commit > 1 else None
    flagged = found = exact = drift = suspicious = 0
    for _ in range(histories):
        verdicts = [
            judge(
                history(rng, scenario if k == 0 else "noise", sigma, runs_per_commit=runs_per_commit),
                TIMING,
                alpha / series,
                blocks=blocks,
            )
            for k in range(series)
        ]
        flagged += any(v.label == REGRESSION for v in verdicts)
        found += located(verdicts[0], runs_per_commit=runs_per_commit)
        exact += located(verdicts[0], within=0, runs_per_commit=runs_per_commit)
        drift += verdicts[0].drift is not None
        suspicious += verdicts[0].label == "suspicious"
    return Rates(
        scenario,
        sigma,
        histories,
        flagged / histories,
        found / histories,
        drift / histories,
        suspicious / histories,
        exact / histories,
        runs_per_commit,
    )


def ab_gate_spread(
    root: Path, figures: Sequence[tuple[str, str]] = (("C2", "train_s"), ("loader", "epoch_s"))
) -> dict[str, float]:
    """The run-to-run spread of the committed A/A trials (results/ab-gate/gate-aa-*): the standard deviation of
    log(figure) over the runs of one side of one trial, pooled over sides and trials, per `group:figure`."""
    spreads: dict[str, float] = {}
    for group, figure in figures:
        metric = METRICS[figure]
        squares, dof = 0.0, 0
        for trial in sorted(root.glob("gate-aa-*")):
            for side in ("base", "new"):
                logs = []
                for path in sorted(trial.glob(f"storage/*/*_ab-{side}-*.json")):
                    bench = next((b for b in load_run(path).benchmarks if b.group == group), None)
                    value = metric_value(bench, metric, metric.default_stat) if bench else None
                    if value is not None and value.value > 0:
                        logs.append(math.log(value.value))
                if len(logs) >= 2:
                    squares += statistics.variance(logs) * (len(logs) - 1)
                    dof += len(logs) - 1
        if dof:
            spreads[f"{group}:{figure}"] = math.sqrt(squares / dof)
    return spreads
