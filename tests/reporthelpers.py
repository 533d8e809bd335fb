"""`resnet-lab report` run in this process, and its answer sheet read back by section, for the report's tests."""

from __future__ import annotations

import re

import pytest

from resnet_lab import cli


def run_report(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`resnet-lab report ARGV` in this process: exit status, stdout, stderr."""
    rc = cli.main(["report", *argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def sections(text: str) -> dict[str, str]:
    """answers.md split at its '## ' headings: heading line -> body."""
    parts = re.split(r"^(## .*)$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def section(text: str, prefix: str) -> str:
    """The body of the first section whose heading starts with `prefix`."""
    return next(body for head, body in sections(text).items() if head.startswith(prefix))
