"""`resnet-lab report RUN.json [RUN.json ...] --out DIR`: writes DIR/answers.md and its figures.

The sheet itself is `results/report/` (one module per question); this is the command around it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..argtypes import input_path, output_dir
from ..errors import LabError
from ..fileio import atomic_open, staged_folder, write_target
from ..results.loading import DEFAULT_STORAGE, load_runs
from ..results.report.sheet import answer_sheet


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "runs",
        type=input_path,
        nargs="+",
        metavar="RUN",
        help="pytest-benchmark JSON files (e.g. a CPU run and a GPU run) or storage ids (0001)",
    )
    parser.add_argument(
        "--out",
        type=output_dir,
        required=True,
        metavar="DIR",
        help="folder for answers.md and its PNG figures (created if needed)",
    )
    parser.add_argument(
        "--storage",
        type=input_path,
        default=DEFAULT_STORAGE,
        metavar="DIR",
        help=f"pytest-benchmark storage for ids like 0001 (its --benchmark-storage). Default: {DEFAULT_STORAGE}",
    )


def prepare_out(path: str | Path) -> Path:
    """Prove the output folder can be made and written before any work is done (nothing is created yet)."""
    out = write_target(path)
    if out.exists() and not out.is_dir():
        raise LabError(f"--out '{path}' exists and is not a folder")
    parent = out if out.is_dir() else next((p for p in out.parents if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise LabError(f"--out '{path}' is not a writable folder: {parent} cannot be written")
    return out


def main(args: argparse.Namespace) -> int:
    runs = load_runs(args.runs, args.storage)
    out = prepare_out(args.out)
    try:
        # Built in a sibling staging folder and moved in only when whole: a failure leaves --out as it was.
        with staged_folder(out) as stage:
            text, written = answer_sheet(runs, stage)
            with atomic_open(stage / "answers.md", "w", encoding="utf-8") as handle:
                handle.write(text)
    except OSError as exc:
        raise LabError(f"could not write into --out '{args.out}': {exc.strerror or exc}") from None
    print(
        f"wrote {Path(args.out) / 'answers.md'} and {len(written)} "
        f"figure{'s' if len(written) != 1 else ''} in "
        f"{args.out.rstrip(os.sep)}{os.sep}"
    )
    return 0
