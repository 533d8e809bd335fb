"""`resnet-lab report RUN.json [RUN.json ...] --out DIR`: writes DIR/answers.md and its figures.

The sheet itself is `results/report/` (one module per question); this is the command around it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from ..errors import LabError
from ..fileio import atomic_open
from ..results.report.sheet import answer_sheet
from ..results.runs import DEFAULT_STORAGE, load_runs

def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="pytest-benchmark JSON files (e.g. a CPU run and a GPU run) or storage ids (0001)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for answers.md and its PNG figures (created if needed)")
    parser.add_argument(
        "--storage", default=DEFAULT_STORAGE, metavar="DIR",
        help=f"pytest-benchmark storage for ids like 0001 (its --benchmark-storage). Default: {DEFAULT_STORAGE}",
    )


def prepare_out(path: str | Path) -> Path:
    """Create the output folder and prove it is writable before any work is done."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except FileExistsError:
        raise LabError(f"--out '{out}' exists and is not a folder") from None
    except OSError as exc:
        raise LabError(f"--out '{out}' is not a writable folder: {exc.strerror or exc}") from None
    return out


def main(args: argparse.Namespace) -> int:
    runs = load_runs(args.runs, args.storage)
    out = prepare_out(args.out)
    try:
        text, written = answer_sheet(runs, out)
        target = out / "answers.md"
        with atomic_open(target, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise LabError(f"could not write into --out '{out}': {exc.strerror or exc}") from None
    print(f"wrote {target} and {len(written)} figure{'s' if len(written) != 1 else ''} in {out}{os.sep}")
    return 0
