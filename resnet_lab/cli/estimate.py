"""`resnet-lab estimate RUN ...`: a preset's wall time on the machine the runs came from (results/estimate.py)."""

from __future__ import annotations

import argparse

from ..argtypes import choice, device_list, input_path, name_list, non_negative_int, positive_int, seed_list
from ..results.estimate import estimate, render
from ..results.loading import DEFAULT_STORAGE, load_runs


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "runs",
        type=input_path,
        nargs="+",
        metavar="RUN",
        help="earlier runs on the target machine: JSON, run logs (.jsonl) or storage ids",
    )
    parser.add_argument(
        "--preset",
        type=choice("full", "smoke", what="preset"),
        default="full",
        help="the preset to predict. Default: full",
    )
    parser.add_argument(
        "--device",
        type=device_list,
        default=None,
        metavar="LIST",
        help="devices the run will use, comma-separated. Default: cuda if the inputs have cuda records, else cpu",
    )
    parser.add_argument(
        "--epochs", type=positive_int, default=None, metavar="N", help="as --lab-epochs. Default: the preset's"
    )
    parser.add_argument(
        "--batches",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="as --lab-batches (0 = no cap). Default: the preset's",
    )
    parser.add_argument(
        "--eval-batches",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="as --lab-eval-batches (0 = all). Default: the preset's",
    )
    parser.add_argument(
        "--seeds",
        type=seed_list,
        default=None,
        metavar="LIST",
        help="as --lab-seeds: the training benchmarks (C2-C8) run once per seed. Default: one seed",
    )
    parser.add_argument(
        "--c8",
        type=name_list("C8 variants"),
        default=(),
        metavar="LIST",
        help="C8 variants to include, comma-separated (e.g. eager,best). Default: none",
    )
    parser.add_argument(
        "--storage",
        type=input_path,
        default=DEFAULT_STORAGE,
        metavar="DIR",
        help=f"pytest-benchmark storage for ids. Default: {DEFAULT_STORAGE}",
    )


def main(args: argparse.Namespace) -> int:
    runs = load_runs(args.runs, args.storage)
    predictions, work = estimate(runs, args)
    print("\n".join(render(predictions, work)))
    return 0
