"""`resnet-lab history SOURCE...`: the command around results/history/ (which holds the rule).

Exit status: 0 no gated figure's newest runs sit in a significantly worse segment; 1 one does; 2 usage
error, unreadable input, or no series with enough runs to judge.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..argtypes import choice_list, fraction, input_path, output_file, text
from ..errors import LabError
from ..fileio import atomic_open
from ..results.history.detect import MIN_RUNS
from ..results.history.render import Context, markdown, page, terminal
from ..results.history.series import (
    ALPHA,
    FIGURES,
    TIMING_TOLERANCE,
    build_series,
    gate_status,
    judge_all,
)
from ..results.history.sources import check_outputs, commit_id, load_sources, since
from ..results.loading import DEFAULT_STORAGE

HELP_EPILOG = f"""\
sources:
  a pytest-benchmark storage folder (.benchmarks, one sub-folder per machine; every */*.json in it),
  storage ids (0001, looked up in --storage), JSON files or suite run logs (run.jsonl). Runs are ordered
  by their own commit_info (commit time, then the run's date); git is asked only for --since.
  One series per benchmark, figure, machine (CPU model and count, GPU) and workload.

change points:
  ruptures' binary segmentation (least squares on log values: a shift is a ratio; top-1 in points), each
  split kept only when a permutation test finds it significant; at least {MIN_RUNS} runs on either side.
  A change starts only at a commit's first run: the runs of one commit (a dirty tree's apart) are one block,
  their spread its noise. A staircase a straight line over the commits explains as well is a drift.

labels (about the newest run):
  regression   its segment is significantly worse than the one before, beyond the tolerance
               (timings: --tolerance and 0.05 s; top1: 5 points; loss: +10%, compare's CI thresholds)
  improvement  ... better, beyond the tolerance
  suspicious   a gradual drift for the worse, or the newest run alone far off its segment
  no change    no significant change beyond the tolerance
  insufficient data  fewer than {2 * MIN_RUNS} runs

exit status: 0 no regression; 1 a regression (the false-alarm rate --alpha holds over all series at
  once); 2 usage error, unreadable source, or no series has enough runs to judge.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = HELP_EPILOG
    parser.add_argument(
        "sources",
        type=input_path,
        nargs="+",
        metavar="SOURCE",
        help="storage folder, storage id, JSON file or run log (several allowed)",
    )
    parser.add_argument(
        "--html",
        type=output_file,
        default=None,
        metavar="PAGE",
        help="write a single-file HTML page (inline SVG plots, no JavaScript)",
    )
    parser.add_argument(
        "--markdown",
        type=output_file,
        default=None,
        metavar="SUMMARY",
        help="write a Markdown summary (CI job summary, PR comment)",
    )
    parser.add_argument(
        "--figure",
        action="append",
        type=choice_list(*FIGURES, what="figures"),
        default=None,
        metavar="NAME",
        help="figures to follow (repeatable or comma-separated; choose from "
        f"{', '.join(FIGURES)}). Default: all of them",
    )
    parser.add_argument(
        "--since",
        type=text("--since"),
        default=None,
        metavar="REF",
        help="only runs of REF and the commits after it that HEAD reaches (asks git)",
    )
    parser.add_argument(
        "--alpha",
        type=fraction,
        default=ALPHA,
        metavar="RATE",
        help=f"false-alarm rate over all series at once. Default: {ALPHA:g}",
    )
    parser.add_argument(
        "--tolerance",
        type=fraction,
        default=TIMING_TOLERANCE,
        metavar="FRACTION",
        help=f"timing changes at most this large are no change. Default: {TIMING_TOLERANCE:g} (5%%)",
    )
    parser.add_argument(
        "--storage",
        type=input_path,
        default=DEFAULT_STORAGE,
        metavar="DIR",
        help=f"pytest-benchmark storage for ids like 0001 (its --benchmark-storage). Default: {DEFAULT_STORAGE}",
    )


def figures(values: Sequence[tuple[str, ...]] | None) -> tuple[str, ...]:
    """The figures chosen by every --figure (each already checked against FIGURES), in order, or all of them."""
    return tuple(dict.fromkeys(f for chosen in values for f in chosen)) if values else FIGURES


def main(args: argparse.Namespace) -> int:
    chosen = figures(args.figure)
    loaded = load_sources(args.sources, args.storage)
    html, summary = (Path(p) if p is not None else None for p in (args.html, args.markdown))
    check_outputs({"--html": html, "--markdown": summary}, loaded)
    runs = since(loaded.runs, args.since) if args.since else loaded.runs
    if not runs:
        raise LabError(f"no run in the sources is of {args.since} or a later commit that HEAD reaches")
    series = build_series(runs, chosen)
    if not series:
        raise LabError(f"the runs record none of the figures {', '.join(chosen)}")
    judged = judge_all(series, alpha=args.alpha, timing_tolerance=args.tolerance)
    status = gate_status(judged)
    ctx = Context(status, args.alpha, len(runs), len({commit_id(r) for r in runs}), loaded.skipped, args.since)
    for _option, path, render in (("--markdown", summary, markdown), ("--html", html, page)):
        if path is not None:
            with atomic_open(path, "w", encoding="utf-8") as handle:
                handle.write(render(ctx, judged))
    for skipped in loaded.skipped:
        print(f"resnet-lab history: warning: skipped {skipped}", file=sys.stderr)
    print(terminal(ctx, judged))
    if status == 2:
        most = max(judged, key=lambda j: len(j.series.points)).series
        print(
            "resnet-lab: error: no series has enough runs to judge (a change needs "
            f"{MIN_RUNS} runs on either side of a commit; "
            f"the longest series has {len(most.points)} runs of {len({p.block for p in most.points})} commit(s))",
            file=sys.stderr,
        )
    return status
