"""`resnet-lab train`: the lab's lab2.py, done right (a thin shell over engine/ and distributed/)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from ..argtypes import choice, data_source, device, non_negative_int, output_file, positive_int, seed, text, workers
from ..data import SOURCES_HELP, SYNTHETIC, DataConfig, LoaderConfig, load_datasets
from ..distributed.ddp import DataParallelRun
from ..distributed.launch import World, torchrun_world
from ..engine.phases import EPOCH_S, IMAGES_PER_S, PHASE_LIST
from ..engine.run import RunConfig
from ..engine.step import resolve_device
from ..errors import LabError
from ..fileio import write_json
from ..machine import environment_info
from ..optim import OPTIMIZERS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", type=device, default="cpu", metavar="DEV", help="cpu or cuda (cuda:N). Default: cpu"
    )
    parser.add_argument("--num-workers", type=workers, default=2, metavar="N", help="DataLoader workers. Default: 2")
    parser.add_argument("--epochs", type=positive_int, default=5, metavar="N", help="epochs to train. Default: 5")
    parser.add_argument(
        "--optimizer",
        type=text("--optimizer"),
        default="sgd",
        metavar="NAME",
        help=f"one of {', '.join(OPTIMIZERS)} (lr 0.1, wd 5e-4). Default: sgd",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=128, metavar="N", help="training batch size. Default: 128"
    )
    parser.add_argument(
        "--data", type=data_source, default=SYNTHETIC, metavar="SRC", help=f"{SOURCES_HELP}. Default: {SYNTHETIC}"
    )
    parser.add_argument(
        "--no-batch-norm", action="store_true", help="remove every BatchNorm (C7). Default: BatchNorm on"
    )
    parser.add_argument(
        "--max-batches",
        type=positive_int,
        default=None,
        metavar="N",
        help="cap batches per epoch (CPU-sized runs). Default: no cap",
    )
    parser.add_argument(
        "--eval-batches",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="test batches per evaluation (per rank under torchrun); 0 skips it. Default: whole test set",
    )
    parser.add_argument(
        "--seed", type=seed, default=0, metavar="N", help="seed for data order, augmentation and init. Default: 0"
    )
    parser.add_argument(
        "--download", action="store_true", help="let torchvision download CIFAR-10 into --data. Default: never download"
    )
    parser.add_argument(
        "--json",
        type=output_file,
        default=None,
        metavar="PATH",
        help="write per-epoch records and averages here (atomically). Default: none",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the final averages")
    parser.add_argument(
        "--backend",
        type=choice("gloo", "nccl", what="backend", fold_case=True),
        default=None,
        metavar="NAME",
        help="collective backend when launched by torchrun (data-parallel; --batch-size is per rank): gloo or nccl. "
        "Default: nccl on cuda, gloo on cpu",
    )


def times(record: dict[str, object]) -> str:
    """Every phase's seconds and the epoch's, in the order the epoch runs them (engine/phases.py)."""
    return (
        "  ".join(f"{phase.name} {record[phase.key]:.3f}s" for phase in PHASE_LIST) + f"  epoch {record[EPOCH_S]:.3f}s"
    )


def epoch_line(record: dict[str, object], epochs: int) -> str:
    return (
        f"epoch {record['epoch']}/{epochs}  {times(record)}  "
        f"loss {record['loss']:.4f}  top1 {100 * record['top1']:.2f}%  ({record[IMAGES_PER_S]:.0f} img/s)"  # type: ignore[operator]  # a float, from the loop
    )


def summary_line(summary: dict[str, object]) -> str:
    return (
        f"mean over {summary['epochs']} epochs: {times(summary)}  "
        f"| last epoch loss {summary['loss']:.4f}  top1 {100 * summary['top1']:.2f}%"  # type: ignore[operator]  # a float, from the loop
    )


def run_config(args: argparse.Namespace) -> RunConfig:
    loader = LoaderConfig(batch_size=args.batch_size, num_workers=args.num_workers, seed=args.seed)
    return RunConfig(
        device=args.device,
        epochs=args.epochs,
        optimizer=args.optimizer,
        batch_norm=not args.no_batch_norm,
        max_batches=args.max_batches,
        eval_batches=args.eval_batches,
        seed=args.seed,
        loader=loader,
    )


def check_json_path(path: str) -> None:
    """Fail before training, not after it, when --json cannot be written."""
    target = Path(path)
    if target.is_dir():
        raise LabError(f"--json {path} is a folder; give a file path such as {target / 'run.json'}")
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # missing folders are created when writing
    if not folder.is_dir():
        raise LabError(f"cannot write --json {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise LabError(f"cannot write --json {path}: {folder} is not writable")


def write_results(path: str, results: dict[str, object]) -> None:
    try:
        write_json(path, results)  # atomic, Ctrl-C held for the milliseconds it takes (fileio.atomic_open)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.filename:
            reason += f": {exc.filename}"
        raise LabError(f"cannot write --json {path}: {reason}; an existing file there was left unchanged") from exc


def main(args: argparse.Namespace) -> int:
    config = run_config(args)  # validates before any data is touched
    resolve_device(config.device)
    if args.json is not None:
        check_json_path(args.json)
    # Under torchrun every rank runs this; the process group lives as long as the run.
    with torchrun_world(config.device, args.backend) as world:
        return train(args, config, world)


def train(args: argparse.Namespace, config: RunConfig, world: World) -> int:
    """The run on this rank; rank 0 alone prints and writes --json, with the whole job's records."""
    train_set, test_set = load_datasets(DataConfig(source=args.data, seed=args.seed, download=args.download))
    if args.batch_size > len(train_set):
        raise LabError(f"--batch-size {args.batch_size} is larger than the training set ({len(train_set)} images)")
    if config.loader.test_batch_size > len(test_set):  # a small image folder: evaluate it in one batch
        config = dataclasses.replace(config, loader=dataclasses.replace(config.loader, test_batch_size=len(test_set)))
    run = DataParallelRun(config, train_set, test_set, world=world, progress=sys.stdout.isatty() and not args.quiet)
    quiet = args.quiet or not world.lead
    threads = f"{world.threads_per_rank} thread{'s' if world.threads_per_rank != 1 else ''} each"
    ranks = f", {world.world_size} ranks ({world.backend}, {threads})" if world.world_size > 1 else ""
    if not quiet:
        print(
            f"resnet-lab train: {train_set.source} data ({len(train_set)} train / {len(test_set)} test), "
            f"device {run.device}{ranks}, optimizer {config.as_record()['optimizer']}, workers {args.num_workers}, "
            f"batch norm {'on' if config.batch_norm else 'off'}"
        )
    for _ in range(config.epochs):
        record = run.run_epoch()
        if not quiet:
            print(epoch_line(record, config.epochs), flush=True)
    summary = run.summary()
    test = run.evaluate()
    if not world.lead:
        return 0
    print(summary_line(summary))
    if test:
        print(
            f"test: loss {test['test_loss']:.4f}  top1 {100 * test['test_top1']:.2f}% on {test['test_images']} images"
        )
    if args.json:
        write_results(
            args.json,
            {
                "config": {
                    **run.config.as_record(),
                    **world.record(),
                    "batch_per_rank": args.batch_size,
                    "global_batch": run.global_batch,
                },
                "data": {
                    "source": args.data,
                    "kind": train_set.source,
                    "train_images": len(train_set),
                    "test_images": len(test_set),
                },
                "machine": environment_info(),
                "epochs": run.records,
                "summary": summary,
                "test": test,
            },
        )
        if not args.quiet:
            print(f"wrote {args.json}")
    return 0
