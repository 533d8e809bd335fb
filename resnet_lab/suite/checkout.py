"""The A/B gate's git side: the repository, the base commit, and a throwaway checkout of it (ab_runs.py runs them)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ..errors import LabError


def git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)


def repository(cwd: Path) -> Path:
    result = git(cwd, "rev-parse", "--show-toplevel")
    if result.returncode != 0:
        raise LabError(f"'{cwd}' is not inside a git repository; run resnet-lab ab in the repository to check")
    return Path(result.stdout.strip())


def resolve_commit(repo: Path, ref: str) -> str:
    result = git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    if result.returncode != 0 or not result.stdout.strip():
        raise LabError(f"--base '{ref}' is not a commit of the repository '{repo}'")
    return result.stdout.strip()


def working_tree_label(repo: Path) -> str:
    head = git(repo, "rev-parse", "--short", "HEAD").stdout.strip() or "no commit"
    dirty = bool(git(repo, "status", "--porcelain", "--untracked-files=no").stdout.strip())
    return f"working tree of {head}{' + uncommitted changes' if dirty else ''}"


def checkout_base(repo: Path, commit: str, into: Path) -> Path:
    """A throwaway clone at `commit`; --shared reads the repository's objects in place, so it is fast and copies
    nothing."""
    target = into / "base"
    for args in (
        ("clone", "--quiet", "--shared", "--no-checkout", str(repo), str(target)),
        ("-C", str(target), "checkout", "--quiet", "--detach", commit),
    ):
        result = subprocess.run(["git", *args], capture_output=True, text=True)
        if result.returncode != 0:
            raise LabError(f"cannot check out the base {commit[:12]}: {last_line(result.stderr)}")
    return target


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
