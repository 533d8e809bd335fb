"""Option values, declared once: every option of every subcommand and every `--lab-*` pytest option
takes its `type=` from here, so range, finiteness, non-emptiness and `~` expansion are checked at parse
time by one code path, and a bad value is one line (argparse's usage error: exit 2 in the CLI, 4 in pytest).

Each converter carries its declaration (`.spec`): what it accepts and, for paths, whether the option
names an input or an output of its command. `cli/main.py` and the pytest plugin use the roles to refuse
an output that is, or lies inside, an input (`fileio.check_outputs`); the property test
(tests/test_options_property.py) reads the parsers' own actions and these specs, so a new option
declared with a converter from here is covered without touching the test.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .devices import ACCELERATORS, DEVICE_TYPES

# Counts (epochs, batches, workers, ranks, bytes): far beyond any run, small enough that every figure
# computed from them stays a finite float and fits the C ints torch passes them to.
MAX_COUNT = 2**31 - 1
# numpy's and torch's seed range is 0 .. 2**32 - 1 (numpy rejects more).
MAX_SEED = 2**32 - 1
# Seconds, GB/s, tolerances: finite and not so small that 1 / value overflows.
MIN_POSITIVE = 1e-9
MAX_FLOAT = 1e12
_SHOWN = 40  # characters of a bad value echoed back: a 5,000-digit "integer" is not repeated whole


@dataclass(frozen=True)
class Spec:
    """What one converter accepts. `role` is "input"/"output"/"output-dir" for paths, else ""."""

    kind: str  # "int", "float", "text", "path", "choice", "list", or "parsed" (a value its own grammar built)
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    role: str = ""
    choices: tuple[str, ...] = ()

    def holds(self, value: Any) -> bool:
        """Whether a parsed value is one this spec promises (the property test's oracle)."""
        values = value if isinstance(value, tuple) else (value,)
        if self.kind == "list" and not values:
            return False
        for v in values:
            if self.kind in ("int", "float", "list"):
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    return False
                if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
                    return False
                if self.high is not None and (v > self.high or (self.high_open and v == self.high)):
                    return False
            elif self.kind == "parsed":
                if v is None:
                    return False
            elif self.kind == "choice":
                if v not in self.choices and not isinstance(v, bool):
                    return False
            elif not isinstance(v, (str, os.PathLike)) or not os.fspath(v) or "\0" in os.fspath(v):
                return False
        return True


Converter = Callable[[str], Any]


def _declared(spec: Spec, convert: Converter, name: str) -> Converter:
    convert.spec = spec  # type: ignore[attr-defined]  # the converter carries its spec for --help and errors
    convert.__name__ = name  # argparse names the type in "invalid <name> value" when one raises ValueError
    return convert


def declares(spec: Spec) -> Callable[[Converter], Converter]:
    """Decorator form of `_declared` for converters written as functions."""
    return lambda convert: _declared(spec, convert, convert.__name__)


def shown(text: str) -> str:
    """The value as typed, cut short past 40 characters (a 5,000-digit number is not echoed whole)."""
    text = text.strip()
    return text if len(text) <= _SHOWN else text[:_SHOWN] + f"... ({len(text)} characters)"


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{shown(text)}' is not an integer") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{shown(text)}' is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {shown(text)}")
    return value


def integer(low: int, high: int = MAX_COUNT, what: str = "an integer") -> Converter:
    """An int in [low, high]."""
    if high != MAX_COUNT:
        rule = f"{what} from {low} to {high}"
    else:
        rule = "a positive integer (>= 1)" if low == 1 else f"{what} >= {low}"

    def convert(text: str) -> int:
        value = _int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {rule}, got {shown(text)}")
        return value

    return _declared(Spec("int", low, high), convert, "integer")


def number(
    low: float | None, high: float = MAX_FLOAT, *, low_open: bool = False, high_open: bool = False, rule: str = ""
) -> Converter:
    """A finite float in the interval; an open end excludes the bound itself. `rule` words the range for messages."""
    if not rule:
        left = "(-inf" if low is None else f"{'(' if low_open else '['}{low:g}"
        rule = f"a number within {left}, {high:g}{')' if high_open else ']'}"

    def convert(text: str) -> float:
        value = _float(text)
        above = low is None or (value > low if low_open else value >= low)
        below = value < high if high_open else value <= high
        if not (above and below):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {shown(text)}")
        return value

    return _declared(Spec("float", low, high, low_open, high_open), convert, "number")


# DataLoader worker processes: past this a typo forks thousands of processes (4 per CPU is the suite's own limit).
MAX_WORKERS = 1024
positive_int = integer(1, what="a positive integer")
workers = integer(0, MAX_WORKERS, what="a worker count")
non_negative_int = integer(0, what="an integer")
seed = integer(0, MAX_SEED, what="a seed")
non_negative_float = number(0.0, rule=f"a number >= 0 (and <= {MAX_FLOAT:g})")
positive_float = number(MIN_POSITIVE, rule=f"> 0 (from {MIN_POSITIVE:g} to {MAX_FLOAT:g})")
fraction = number(0.0, 1.0, low_open=True, high_open=True, rule="a number between 0 and 1")  # a tolerance, a confidence
fraction_up_to_one = number(0.0, 1.0, low_open=True, rule="within (0, 1]")  # a share of a step


def int_list(low: int, high: int = MAX_COUNT, example: str = "0,4,8") -> Converter:
    """'0,4,8' -> (0, 4, 8): sorted, without duplicates, each in [low, high]."""
    item = integer(low, high)

    def convert(text: str) -> tuple[int, ...]:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of integers >= {low}, e.g. {example}")
        return tuple(sorted({item(p) for p in parts}))

    return _declared(Spec("list", low, high), convert, "list")


non_negative_int_list = int_list(0)
worker_list = int_list(0, MAX_WORKERS)
positive_int_list = int_list(1, example="1,2,4,8")


def choice(*names: str, what: str = "value", fold_case: bool = False) -> Converter:
    """One of `names` (case-insensitive with fold_case, returned lower-cased)."""

    def convert(text: str) -> str:
        value = text.strip().lower() if fold_case else text
        if value not in names:
            raise argparse.ArgumentTypeError(f"unknown {what} '{shown(text)}'; choose one of {', '.join(names)}")
        return value

    return _declared(Spec("choice", choices=names), convert, "choice")


def choice_list(*names: str, what: str = "names") -> Converter:
    """'a,b' -> ('a', 'b'): each one of `names`, in order, without duplicates."""
    one = choice(*names, what=what.removesuffix("s"))

    def convert(value: str) -> tuple[str, ...]:
        chosen = tuple(dict.fromkeys(one(p.strip()) for p in _non_empty(value, what).split(",") if p.strip()))
        if not chosen:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {what} from {', '.join(names)}, got '{shown(value)}'"
            )
        return chosen

    return _declared(Spec("choice", choices=names), convert, "choice_list")


@declares(Spec("choice", choices=("on", "off")))
def on_off(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected 'on' or 'off', got '{shown(text)}'")
    return value == "on"


def _non_empty(text: str, what: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{what} must not be empty")
    if "\0" in text:
        raise argparse.ArgumentTypeError(f"{what} must not hold a NUL character")
    return text


def text(what: str = "the value") -> Converter:
    """Any non-empty string (a git ref, a variant list): checked further by the command."""
    return _declared(Spec("text"), lambda value: _non_empty(value, what), "text")


def name_list(what: str = "names") -> Converter:
    """'eager,best' -> ('eager', 'best'): non-empty names, in order, without duplicates."""

    def convert(value: str) -> tuple[str, ...]:
        names = tuple(dict.fromkeys(p.strip() for p in _non_empty(value, what).split(",") if p.strip()))
        if not names:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got '{shown(value)}'")
        return names

    return _declared(Spec("text"), convert, "name_list")


def _path(role: str) -> Converter:
    def convert(value: str) -> str:
        # `~` expanded here for every path option, as a shell does for a bare word (`--opt=~/x` is not expanded by it).
        return os.path.expanduser(_non_empty(value, "a path"))

    return _declared(Spec("path", role=role), convert, "path")


input_path = _path("input")  # read by the command (a data source, a saved run, a storage folder)
output_file = _path("output")  # written by the command
output_dir = _path("output-dir")  # a folder the command writes into


@declares(Spec("path", role="input"))
def data_source(value: str) -> str:
    """`--data`/`--lab-data`: 'synthetic' or a path, `~` expanded; its layout is checked by the command
    (data.sources)."""
    return os.path.expanduser(_non_empty(value, "a data source"))


DEVICE_KINDS = tuple(DEVICE_TYPES)  # the device table's (resnet_lab/devices.py)


def _one_device(text: str) -> str:
    device = text.strip().lower()
    kind, colon, index = device.partition(":")
    indexed = kind in ACCELERATORS and index.isdigit() and index.isascii() and int(index) <= 1024
    valid = kind in DEVICE_KINDS and (not colon or indexed)
    if not valid:
        names = " or ".join(f"'{k}'" for k in DEVICE_KINDS)
        optional = ", ".join(f"'{k}:N'" for k in ACCELERATORS)
        raise argparse.ArgumentTypeError(f"unknown device '{shown(text)}': use {names} (optionally {optional})")
    return f"{kind}:{int(index)}" if colon else device


@declares(Spec("text"))
def device(text: str) -> str:
    """cpu, cuda or cuda:N (whether it is present is the command's to say)."""
    return _one_device(_non_empty(text, "a device"))


@declares(Spec("text"))
def device_list(text: str) -> tuple[str, ...]:
    """'cpu,cuda' -> ('cpu', 'cuda'): each a device, in order, without duplicates."""
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("expected at least one device, e.g. cpu or cpu,cuda")
    return tuple(dict.fromkeys(_one_device(p) for p in parts))


def spec_of(action: argparse.Action) -> Spec | None:
    """The declaration behind an argparse action, None for flags and untyped options."""
    return getattr(action.type, "spec", None)


def role_values(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, list[tuple[str, str]]]:
    """{role: [(option, path)]} of the path options given to `parser` (defaults included)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for action in parser._actions:  # argparse keeps no public list of a parser's actions
        spec = spec_of(action)
        if spec is None or not spec.role:
            continue
        value = getattr(args, action.dest, None)
        values: Sequence[Any] = value if isinstance(value, (list, tuple)) else [value]
        name = action.option_strings[-1] if action.option_strings else action.metavar or action.dest
        found.setdefault(spec.role, []).extend((str(name), os.fspath(v)) for v in values if v is not None)
    return found


@declares(Spec("list", 0, MAX_SEED))
def seed_list(text: str) -> tuple[int, ...]:
    """'0,1,2' -> (0, 1, 2): seeds in the order given; each 0..2**32-1, none repeated (a repeat would train the same run
    twice)."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of seeds, e.g. 0,1,2, got '{shown(text)}'")
    seeds: list[int] = []
    for part in parts:
        value = seed(part)
        if value in seeds:
            raise argparse.ArgumentTypeError(f"seed {value} is given twice: each seed trains one run, list it once")
        seeds.append(value)
    return tuple(seeds)
