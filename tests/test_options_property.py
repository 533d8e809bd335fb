"""Every option of every subcommand and every `--lab-*` pytest option, fed generated values at the parser level.

The options are read off the parsers themselves (the subcommands' argparse actions, the plugin's
`LAB_OPTIONS`), so an option added later is covered without editing this file; one declared without a
converter from `resnet_lab.argtypes` fails `test_every_option_is_declared`. For each value the parser
must give either a value its declaration promises (`Spec.holds`: in range, finite, non-empty) or its
usage error: exit 2 and exactly one error line; never another exception.
"""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resnet_lab.argtypes import spec_of
from resnet_lab.cli.main import SUBCOMMANDS, get_parsers
from resnet_lab.suite.plugin import LAB_OPTIONS

# Values a user mistypes or a script produces; hypothesis adds arbitrary text and numbers around them.
NASTY = [
    "",
    " ",
    "0",
    "-0",
    "-1",
    "1",
    "2",
    "1.5",
    "nan",
    "-nan",
    "inf",
    "-inf",
    "1e400",
    "1e-400",
    "9" * 400,
    "9" * 5000,
    "0x10",
    "1_000",
    "٣",
    "~",
    "~/x",
    "a\0b",
    "cpu",
    "cuda",
    "cuda:0",
    "cuda:x",
    "cpu,cuda:x",
    ",",
    "on",
    "off",
    "smoke",
    "full",
    "sgd",
    "gloo",
    "epoch_s:+15%",
    "top1:-2",
    "epoch_s:last:+1",
    "loss:+" + "9" * 400,
]
VALUES = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=30),
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.lists(st.integers(min_value=-3, max_value=40).map(str), min_size=0, max_size=5).map(",".join),
)
PROPERTY = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def _subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    parsers = {}
    for name in SUBCOMMANDS:
        _, _, configured = get_parsers([name])
        parsers[name] = configured[name]
    return parsers


def _lab_parser() -> argparse.ArgumentParser:
    """The `--lab-*` options as pytest registers them (it hands `type=`/`default=` to argparse as given)."""
    parser = argparse.ArgumentParser(prog="pytest", exit_on_error=True)
    for option in LAB_OPTIONS:
        parser.add_argument(option.name, dest=option.dest, **option.kwargs)
    return parser


PARSERS = {**_subcommand_parsers(), "pytest --lab-*": _lab_parser()}
# The fewest arguments each parser needs besides the option under test.
REQUIRED = {"report": ["run.json", "--out", "sheet"], "compare": ["base.json", "new.json"], "estimate": ["run.json"]}
POSITIONAL_BEFORE = {("report", "runs"): ["--out", "sheet"], ("compare", "new"): ["base.json"]}
POSITIONAL_AFTER = {("compare", "base"): ["new.json"]}


def _valued(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The actions that take a value (flags and --help take none)."""
    return [a for a in parser._actions if a.nargs != 0 and not isinstance(a, argparse._HelpAction)]


CASES = [(name, action.dest) for name, parser in PARSERS.items() for action in _valued(parser)]


def _action(name: str, dest: str) -> argparse.Action:
    return next(a for a in _valued(PARSERS[name]) if a.dest == dest)


def test_the_cases_cover_every_subcommand_and_every_lab_option(pytestconfig: pytest.Config) -> None:
    assert {name for name, _ in CASES} == {*SUBCOMMANDS, "pytest --lab-*"}
    registered = {dest for dest in vars(pytestconfig.option) if dest.startswith("lab_")}
    assert registered == {option.dest for option in LAB_OPTIONS}, "a --lab-* option was added outside LAB_OPTIONS"


@pytest.mark.parametrize(("name", "dest"), CASES)
def test_every_option_is_declared(name: str, dest: str) -> None:
    assert spec_of(_action(name, dest)) is not None, (
        f"{name} {dest}: type= must be a converter from resnet_lab.argtypes"
    )


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.Namespace | None, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            return parser.parse_args(argv), err.getvalue()
        except SystemExit as exc:
            assert exc.code == 2, f"{argv}: exit {exc.code}"
    return None, err.getvalue()


@pytest.mark.parametrize(("name", "dest"), CASES)
@PROPERTY
@given(value=VALUES)
def test_a_value_parses_to_what_the_declaration_promises_or_is_one_usage_error(
    name: str, dest: str, value: str
) -> None:
    parser, action = PARSERS[name], _action(name, dest)
    spec = spec_of(action)
    assert spec is not None
    if action.option_strings:
        argv = [*REQUIRED.get(name, []), f"{action.option_strings[-1]}={value}"]
    else:  # a positional, after `--` so that a value starting with '-' stays a value
        argv = [*POSITIONAL_BEFORE.get((name, dest), []), "--", value, *POSITIONAL_AFTER.get((name, dest), [])]
    args, err = _parse(parser, argv)
    if args is None:
        errors = [line for line in err.splitlines() if "error:" in line]
        assert len(errors) == 1 and "Traceback" not in err, err
        assert len(errors[0]) < 400, errors[0]  # the value is not echoed whole
        return
    parsed = getattr(args, dest)
    values = parsed if isinstance(parsed, list) else [parsed]
    assert all(spec.holds(v) for v in values), (
        f"{name} {action.option_strings or dest}={value!r} parsed to {parsed!r}, outside {spec}"
    )
    if spec.kind == "path":
        assert not any(
            str(v) == "~" or str(v).startswith("~/") for v in values
        )  # expanded, as `train --data ~/x` always was
