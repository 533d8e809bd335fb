"""The noise and error rates of `resnet-lab ab`, from the runs of real trials (results/ab-gate/).

    python scripts/ab_trials.py --aa DIR [DIR ...] [--planted DIR ...] [--compute DIR ...] [--wait DIR ...]
                                [--pairs 6] [--draws 20000]

Each DIR is an `ab --out DIR` (runs in DIR/storage, DIR/ab.json with the machine's load per run).
Prints, as markdown:
  1. per trial: each gated figure's paired ratio, interval and verdict (the rule the trial ran with),
     and the load average before the first run and after the last;
  2. the noise: per figure, the spread of the runs of one side (cv) and of the pairs' log ratios (sd),
     and for C2 how the pairs' sd falls with the number of steady epochs averaged per run;
  3. resampled rates: the A/A pairs of all --aa trials pooled; each simulated gate run draws --pairs
     distinct pairs from the pool and applies the rule; false alarm = a run with any figure flagged;
     power = the same with log(1 + effect) added to the C2 train_s log ratios (a slower training step),
     and, for reference, to the loader's;
  4. for trials with a planted slowdown that computes (--compute) or waits (--wait): the paired ratio beside
     the ratio of the two sides' medians (the runs read one after another, unpaired) and the CPU time ratio,
     and the power at +10% resampled from those trials' own pairs, recentred (their estimate taken out,
     log 1.10 put in), so that the noise a waiting or a computing change brings is the noise resampled.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from resnet_lab.results.ab import decide_runs, figure, gated_benchmarks, paired_runs
from resnet_lab.results.paired import GateRule, paired_estimate, resampled_flag_rate

EFFECTS = (0.05, 0.10)


def cv(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.fmean(values) if len(values) > 1 else 0.0


def trial_rows(name: str, out: Path) -> list[str]:
    summary = json.loads((out / "ab.json").read_text())
    config = summary["config"]
    rule = GateRule(tolerance=config["tolerance"], confidence=config["confidence"])
    runs = summary["runs"]
    load = f"{runs[0]['load_before'][0]:.2f} -> {runs[-1]['load_after'][0]:.2f}" if runs[0]["load_before"] else "n/a"
    minutes = summary.get("elapsed_s", sum(r["wall_s"] for r in runs)) / 60  # older summaries: runs one after the other
    design = "side by side" if config.get("side_by_side", True) else "one after the other"
    outcome = decide_runs(paired_runs(out), gated_benchmarks(config["device"]), rule)
    rows = []
    for row in outcome.rows:
        e = row.estimate
        cells = [name, design, f"{len(row.base)} x {config['epochs']} ep", load, f"{minutes:.1f}", row.gated.figure]
        if e is None:
            cells += ["", "", "", "", row.problem]
        else:
            unpaired = statistics.median(row.new) / statistics.median(row.base)
            cpu = f"{row.cpu_estimate.ratio:.3f}" if row.cpu_estimate else "n/r"
            cells += [
                f"{e.ratio:.3f}",
                f"[{e.low:.3f}, {e.high:.3f}]",
                f"{unpaired:.3f}",
                cpu,
                e.verdict + (f", {row.kind}" if row.kind else ""),
            ]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def recentred_power(
    trials: list[Path], figure_index: int, rule: GateRule, pairs: int, draws: int, effect: float = 0.10
) -> tuple[float | None, int, float]:
    """Power at +effect on one figure, resampled from the planted trials' own pairs with each trial's estimate
    taken out, the pool's size, and the sd of its log ratios; power None when the pool has no more pairs than
    a gate run draws (every draw would be the same pairs)."""
    pool = []
    for out in trials:
        logs = log_ratio_pairs(out)
        e = paired_estimate([1.0] * len(logs), [math.exp(p[figure_index]) for p in logs], rule)
        pool += [[p[figure_index] - math.log(e.ratio) + math.log(1 + effect)] for p in logs]
    sd = statistics.stdev(p[0] for p in pool)
    if len(pool) <= pairs:
        return None, len(pool), sd
    return resampled_flag_rate(pool, pairs, rule, draws=draws), len(pool), sd


def log_ratio_pairs(out: Path, steady_epochs: int | None = None) -> list[list[float]]:
    """Per pair: [log ratio of each gated figure]; C2 read from the first `steady_epochs` steady epochs when given."""
    gated = gated_benchmarks(json.loads((out / "ab.json").read_text())["config"]["device"])
    pairs = []
    for base_run, new_run in paired_runs(out):
        logs = []
        for g in gated:
            b = next(x for x in base_run.benchmarks if x.name == g.name)
            n = next(x for x in new_run.benchmarks if x.name == g.name)
            if steady_epochs is not None and g.figure == "train_s":
                old, new = steady_median(b, steady_epochs), steady_median(n, steady_epochs)
            else:
                old, new = figure(b, g.figure), figure(n, g.figure)
            logs.append(math.log(new / old))
        pairs.append(logs)
    return pairs


def steady_median(bench, k: int) -> float:
    steady = [r["train_s"] for r in bench.epochs() if r.get("warmup") is False][:k]
    return statistics.median(steady)


def side_values(out: Path) -> dict[str, dict[str, list[float]]]:
    """figure -> side -> per-run figure, and C2's within-run epoch-to-epoch cv."""
    gated = gated_benchmarks(json.loads((out / "ab.json").read_text())["config"]["device"])
    values: dict[str, dict[str, list[float]]] = {g.figure: {"base": [], "new": [], "within": []} for g in gated}
    for pair in paired_runs(out):
        for side, run in zip(("base", "new"), pair, strict=True):
            for g in gated:
                b = next(x for x in run.benchmarks if x.name == g.name)
                values[g.figure][side].append(figure(b, g.figure))
                if g.figure == "train_s":
                    values[g.figure]["within"].append(
                        cv([r["train_s"] for r in b.epochs() if r.get("warmup") is False])
                    )
    return values


def noise_rows(name: str, out: Path) -> list[str]:
    rows = []
    values = side_values(out)
    logs = log_ratio_pairs(out)
    for k, (fig, v) in enumerate(values.items()):
        sd = statistics.stdev(p[k] for p in logs)
        within = f"{statistics.fmean(v['within']):.1%}" if v["within"] else "(1 round)"
        rows.append(f"| {name} | {fig} | {cv(v['base']):.1%} | {cv(v['new']):.1%} | {within} | {sd:.3f} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--aa", nargs="*", type=Path, default=[], metavar="DIR", help="A/A trials (same code on both sides)"
    )
    parser.add_argument(
        "--planted", nargs="*", type=Path, default=[], metavar="DIR", help="trials with a planted slowdown"
    )
    parser.add_argument(
        "--compute",
        nargs="*",
        type=Path,
        default=[],
        metavar="DIR",
        help="trials with a planted slowdown that computes",
    )
    parser.add_argument(
        "--wait", nargs="*", type=Path, default=[], metavar="DIR", help="trials with a planted slowdown that waits"
    )
    parser.add_argument("--pairs", type=int, nargs="+", default=[6], help="pairs per simulated gate run (one or more)")
    parser.add_argument("--draws", type=int, default=20_000)
    parser.add_argument("--tolerance", type=float, default=GateRule().tolerance)
    parser.add_argument("--confidence", type=float, default=GateRule().confidence)
    args = parser.parse_args(argv)
    rule = GateRule(tolerance=args.tolerance, confidence=args.confidence)

    print("## Trials\n")
    print(
        "| trial | design | pairs x C2 epochs | load avg (1 min) first -> last "
        "run | minutes of runs (wall) | figure | ratio (paired) | "
        "interval | ratio of medians (unpaired) | CPU time ratio | verdict |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for out in [*args.aa, *args.planted, *args.compute, *args.wait]:
        for row in trial_rows(out.name, out):
            print(row)

    if args.aa:  # the noise and the resampled rates need A/A pairs
        print("\n## Noise\n")
        print(
            "| trial | figure | cv of base runs | cv of new runs | within-run cv "
            "(steady epochs) | sd of paired log ratios |"
        )
        print("|---|---|---|---|---|---|")
        for out in args.aa:
            for row in noise_rows(out.name, out):
                print(row)
        steady = min(
            sum(1 for r in paired_runs(out)[0][0].benchmarks[0].epochs() if r.get("warmup") is False) for out in args.aa
        )
        print(
            "\nC2 train_s, sd of the pooled A/A paired log ratios by steady epochs per run: "
            + ", ".join(
                f"{k}: {statistics.stdev(p[0] for out in args.aa for p in log_ratio_pairs(out, k)):.3f}"
                for k in range(1, steady + 1)
            )
        )

        pool = [p for out in args.aa for p in log_ratio_pairs(out)]
        print(
            f"\n## Resampled rates ({len(pool)} pooled A/A pairs, {args.draws} draws without replacement per cell, "
            f"rule: {rule.confidence:.0%} interval, tolerance {rule.tolerance:g})\n"
        )
        print(
            "| pairs | false alarm (any figure) | power, C2 train_s +5% | power, C2 train_s +10% | power, loader +10% |"
        )
        print("|---|---|---|---|---|")
        for n in args.pairs:
            fa = resampled_flag_rate(pool, n, rule, draws=args.draws)
            power = [
                resampled_flag_rate(pool, n, rule, shift=[math.log(1 + e), 0.0], draws=args.draws) for e in EFFECTS
            ]
            loader = resampled_flag_rate(pool, n, rule, shift=[0.0, math.log(1.10)], draws=args.draws)
            print(f"| {n} | {fa:.1%} | {power[0]:.1%} | {power[1]:.1%} | {loader:.1%} |")
    for out in args.planted:
        pairs = log_ratio_pairs(out)
        e = paired_estimate([1.0] * len(pairs), [math.exp(p[0]) for p in pairs], rule)
        print(f"\nplanted trial {out.name}: C2 train_s ratio {e.ratio:.3f} [{e.low:.3f}, {e.high:.3f}] -> {e.verdict}")
    kinds = [
        (kind, trials, k, fig)
        for kind, trials in (("computes", args.compute), ("waits", args.wait))
        if trials
        for k, fig in enumerate(("C2 train_s", "loader round_s"))
    ]
    if kinds:
        print(
            "\n## Power at +10% resampled from the planted trials' own pairs "
            f"(recentred), {args.pairs[-1]} pairs, {args.draws} draws\n"
        )
        print(
            "| planted change | figure | trials | pooled pairs | sd of paired log ratios (recentred) | power at +10% |"
        )
        print("|---|---|---|---|---|---|")
        for kind, trials, k, fig in kinds:
            power, n, sd = recentred_power(trials, k, rule, args.pairs[-1], args.draws)
            shown = f"{power:.1%}" if power is not None else f"n/a: {n} pairs pooled, a gate run draws {args.pairs[-1]}"
            print(f"| {kind} | {fig} | {', '.join(t.name for t in trials)} | {n} | {sd:.3f} | {shown} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
