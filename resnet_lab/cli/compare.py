"""`resnet-lab compare BASE NEW`: the command around `results/compare.py` (which holds the rule).

Exit status: 0 every threshold holds, 1 a threshold is broken, 2 usage error or unreadable input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..argtypes import Spec, declares, input_path, non_negative_float, text
from ..results.compare import CI_THRESHOLDS, MIN_DELTA_S, NOISE_K, compare_runs, parse_threshold
from ..results.loading import DEFAULT_STORAGE, load_runs

HELP_EPILOG = f"""\
thresholds:
  --fail METRIC[:STAT]:[+|-]AMOUNT[%]   (repeatable)
    METRIC   timing: epoch_s (pytest-benchmark's stats over rounds = epochs),
             startup_s, load_s, copy_s, train_s, metrics_s, shutdown_s (over the per-epoch
             records; startup_s and shutdown_s are absent from runs made before they were recorded);
             quality: loss, top1, test_loss, test_top1
    STAT     min, max, mean, median (timing default: median); quality default: last (the last epoch)
    AMOUNT   N% relative to BASE, or N in the metric's unit: seconds, loss, or
             percentage points for top1 (top1:-2 = fails when top-1 drops by more than 2 points)
    sign     + (an increase is bad) or - (a decrease is bad); default: the metric's bad direction
  With no --fail, the CI thresholds apply: {" ".join(CI_THRESHOLDS)}

noise-aware timing rule:
  a timing threshold is violated only when the change in the bad direction is
    (1) beyond the threshold (e.g. +15% of BASE's median), and
    (2) beyond --noise-k x the larger of the two runs' interquartile range over
        their steady rounds (each run's own epoch-to-epoch spread with the warm-up
        epoch left out, as pytest-benchmark computes IQR; with 2 it is max - min), and
    (3) more than --min-delta seconds.
  The figure itself is over all rounds (the lab's average includes epoch 1). Where
  neither run has 2 steady rounds (a smoke run's 2 epochs, single-round probes)
  there is no spread: (2) is dropped and the threshold and --min-delta decide.
  Quality thresholds are plain differences (training is seeded).

machines:
  when BASE and NEW come from different machines (CPU model, CPU count or GPU
  differ in machine_info), compare warns and does not enforce timing
  thresholds unless --cross-machine is given; quality thresholds still apply,
  except to reduced-precision (bf16/fp16) training, whose rounding differs by machine.

missing figures:
  a figure BASE has that NEW lacks, or records as NaN/inf in any epoch, violates
  its threshold (on any machine); runs with different torch/CUDA/cuDNN versions are warned.

exit status: 0 all thresholds hold; 1 a threshold is violated;
  2 usage error, unreadable or non-pytest-benchmark file, or no benchmark in common.
"""


threshold = declares(Spec("parsed"))(parse_threshold)  # its grammar is results/metrics.py's


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = HELP_EPILOG
    parser.add_argument(
        "base",
        type=input_path,
        metavar="BASE",
        help="reference run: a pytest-benchmark JSON file or a storage id (0001)",
    )
    parser.add_argument(
        "new", type=input_path, metavar="NEW", help="run to check: a pytest-benchmark JSON file or a storage id (0002)"
    )
    parser.add_argument(
        "--fail",
        action="append",
        type=threshold,
        default=None,
        metavar="EXPR",
        help="threshold METRIC[:STAT]:[+|-]AMOUNT[%%], repeatable (see below). Default: the CI thresholds",
    )
    parser.add_argument(
        "--noise-k",
        type=non_negative_float,
        default=NOISE_K,
        metavar="K",
        help=f"timing changes must exceed K x the runs' larger IQR over steady rounds. Default: {NOISE_K:g}",
    )
    parser.add_argument(
        "--min-delta",
        type=non_negative_float,
        default=MIN_DELTA_S,
        metavar="SECONDS",
        help=f"timing changes smaller than this are never regressions. Default: {MIN_DELTA_S:g}",
    )
    parser.add_argument(
        "--cross-machine", action="store_true", help="enforce timing thresholds even when the machines differ"
    )
    parser.add_argument(
        "--group",
        action="append",
        type=text("--group"),
        default=None,
        metavar="NAME",
        help="compare only these benchmark groups (repeatable or comma-separated, e.g. C2,C4). Default: all",
    )
    parser.add_argument(
        "--storage",
        type=input_path,
        default=DEFAULT_STORAGE,
        metavar="DIR",
        help=f"pytest-benchmark storage for ids like 0001 (its --benchmark-storage). Default: {DEFAULT_STORAGE}",
    )


def _groups(values: Sequence[str] | None) -> set[str] | None:
    if not values:
        return None
    return {g.strip() for v in values for g in v.split(",") if g.strip()}


def main(args: argparse.Namespace) -> int:
    thresholds = args.fail or [parse_threshold(t) for t in CI_THRESHOLDS]
    base, new = load_runs([args.base, args.new], args.storage)
    outcome = compare_runs(
        base,
        new,
        thresholds,
        cross_machine=args.cross_machine,
        noise_k=args.noise_k,
        min_delta_s=args.min_delta,
        groups=_groups(args.group),
    )
    for warning in outcome.warnings:
        print(f"resnet-lab compare: warning: {warning}", file=sys.stderr)
    print(outcome.text)
    failed = outcome.failed
    if failed:
        print(f"\nresult: FAIL ({len(failed)} of {len(outcome.checks)} checks violated)")
        return 1
    print(f"\nresult: ok ({len(outcome.checks)} checks)")
    return 0
