"""The regression gate's decision, from the runs `resnet-lab ab` saved (no torch, nothing run here).

The gated figures, how each is read from a saved pytest-benchmark run, and the per-figure verdict on
the pairs' ratios (the statistics are in results/paired.py). The runs themselves are made by
suite/ab_runs.py; the command is cli/ab.py.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import LabError
from .compare import format_table, version_difference
from .cputime import change_kind, cpu_key
from .loading import load_run
from .paired import FASTER, SLOWER, GateRule, PairedEstimate, min_pairs, paired_estimate
from .runs import Bench, Run

BASE, NEW = "base", "new"
# Found by `resnet-lab ab` in its own output: CI skips the gate, with this reason, when a base predates the benchmarks.
NO_GATED = "has none of the gated benchmarks"
RUN_NAME = re.compile(r"^\d+_ab-(base|new)-(\d+)\.json$")


@dataclass(frozen=True)
class Gated:
    """One gated figure: a benchmark by its pytest node id (relative to a checkout) and what is read from it."""

    test_id: str
    figure: str  # "train_s": median over the steady (non-warm-up) epochs; "round_s": median of the benchmark's rounds

    @property
    def name(self) -> str:
        return self.test_id.rpartition("::")[2]

    @property
    def cpu_figure(self) -> str:
        """The CPU seconds recorded beside the figure (CPU runs since issue 23): read, not gated, to tell waiting from
        computing."""
        return cpu_key(self.figure)


def gated_benchmarks(device: str) -> tuple[Gated, ...]:
    """The cheapest benchmarks that still represent training and loading: C2's training step, and one epoch of
    the lab's PIL loader in the main process (no worker start-up, which on 2 cores is mostly scheduling)."""
    return (
        Gated(f"benchmarks/test_c2_phases.py::test_c2_phases[device={device}]", "train_s"),
        Gated("benchmarks/test_loader.py::test_loader_throughput[pipeline=dataloader-workers=0-device=cpu]", "round_s"),
    )


def run_name(side: str, pair: int) -> str:
    return f"ab-{side}-{pair:02d}"


# ---------------------------------------------------------------------------
# reading the runs and deciding
# ---------------------------------------------------------------------------


def saved_runs(out: Path) -> dict[tuple[str, int], Path]:
    """(side, pair) -> the saved pytest-benchmark run in `out`/storage."""
    found: dict[tuple[str, int], Path] = {}
    for path in sorted((out / "storage").glob("*/*.json")):
        match = RUN_NAME.match(path.name)
        if match:
            found[(match.group(1), int(match.group(2)))] = path
    return found


def paired_runs(out: Path) -> list[tuple[Run, Run]]:
    """(base run, new run) per pair, in pair order; a pair short of a side is an error that names it."""
    found = saved_runs(out)
    pairs = sorted({pair for _, pair in found})
    if not pairs:
        raise LabError(
            f"no paired runs in '{out}' (looked for {out / 'storage'}/*/NNNN_ab-base-NN.json and ab-new-NN.json)"
        )
    missing = [
        f"{run_name(side, pair)}" for pair in range(max(pairs) + 1) for side in (BASE, NEW) if (side, pair) not in found
    ]
    if missing:
        raise LabError(f"'{out}' is missing the runs {', '.join(missing)}: every pair needs a base and a new run")
    return [(load_run(found[(BASE, p)]), load_run(found[(NEW, p)])) for p in pairs]


def figure(bench: Bench, name: str) -> float | str:
    """The gated figure of one run's benchmark, or why there is none ('not recorded', 'non-finite (nan)')."""
    if name == "round_s":
        raw = bench.stats.get("data") or [bench.stats[key] for key in ("median",) if key in bench.stats]
    elif name == "round_cpu_s":  # the median round's CPU seconds, recorded by the benchmark as a whole
        raw = [bench.extra(name)] if bench.extra(name) is not None else []
    else:
        records = bench.epochs()
        steady = [r for r in records if r.get("warmup") is False] or records[1:] or records
        raw = [r[name] for r in steady if name in r]
    if not raw:
        return "not recorded"
    for v in raw:
        if isinstance(v, float) and not math.isfinite(v):
            return f"non-finite ({v})"
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            return f"not a positive number ({v!r})"
    return float(statistics.median(raw))


@dataclass(frozen=True)
class Row:
    gated: Gated
    label: str
    base: list[float]
    new: list[float]
    estimate: PairedEstimate | None
    problem: str = ""  # why the figure cannot be decided; a problem on the new side fails the gate
    fails: bool = False
    # The CPU seconds beside the figure, per pair, and their paired ratio: None where a run lacks them (older runs).
    cpu_base: list[float] = field(default_factory=list)
    cpu_new: list[float] = field(default_factory=list)
    cpu_estimate: PairedEstimate | None = None

    @property
    def kind(self) -> str:
        """Whether a slowdown computes more or waits more ('' when not slower or no CPU figure)."""
        if self.estimate is None or self.cpu_estimate is None:
            return ""
        return change_kind(self.estimate.ratio, self.cpu_estimate.ratio)

    def as_record(self) -> dict[str, object]:
        return {
            "benchmark": self.gated.test_id,
            "figure": self.gated.figure,
            "base": self.base,
            "new": self.new,
            "estimate": asdict(self.estimate) if self.estimate else None,
            "problem": self.problem,
            "fails": self.fails,
            "cpu_figure": self.gated.cpu_figure,
            "cpu_base": self.cpu_base,
            "cpu_new": self.cpu_new,
            "cpu_estimate": asdict(self.cpu_estimate) if self.cpu_estimate else None,
            "kind": self.kind,
        }


def benches_by_name(run: Run, name: str) -> list[Bench]:
    """The run's benchmarks named `name`: one, or one per seed where the run was made with --lab-seeds."""
    return [b for b in run.benchmarks if b.configuration == name]


def run_figure(benches: Sequence[Bench], name: str) -> float | str:
    """The gated figure of one run: the benchmark's, or the median over its seeds (the seed does not change
    what a step costs, so each seed is one more sample of the same time); a problem with any seed is the run's."""
    values = [figure(b, name) for b in benches]
    problem = next((v for v in values if isinstance(v, str)), None)
    return problem if problem is not None else float(statistics.median(values))  # type: ignore[type-var]  # no str left once problem is None


def decide(gated: Gated, runs: Sequence[tuple[Run, Run]], rule: GateRule) -> Row:
    base_values, new_values, label = [], [], gated.name
    for pair, (base_run, new_run) in enumerate(runs):
        base_benches, new_benches = benches_by_name(base_run, gated.name), benches_by_name(new_run, gated.name)
        if not base_benches or not new_benches:
            side = NEW if base_benches else BASE
            return Row(
                gated, label, [], [], None, f"benchmark missing from the {side} run of pair {pair}", fails=side == NEW
            )
        group = new_benches[0].group
        label = f"{group} {gated.name}" if group else gated.name
        old, new = run_figure(base_benches, gated.figure), run_figure(new_benches, gated.figure)
        if isinstance(old, str):
            return Row(gated, label, [], [], None, f"{old} in the base run of pair {pair}: not gated")
        if isinstance(new, str):
            return Row(gated, label, [], [], None, f"{gated.figure} {new} in the new run of pair {pair}", fails=True)
        base_values.append(old)
        new_values.append(new)
    estimate = paired_estimate(base_values, new_values, rule)
    cpu_base, cpu_new, cpu_estimate = cpu_figures(gated, runs, rule)
    return Row(
        gated,
        label,
        base_values,
        new_values,
        estimate,
        fails=estimate.verdict == SLOWER,
        cpu_base=cpu_base,
        cpu_new=cpu_new,
        cpu_estimate=cpu_estimate,
    )


def cpu_figures(
    gated: Gated, runs: Sequence[tuple[Run, Run]], rule: GateRule
) -> tuple[list[float], list[float], PairedEstimate | None]:
    """The CPU seconds beside the gated figure in every run, and their paired estimate; nothing when any run lacks
    them."""
    base, new = [], []
    for base_run, new_run in runs:
        old, now = (run_figure(benches_by_name(r, gated.name), gated.cpu_figure) for r in (base_run, new_run))
        if isinstance(old, str) or isinstance(now, str):
            return [], [], None
        base.append(old)
        new.append(now)
    return base, new, paired_estimate(base, new, rule)


def common_benchmarks(runs: Sequence[tuple[Run, Run]]) -> tuple[list[str], list[str]]:
    """Benchmarks in the base runs only, and in the new runs only."""
    base = {b.configuration for pair in runs for b in pair[0].benchmarks}
    new = {b.configuration for pair in runs for b in pair[1].benchmarks}
    return sorted(base - new), sorted(new - base)


# ---------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------


def verdict_text(row: Row, rule: GateRule) -> str:
    if row.estimate is None:
        return f"FAIL: {row.problem}" if row.fails else row.problem
    if row.estimate.verdict == SLOWER:
        return f"FAIL: slower by more than {rule.tolerance:.0%}" + (f", {row.kind}" if row.kind else "")
    if row.estimate.verdict == FASTER:
        return "faster (passes)"
    if row.estimate.high > 1 + 2 * rule.tolerance:
        return f"same, but noisy: a {2 * rule.tolerance:.0%} slowdown could have passed unseen"
    return "same (within noise or tolerance)"


def table(rows: Sequence[Row], rule: GateRule) -> str:
    header = [
        "benchmark",
        "figure",
        "pairs",
        "base median",
        "new median",
        "ratio",
        f"{rule.confidence:.0%} interval",
        "CPU time ratio",
        "verdict",
    ]
    lines = []
    for row in rows:
        e = row.estimate
        cells = [row.label, row.gated.figure, str(len(row.base))]
        verdict = verdict_text(row, rule)
        if e is None:
            cells += ["", "", "", "", ""]
        else:
            cpu = f"{row.cpu_estimate.ratio:.3f}x" if row.cpu_estimate else "not recorded"
            cells += [
                f"{statistics.median(row.base):.4g} s",
                f"{statistics.median(row.new):.4g} s",
                f"{e.ratio:.3f}x",
                f"[{e.low:.3f}, {e.high:.3f}]",
                cpu,
            ]
            if row.kind and e.verdict != SLOWER:  # a failure's verdict names it already
                verdict += f"; {row.kind}"
        lines.append([*cells, verdict])
    return format_table(header, lines)


@dataclass(frozen=True)
class Outcome:
    text: str
    warnings: list[str]
    rows: list[Row]
    listed: list[str] = field(default_factory=list)
    run_failure: str = ""  # a new-side run that did not finish: the gate fails without deciding

    @property
    def failed(self) -> list[str]:
        """What fails the gate, one phrase each."""
        return [self.run_failure] * bool(self.run_failure) + [
            f"{r.label} {r.gated.figure}" for r in self.rows if r.fails
        ]


def decide_runs(runs: Sequence[tuple[Run, Run]], gated: Sequence[Gated], rule: GateRule, heading: str = "") -> Outcome:
    if len(runs) < min_pairs(rule.confidence):
        raise LabError(
            f"{len(runs)} pairs cannot give a {rule.confidence:.0%} interval; at "
            f"least {min_pairs(rule.confidence)} are needed"
        )
    warnings = []
    versions = version_difference(runs[0][0], runs[0][1])
    if versions:
        warnings.append(f"the sides ran different library versions ({versions}); the ratios include that difference")
    base_names = {b.name for pair in runs for b in pair[0].benchmarks}
    new_names = {b.name for pair in runs for b in pair[1].benchmarks}
    present = [g for g in gated if g.name in base_names and g.name in new_names]
    if not present:
        raise LabError(f"the runs have no gated benchmark in common ({', '.join(g.name for g in gated)})")
    rows = [decide(g, runs, rule) for g in present]
    only_base, only_new = common_benchmarks(runs)
    out = [heading] if heading else []
    out.append(table(rows, rule))
    listed = [f"only in the base runs ({len(only_base)}): {', '.join(only_base)}"] * bool(only_base)
    listed += [f"only in the new runs ({len(only_new)}): {', '.join(only_new)}"] * bool(only_new)
    out += listed
    out.append(
        f"rule: fails when the {rule.confidence:.0%} interval of new/base lies above 1 and the ratio (Hodges-Lehmann "
        f"over {len(runs)} pairs) exceeds 1 + {rule.tolerance:g}"
    )
    return Outcome("\n".join(out), warnings, rows, listed)
