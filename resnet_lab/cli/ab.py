"""`resnet-lab ab [--base REF]`: the regression gate (runs: suite/ab_runs.py; decision: results/ab.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..argtypes import device, fraction, input_path, number, output_dir, positive_int, text
from ..errors import LabError
from ..fileio import write_json
from ..results.ab import decide_runs, gated_benchmarks, paired_runs
from ..results.paired import GateRule, min_pairs
from ..suite.ab_runs import AbConfig, BaseLacksGated, run_ab, summary_record

# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


SKIP_BASE_LACKS_GATED = "base-lacks-gated-benchmarks"
MINUTES_IN_A_WEEK = 7 * 24 * 60  # a longer box is no box a CI job could use


def configure(parser: argparse.ArgumentParser) -> None:
    defaults = AbConfig()
    parser.add_argument(
        "--base",
        type=text("--base"),
        default=defaults.base_ref,
        metavar="REF",
        help=f"the commit to compare against. Default: {defaults.base_ref}",
    )
    parser.add_argument(
        "--pairs",
        type=positive_int,
        default=defaults.pairs,
        metavar="N",
        help="base/new run pairs, in ABBA order (at least "
        f"{min_pairs(defaults.rule.confidence)}). Default: {defaults.pairs}",
    )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=defaults.epochs,
        metavar="N",
        help=f"C2 epochs per run; the first is warm-up, not gated. Default: {defaults.epochs}",
    )
    parser.add_argument(
        "--batches",
        type=positive_int,
        default=defaults.batches,
        metavar="N",
        help=f"C2 batches per epoch. Default: {defaults.batches}",
    )
    parser.add_argument(
        "--device",
        type=device,
        default=defaults.device,
        metavar="DEV",
        help=f"the training device of the gated C2 run. Default: {defaults.device}",
    )
    parser.add_argument(
        "--side-by-side",
        action=argparse.BooleanOptionalAction,
        default=defaults.side_by_side,
        help="run the two runs of a pair at the same time (one per core) instead of one after the other: biased, "
        "it reads a slowdown that waits as a fraction of its size "
        f"(results/ab-gate/). Default: {defaults.side_by_side}",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=defaults.threads,
        metavar="N",
        help="torch threads per run (OMP_NUM_THREADS). Default: half the CPUs side by side, else torch's default",
    )
    parser.add_argument(
        "--time-box",
        type=number(0.0, MINUTES_IN_A_WEEK),
        default=(defaults.time_box_s or 0) / 60,
        metavar="MINUTES",
        help=f"start no pair that would end past this many minutes once {defaults.boxed_pairs} pairs are done; "
        f"0 = no box. Default: {(defaults.time_box_s or 0) / 60:g}",
    )
    parser.add_argument(
        "--tolerance",
        type=fraction,
        default=defaults.rule.tolerance,
        metavar="F",
        help="a slowdown must exceed this fraction (and the interval must exclude "
        f"1) to fail. Default: {defaults.rule.tolerance:g}",
    )
    parser.add_argument(
        "--confidence",
        type=fraction,
        default=defaults.rule.confidence,
        metavar="F",
        help=f"two-sided confidence of the paired interval. Default: {defaults.rule.confidence:g}",
    )
    parser.add_argument(
        "--out",
        type=output_dir,
        default=None,
        metavar="DIR",  # None: out/ab, unless --from (which writes nothing)
        help="where the runs (pytest-benchmark storage), logs and ab.json go; must "
        f"not hold earlier runs. Default: {defaults.out}",
    )
    parser.add_argument(
        "--from",
        dest="from_dir",
        type=input_path,
        default=None,
        metavar="DIR",
        help="decide again on the runs an earlier `resnet-lab ab --out DIR` saved, without running anything",
    )


def main(args: argparse.Namespace) -> int:
    rule = GateRule(tolerance=args.tolerance, confidence=args.confidence)
    if args.pairs < min_pairs(rule.confidence):
        raise LabError(
            f"--pairs {args.pairs} cannot give a {rule.confidence:.0%} interval; "
            f"pass at least {min_pairs(rule.confidence)}"
        )
    config = AbConfig(
        base_ref=args.base,
        pairs=args.pairs,
        epochs=args.epochs,
        batches=args.batches,
        device=args.device,
        out=Path(args.out) if args.out is not None else AbConfig().out,
        rule=rule,
        side_by_side=args.side_by_side,
        threads=args.threads,
        time_box_s=args.time_box * 60 or None,
    )
    if args.from_dir is not None:
        outcome = decide_runs(
            paired_runs(Path(args.from_dir)),
            gated_benchmarks(config.device),
            rule,
            f"paired A/B from the runs in {args.from_dir}",
        )
    else:
        try:
            outcome, session = run_ab(config)
        except BaseLacksGated as exc:
            # The one reason the gate may be skipped, recorded as data for CI (.ci/ab reads `skipped`), not as text.
            write_json(
                config.out / "ab.json", {"skipped": SKIP_BASE_LACKS_GATED, "base": config.base_ref, "wanted": exc.ids}
            )
            raise
        write_json(config.out / "ab.json", summary_record(config, outcome, session))
    for warning in outcome.warnings:
        print(f"resnet-lab ab: warning: {warning}", file=sys.stderr)
    print(outcome.text)
    if outcome.failed:
        print(f"\nresult: FAIL ({'; '.join(outcome.failed)})")
        return 1
    print(f"\nresult: ok ({sum(r.estimate is not None for r in outcome.rows)} figures gated)")
    return 0
