"""Change points in one series of runs, their significance, and the series' label (no plotting, no files).

Where a change may start: only where the commit changes. A change in code starts at a commit, so the runs of
one commit form one block that a change point never splits; with several runs per commit, a block's runs are
its noise. (A dirty run is its own block: its tree is not its commit's.)

Locating: ruptures' binary segmentation (`Binseg`, least squares, at least MIN_RUNS runs per segment) on the
series in its comparison scale (log for figures judged by ratio, so a shift is a ratio; raw points for
top-1), with ruptures' `CostL2` made infinite on any segment that would split a commit (`CommitCostL2`), so
the search only ever proposes commit boundaries. Why ruptures: maintained, needs only numpy and scipy, and its
binary segmentation is the search E-divisive (Apache Otava, the reference) uses. Otava itself pins numpy 2.2
and pulls in BigQuery, Slack and Postgres clients, and its E-divisive statistic needs more runs per segment
than a CI history has at first.

Significance, as E-divisive does it: each split ruptures proposes, in the order it proposes them, is kept only
when its gain (the drop in the segment's squared error) beats the largest gain of the same search, over the
same commit boundaries, on PERMUTATIONS random orders of that segment's runs. Comparing with the *best*
admissible split of each permutation pays for the search over positions; permuting runs (the null: no commit
in the segment changed anything, every run is noise) keeps whatever the runs' noise looks like (heavy tails,
an outlier) in the null, so no noise model is assumed. With one run per commit every position is a boundary
and this is the plain test. The search stops at the first split that is not significant.

The label (modelled on PyTorch's benchmark dashboard) is about the newest run: does it sit in a segment that
differs from the one before it, significantly and by more than the figure's tolerance?
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import ruptures

MIN_RUNS = 3  # runs on either side of a change; fewer: "insufficient data"
PERMUTATIONS = 999  # p-values down to 1/1000
OUTLIER_Z = 3.0  # a newest run this many robust sigmas (1.4826 x MAD) off its segment is "suspicious"
DRIFT_ALPHA = 0.01  # a trend within segments this significant makes the changes a drift
SEED = 20  # the permutations are drawn from a fixed seed: the same history gives the same answer

REGRESSION, IMPROVEMENT, SUSPICIOUS, NO_CHANGE, INSUFFICIENT = (
    "regression",
    "improvement",
    "suspicious",
    "no change",
    "insufficient data",
)
LABELS = (REGRESSION, IMPROVEMENT, SUSPICIOUS, NO_CHANGE, INSUFFICIENT)


@dataclass(frozen=True)
class Rule:
    """How one figure is judged: its scale, its bad direction and its tolerance."""

    worse: int  # +1: larger is worse (times, loss); -1: smaller is worse (top-1)
    log_scale: bool  # True: shifts are ratios (timings, loss); False: differences (top-1 in points)
    tolerance: float  # a change must exceed this: a fraction when log_scale, else units (points)
    min_delta: float = 0.0  # ... and this absolute amount (seconds for timings: below it, timer noise)

    def transform(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        data = np.asarray(values, dtype=float)
        return np.log(data) if self.log_scale else data

    def change(self, before: float, after: float) -> float:
        """after relative to before: a ratio - 1 (log scale) or a difference."""
        return after / before - 1.0 if self.log_scale else after - before

    def beyond(self, before: float, after: float) -> int:
        """+1 worse beyond tolerance, -1 better beyond it, 0 within it."""
        change = self.change(before, after)
        if abs(after - before) <= self.min_delta or abs(change) <= self.tolerance:
            return 0
        return 1 if self.worse * change > 0 else -1


@dataclass(frozen=True)
class Change:
    """A change point: the run `index` (0-based) is the first of the new segment."""

    index: int
    p_value: float
    before: float  # median of the segment before (figure units)
    after: float  # median of the segment from `index` on
    rule: Rule

    @property
    def ratio(self) -> float:
        return self.after / self.before if self.before else math.inf

    @property
    def direction(self) -> int:
        """+1 worse, -1 better, 0 within tolerance."""
        return self.rule.beyond(self.before, self.after)


@dataclass(frozen=True)
class Verdict:
    label: str
    changes: tuple[Change, ...] = ()
    drift: float | None = (
        None  # the fitted change over the series (ratio - 1 or units) when a line fits better than steps
    )
    outlier: bool = False  # the newest run is far off its segment
    why: str = ""
    gate: bool = False  # the newest segment is a significant regression beyond tolerance
    segments: tuple[tuple[int, int], ...] = field(default=())


# ---------------------------------------------------------------------------
# the statistic and its permutation null
# ---------------------------------------------------------------------------


def split_gains(x: np.ndarray, min_size: int = MIN_RUNS) -> np.ndarray:
    """For rows of `x` (k x m), the l2 gain of splitting each row at t = min_size .. m - min_size:
    t (m - t) / m x (mean left - mean right)^2, i.e. ruptures' CostL2 error of the whole minus both parts."""
    m = x.shape[-1]
    t = np.arange(min_size, m - min_size + 1)
    csum = np.cumsum(x, axis=-1)
    left = csum[..., t - 1] / t
    right = (csum[..., -1:] - csum[..., t - 1]) / (m - t)
    return t * (m - t) / m * (left - right) ** 2


def boundaries(blocks: Sequence[object] | None, n: int) -> np.ndarray:
    """The indexes where a new block (commit) starts, 0 and n included; every index when `blocks` is None
    (one run per commit). A block is a maximal stretch of consecutive runs with the same key."""
    if blocks is None:
        return np.arange(n + 1)
    if len(blocks) != n:
        raise ValueError(f"{len(blocks)} block keys for {n} runs")
    return np.array([0, *(i for i in range(1, n) if blocks[i] != blocks[i - 1]), n])


def admissible(starts: np.ndarray, a: int, b: int, min_size: int = MIN_RUNS) -> np.ndarray:
    """The split points t of the segment [a, b) that are block starts with `min_size` runs on either side."""
    return starts[(starts >= a + min_size) & (starts <= b - min_size)]


def judgeable(starts: np.ndarray) -> bool:
    """Whether some commit boundary has MIN_RUNS runs on either side (`starts`: from `boundaries`)."""
    return admissible(starts, 0, int(starts[-1])).size > 0


def split_p_value(
    segment: np.ndarray,
    gain: float,
    rng: np.random.Generator,
    permutations: int = PERMUTATIONS,
    cuts: np.ndarray | None = None,
) -> float:
    """P(best admissible split gain of a random order of the runs >= `gain`), counting the observed order (so
    never 0). `cuts`: the admissible split points, relative to the segment's start (default: all of them)."""
    shuffled = rng.permuted(np.broadcast_to(segment, (permutations, segment.size)), axis=1)
    gains = split_gains(shuffled)
    if cuts is not None:
        gains = gains[:, np.asarray(cuts) - MIN_RUNS]
    best = gains.max(axis=1)
    return float((1 + np.count_nonzero(best >= gain * (1 - 1e-9))) / (permutations + 1))


def commit_cost(starts: np.ndarray) -> ruptures.costs.CostL2:
    """ruptures' CostL2, infinite on a segment that does not start and end at a block boundary: Binseg's gain
    for a split inside a commit is then -inf, so its search proposes commit boundaries only."""
    import ruptures  # local: only `history` needs it

    allowed = frozenset(int(t) for t in starts)

    class CommitCostL2(ruptures.costs.CostL2):
        model = "l2-commits"

        def error(self, start: int, end: int) -> float:
            return super().error(start, end) if start in allowed and end in allowed else math.inf

    return CommitCostL2()


def locate(
    z: np.ndarray, alpha: float, *, blocks: Sequence[object] | None = None, permutations: int = PERMUTATIONS
) -> list[tuple[int, float]]:
    """(index, p-value) of the significant change points of `z`, in time order; with `blocks` (a key per run,
    e.g. its commit), only at the first run of a block."""
    import ruptures  # local: only `history` needs it

    n = z.size
    starts = boundaries(blocks, n)
    if n < 2 * MIN_RUNS or admissible(starts, 0, n).size == 0:
        return []
    rng = np.random.default_rng(SEED)
    algo = ruptures.Binseg(custom_cost=commit_cost(starts), min_size=MIN_RUNS, jump=1).fit(z)
    found: list[tuple[int, float]] = []
    bounds = [0, n]
    for k in range(1, n // MIN_RUNS):
        try:
            bkps = algo.predict(n_bkps=k)[:-1]
        except ruptures.exceptions.BadSegmentationParameters:
            break
        new = sorted(set(bkps) - set(bounds))
        if len(new) != 1:  # greedy segmentation adds one break per step; anything else: stop rather than guess
            break
        t = new[0]
        a = max(b for b in bounds if b < t)
        b = min(b for b in bounds if b > t)
        cuts = admissible(starts, a, b)
        if t not in cuts:  # no admissible split left anywhere: ruptures fell back on a -inf gain
            break
        segment = z[a:b]
        gain = float(split_gains(segment[None, :])[0, t - a - MIN_RUNS])
        p = split_p_value(segment, gain, rng, permutations, cuts - a)
        if p > alpha:
            break
        found.append((t, p))
        bounds = sorted([*bounds, t])
    return sorted(found)


# ---------------------------------------------------------------------------
# steps against a drift, the newest run, the label
# ---------------------------------------------------------------------------


def commit_ordinals(starts: np.ndarray, n: int) -> np.ndarray:
    """Each run's commit number (0, 0, 0, 1, 1, ...) from where each commit's runs begin."""
    return (np.searchsorted(starts, np.arange(n), side="right") - 1).astype(float)


def drift_total(z: np.ndarray, starts: np.ndarray) -> tuple[float, int]:
    """(the least-squares line's change from the first commit to the last, in z units; the number of commits)."""
    x = commit_ordinals(starts, z.size)
    slope = float(np.polyfit(x, z, 1)[0])
    return slope * x[-1], int(x[-1]) + 1


def is_drift(z: np.ndarray, cuts: Sequence[int], alpha: float, starts: np.ndarray | None = None) -> bool:
    """Whether the changes at `cuts` are a gradual drift rather than steps, from least squares with a straight
    line over the commits and a step at each cut: a drift when the line leaves the steps insignificant
    (F test, at `alpha`), or when the line is needed on top of the steps (its slope's t test, at DRIFT_ALPHA):
    a step leaves each segment flat, a drift found as a staircase leaves each step sloped.

    The line runs over commits (`starts`: where each commit's runs begin; None: one run per commit), since
    code stays the same over the runs of one commit. Only when the commits leave both models MIN_RUNS degrees
    of freedom beyond the two of them: with fewer commits (4 commits, 3 runs each: one degree), a line and a
    step fit the commits' levels alike and a drift cannot be told from a step, so a significant change is
    reported as the step the search found."""
    from scipy import stats  # type: ignore[import-untyped]  # local: only `history` needs it

    n, k = z.size, len(cuts)
    starts = np.arange(n + 1) if starts is None else np.asarray(starts)
    if starts.size - 1 < 2 + k + MIN_RUNS:
        return False
    x = commit_ordinals(starts, n)
    runs = np.arange(n)
    line = np.column_stack([np.ones(n), x])
    steps = np.column_stack([np.ones(n), *((runs >= t).astype(float) for t in cuts)])
    full = np.column_stack([line, steps[:, 1:]])
    dof = n - full.shape[1]
    fit = np.linalg.lstsq(full, z, rcond=None)[0]
    sse = {
        name: float(((z - d @ np.linalg.lstsq(d, z, rcond=None)[0]) ** 2).sum())
        for name, d in (("line", line), ("steps", steps))
    }
    sse_full = float(((z - full @ fit) ** 2).sum())
    if dof <= 0 or sse_full <= 1e-12 * max(1.0, sse["line"], sse["steps"]):
        return (
            sse["steps"] > sse_full
        )  # exact fits (identical runs, seeded quality): a drift only if steps leave a trend
    scale = sse_full / dof
    p_steps = float(stats.f.sf(((sse["line"] - sse_full) / k) / scale, k, dof))
    p_slope = float(stats.f.sf((sse["steps"] - sse_full) / scale, 1, dof))
    return p_steps > alpha or p_slope <= DRIFT_ALPHA


def newest_is_outlier(values: np.ndarray, start: int, rule: Rule) -> bool:
    """The newest run is worse than the rest of its segment beyond tolerance and OUTLIER_Z robust sigmas."""
    rest = values[start:-1]
    if rest.size < 2:
        return False
    reference = float(np.median(rest))
    if rule.beyond(reference, float(values[-1])) != 1:
        return False
    z = rule.transform(rest)
    sigma = 1.4826 * float(np.median(np.abs(z - np.median(z))))
    gap = abs(float(rule.transform([values[-1]])[0]) - float(np.median(z)))
    return gap > OUTLIER_Z * sigma


def judge(
    values: Sequence[float] | np.ndarray,
    rule: Rule,
    alpha: float,
    *,
    blocks: Sequence[object] | None = None,
    permutations: int = PERMUTATIONS,
) -> Verdict:
    """The series' change points and label. `alpha`: the false-alarm rate allowed to this one series
    (the caller divides the run's rate among its series). `blocks`: a key per run (its commit); a change
    starts only where the key changes. None: one run per commit."""
    data = np.asarray(values, dtype=float)
    n = data.size
    starts = boundaries(blocks, n)
    if not judgeable(starts):
        of_commits = "" if blocks is None else f" of {starts.size - 1} commit{'s' if starts.size > 2 else ''}"
        return Verdict(
            INSUFFICIENT,
            why=f"{n} runs{of_commits}; a change needs {MIN_RUNS} runs on either side of a commit",
            segments=((0, n),),
        )
    z = rule.transform(data)
    found = locate(z, alpha, blocks=blocks, permutations=permutations)
    cuts = [t for t, _ in found]
    edges = [0, *cuts, n]
    segments = tuple(pairwise(edges))
    medians = [float(np.median(data[a:b])) for a, b in segments]
    changes = tuple(Change(t, p, medians[i], medians[i + 1], rule) for i, (t, p) in enumerate(found))
    last_start = segments[-1][0]
    outlier = newest_is_outlier(data, last_start, rule)
    if changes and is_drift(z, cuts, alpha, starts):
        rise, commits = drift_total(z, starts)
        total = math.expm1(rise) if rule.log_scale else rise
        start = float(np.median(data[: segments[0][1]]))
        end = start * (1 + total) if rule.log_scale else start + total
        worse = rule.beyond(start, end) == 1  # a drift for the worse beyond tolerance over the whole series
        return Verdict(
            SUSPICIOUS if worse else NO_CHANGE,
            changes,
            drift=total,
            outlier=outlier,
            segments=segments,
            why=f"a gradual drift ({_fmt_change(rule, total)} over {n} runs"
            + (f" of {commits} commits" if commits != n else "")
            + "), not a step at one commit",
        )
    if changes and changes[-1].direction == 1:
        return Verdict(
            REGRESSION,
            changes,
            outlier=outlier,
            gate=True,
            segments=segments,
            why=f"the newest {n - last_start} runs are "
            f"{_fmt_change(rule, rule.change(changes[-1].before, changes[-1].after))} "
            ""
            f"against the {changes[-1].index - segments[-2][0]} before (p = {changes[-1].p_value:.3g})",
        )
    if changes and changes[-1].direction == -1:
        return Verdict(
            IMPROVEMENT,
            changes,
            outlier=outlier,
            segments=segments,
            why=f"the newest {n - last_start} runs are "
            f"{_fmt_change(rule, rule.change(changes[-1].before, changes[-1].after))} "
            ""
            f"against the {changes[-1].index - segments[-2][0]} before (p = {changes[-1].p_value:.3g})",
        )
    if outlier:
        return Verdict(
            SUSPICIOUS,
            changes,
            outlier=True,
            segments=segments,
            why="the newest run is far off its segment; more runs will tell a step from an outlier",
        )
    why = "no significant change" if not changes else "the newest segment is within tolerance of the one before it"
    return Verdict(NO_CHANGE, changes, segments=segments, why=why)


def _fmt_change(rule: Rule, change: float) -> str:
    return f"{change:+.1%}" if rule.log_scale else f"{change:+.2f} pt"
