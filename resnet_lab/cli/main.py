"""`resnet-lab` command line: a thin shell over the library (no measurement logic here).

User errors (LabError) print one line `resnet-lab: error: ...` and exit 2,
like argparse's own usage errors; nothing prints a traceback for them. The device running
out of memory is one line and exit 2 too (it suggests a smaller --batch-size); a run that
diverges or loses a DataLoader worker is one line and exit 1; Ctrl-C is one line and exit 130.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Callable, Sequence

from ..argtypes import role_values
from ..errors import DivergenceError, LabError, RankFailure
from ..fileio import check_outputs
from ..procs import Terminated, sigterm_raises, stop_children

# Subcommands live in their own modules, each exposing `configure(parser)`
# and `main(args) -> int`; imported lazily so `--help` stays fast.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("resnet_lab.cli.train", "train ResNet-18 on CIFAR-10 with per-phase timings (the lab's lab2.py)"),
    "report": ("resnet_lab.cli.report", "turn benchmark JSON into the lab's answer sheet (markdown + plots)"),
    "compare": ("resnet_lab.cli.compare", "compare two saved benchmark runs, noise-aware, with pass/fail thresholds"),
    "estimate": ("resnet_lab.cli.estimate", "predict a preset's wall time on a machine from earlier runs there"),
    "scaling": (
        "resnet_lab.cli.scaling",
        "predict data-parallel epoch time and efficiency for N ranks (D1 + D4, or given figures)",
    ),
    "history": (
        "resnet_lab.cli.history",
        "saved runs over many commits: change points, labels, an HTML page, and a gate",
    ),
    "ab": (
        "resnet_lab.cli.ab",
        "the regression gate: run base and working tree in alternation here, decide on paired ratios",
    ),
}


def chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the first argument that is one), if any."""
    return next((arg for arg in argv if arg in SUBCOMMANDS), None)


Handler = Callable[[argparse.Namespace], int]


def get_parser(argv: Sequence[str] = ()) -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    """The parser; only the chosen subcommand's module is imported (`--help` and `report` never load torch)."""
    parser, handlers, _ = get_parsers(argv)
    return parser, handlers


def get_parsers(
    argv: Sequence[str] = (),
) -> tuple[argparse.ArgumentParser, dict[str, Handler], dict[str, argparse.ArgumentParser]]:
    """The parser, the chosen subcommand's handler and its own parser (whose actions declare its options)."""
    parser = argparse.ArgumentParser(
        prog="resnet-lab",
        description="ResNet-18 on CIFAR-10: where does training time go? Measure it, save it, compare it.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    handlers: dict[str, Handler] = {}
    configured: dict[str, argparse.ArgumentParser] = {}
    chosen = chosen_command(argv)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.configure(sub)
            handlers[name] = module.main
            configured[name] = sub
    return parser, handlers, configured


def check_roles(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """No output of the command may be, or lie inside, one of its inputs (declared by the options' types)."""
    roles = role_values(parser, args)
    check_outputs(roles.get("output", []) + roles.get("output-dir", []), roles.get("input", []))


def out_of_memory(exc: BaseException) -> bool:
    """torch's device out-of-memory error (torch.OutOfMemoryError, alias torch.cuda.OutOfMemoryError)."""
    torch = sys.modules.get("torch")  # never imported here just to check: --help stays torch-free
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
    return oom is not None and isinstance(exc, oom)


def run_failure(exc: BaseException) -> bool:
    """Training stopped for a reason the message fully explains (divergence, a dead or hung loader worker or rank)."""
    workers = sys.modules.get("resnet_lab.engine.workers")  # never imported here just to check
    return isinstance(exc, (DivergenceError, RankFailure)) or (
        workers is not None and isinstance(exc, workers.LoaderWorkerError)
    )


def main(argv: Sequence[str] | None = None) -> int:
    # SIGTERM (a CI cancel, `timeout`) unwinds like Ctrl-C; whatever way this ends, no child outlives it.
    with sigterm_raises():
        try:
            return _main(argv)
        finally:
            stop_children()


def _main(argv: Sequence[str] | None) -> int:
    args = None
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        parser, handlers, subparsers = get_parsers(argv)  # inside the try: Ctrl-C while torch imports is still one line
        args = parser.parse_args(argv)
        check_roles(subparsers[args.command], args)
        return handlers[args.command](args)
    except LabError as exc:
        print(f"resnet-lab: error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        stop_children()  # before saying so: "gone within 3 s" holds when the line appears
        print(
            "resnet-lab: terminated (SIGTERM); files already written are complete, nothing half-written was kept",
            file=sys.stderr,
        )
        return 143
    except KeyboardInterrupt:
        stop_children()
        print(
            "resnet-lab: interrupted; files already written are complete, nothing half-written was kept",
            file=sys.stderr,
        )
        return 130
    except Exception as exc:
        if out_of_memory(exc):
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "out of memory"
            detail = " ".join(re.split(r"(?<=\.)\s+", first)[:2])  # 'CUDA out of memory. Tried to allocate 2.00 GiB.'
            batch = getattr(args, "batch_size", None)
            at = f" at --batch-size {batch}" if batch else ""
            print(
                f"resnet-lab: error: the device ran out of memory{at} ({detail}); try a smaller --batch-size",
                file=sys.stderr,
            )
            return 2
        if run_failure(exc):
            print(f"resnet-lab: error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
