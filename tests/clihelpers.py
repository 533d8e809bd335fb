"""The CLI run in this process as a user would run it, for the tests: exit status, stdout, stderr."""

from __future__ import annotations

import pytest

from resnet_lab import cli


def in_process(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`resnet-lab ARGV` in this process: its exit status (argparse's usage errors included), stdout, stderr."""
    try:
        rc = cli.main(list(argv))
    except SystemExit as exc:  # argparse's usage errors
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err
