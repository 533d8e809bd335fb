"""`resnet-lab scaling [RUN ...]`: the scaling model's epoch time and efficiency for N ranks, and its error.

A thin shell over `results/report/scaling.py` (which reads runs) and `distributed/scaling.py` (the model):
compute time from D1, bandwidth from D4, the last bucket from D3, unless given on the command
line; with no run at all, `--step-s`, `--batch-per-rank` and `--busbw` say everything.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from ..argtypes import device as device_option
from ..argtypes import fraction_up_to_one, input_path, positive_float, positive_int, positive_int_list
from ..errors import LabError
from ..results.loading import DEFAULT_STORAGE, load_runs
from ..results.report.dvalues import MODEL_WORLD_SIZES, batch_of, device_of, found, oom
from ..results.report.scaling import Overrides, scaling_lines
from ..spec import groups


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "runs",
        type=input_path,
        nargs="*",
        metavar="RUN",
        help="benchmark JSON (or storage ids) with D1, and D4/D2/D3 where measured",
    )
    parser.add_argument(
        "--device",
        type=device_option,
        default=None,
        metavar="DEV",
        help="which device's D1 to model. Default: every device in the runs",
    )
    parser.add_argument(
        "--batch-per-rank",
        type=positive_int,
        default=None,
        metavar="N",
        help="per-rank batch. Default: every D1 batch that fitted",
    )
    parser.add_argument(
        "--world-sizes",
        type=positive_int_list,
        default=MODEL_WORLD_SIZES,
        metavar="LIST",
        help=f"rank counts to predict. Default: {','.join(map(str, MODEL_WORLD_SIZES))}",
    )
    parser.add_argument(
        "--step-s",
        type=positive_float,
        default=None,
        metavar="S",
        help="one device's training step at that batch (D1). Default: from the runs",
    )
    parser.add_argument(
        "--busbw",
        type=positive_float,
        default=None,
        metavar="GB/s",
        help="link bus bandwidth as nccl-tests reports it. Default: D4's, or 370 (published NVLink H100) for CUDA",
    )
    parser.add_argument(
        "--gradient-bytes",
        type=positive_int,
        default=None,
        metavar="N",
        help="bytes allreduced per step. Default: from the runs, else the lab's model",
    )
    parser.add_argument(
        "--last-bucket-bytes",
        type=positive_int,
        default=None,
        metavar="N",
        help="bytes of DDP's last bucket, which cannot overlap backward. Default: D3's, else all the gradients",
    )
    parser.add_argument(
        "--images",
        type=positive_int,
        default=None,
        metavar="N",
        help="images per epoch. Default: the run's training set, else 50000",
    )
    parser.add_argument(
        "--backward-fraction",
        type=fraction_up_to_one,
        default=None,
        metavar="F",
        help="share of a step spent in backward. Default: 2/3",
    )
    share = parser.add_mutually_exclusive_group()
    share.add_argument(
        "--shared-device",
        dest="shared",
        action="store_const",
        const=True,
        default=None,
        help="the ranks split one device's compute (CPU ranks on one host). Default: yes for cpu",
    )
    share.add_argument(
        "--device-per-rank",
        dest="shared",
        action="store_const",
        const=False,
        help="each rank has a device of its own. Default: yes for cuda",
    )
    parser.add_argument(
        "--storage",
        type=input_path,
        default=DEFAULT_STORAGE,
        metavar="DIR",
        help=f"pytest-benchmark storage for ids. Default: {DEFAULT_STORAGE}",
    )


def lab_gradient_bytes() -> int:
    from ..distributed.ddp import gradient_size  # torch only when no run says it
    from ..model import resnet18

    return gradient_size(resnet18())["gradient_bytes"]


def main(args: argparse.Namespace) -> int:
    runs = load_runs(args.runs, args.storage) if args.runs else []
    overrides = Overrides(
        step_s=args.step_s,
        busbw_gb_per_s=args.busbw,
        gradient_bytes=args.gradient_bytes,
        images=args.images,
        last_bucket_bytes=args.last_bucket_bytes,
        ranks_share_device=args.shared,
        **({"backward_fraction": args.backward_fraction} if args.backward_fraction else {}),
    )
    if not runs:
        if args.step_s is None or args.batch_per_rank is None or args.busbw is None:
            raise LabError(
                "without a run, give --step-s, --batch-per-rank and --busbw (the model's compute, batch and bandwidth)"
            )
        if overrides.gradient_bytes is None:
            overrides = replace(overrides, gradient_bytes=lab_gradient_bytes())
        pairs = [(args.device or "cuda", args.batch_per_rank)]
    else:
        pairs = list(
            dict.fromkeys(
                (device_of(b), batch_of(b))
                for _, b in found(runs, groups.D1)
                if not oom(b)
                and (args.device is None or device_of(b) == args.device)
                and (args.batch_per_rank in (None, batch_of(b)))
            )
        )
        if not pairs and args.step_s is not None and args.batch_per_rank is not None:
            pairs = [(args.device or "cuda", args.batch_per_rank)]
        if not pairs:
            raise LabError("no D1 benchmark in the runs matches; give --step-s and --batch-per-rank, or a run with D1")
    lines = ["# Scaling model (predictions; errors against measurements where the runs have them)", ""]
    for device, batch in pairs:
        lines += scaling_lines(runs, device, int(batch), args.world_sizes, overrides)
    print("\n".join(lines).rstrip())
    return 0
