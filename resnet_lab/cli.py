"""`resnet-lab` command line: a thin shell over the library (no measurement logic here).

User errors (LabError) print one line `resnet-lab: error: ...` and exit 2,
like argparse's own usage errors; nothing prints a traceback for them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from .errors import LabError

# Subcommands live in their own modules, each exposing `configure(parser)`
# and `main(args) -> int`; imported lazily so `--help` stays fast.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("resnet_lab.train_cli", "train ResNet-18 on CIFAR-10 with per-phase timings (the lab's lab2.py)"),
    "report": ("resnet_lab.report", "turn benchmark JSON into the lab's answer sheet (markdown + plots)"),
    "compare": ("resnet_lab.compare", "compare two saved benchmark runs, noise-aware, with pass/fail thresholds"),
}


def available_subcommands() -> dict[str, tuple[str, str]]:
    """Subcommands whose module is importable (report/compare ship in later steps)."""
    found = {}
    for name, (module, help_text) in SUBCOMMANDS.items():
        if importlib.util.find_spec(module) is not None:
            found[name] = (module, help_text)
    return found


def get_parser() -> tuple[argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], int]]]:
    parser = argparse.ArgumentParser(
        prog="resnet-lab",
        description="ResNet-18 on CIFAR-10: where does training time go? Measure it, save it, compare it.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {}
    for name, (module_name, help_text) in available_subcommands().items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.configure(sub)
        handlers[name] = module.main
    return parser, handlers


def main(argv: Sequence[str] | None = None) -> int:
    parser, handlers = get_parser()
    args = parser.parse_args(argv)
    try:
        return handlers[args.command](args)
    except LabError as exc:
        print(f"resnet-lab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("resnet-lab: interrupted; files already written are complete, nothing half-written was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
