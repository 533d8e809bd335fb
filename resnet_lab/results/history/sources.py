"""Where a history's runs come from: storage folders, storage ids, JSON files and run logs, read with
results/loading.py; their order (commit time, then run date); `--since` (the one place git is asked); and the
rule that an output never lands on an input."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ...errors import LabError
from ..loading import DEFAULT_STORAGE, load_run, resolve_run_path
from ..runs import Run


@dataclass(frozen=True)
class Loaded:
    runs: list[Run]  # in history order
    skipped: list[str]  # files in a storage folder that are not runs: "path: why"
    files: list[Path]  # every input file, resolved
    folders: list[Path]  # every folder given as a source, resolved


def _folder_files(folder: Path) -> list[Path]:
    """pytest-benchmark's storage layout: one sub-folder per machine id, NNNN_name.json in it; a machine
    sub-folder itself works too."""
    return sorted(p for p in folder.rglob("*.json") if p.is_file() and not p.name.startswith("."))


def load_sources(specs: Sequence[str], storage: str = DEFAULT_STORAGE) -> Loaded:
    """Every run the sources name. A file named on the command line must be a run (LabError otherwise);
    a file in a folder that is not one is skipped and reported, so one stray file cannot stop a CI gate."""
    runs: list[Run] = []
    skipped: list[str] = []
    files: list[Path] = []
    folders: list[Path] = []
    seen: set[Path] = set()
    for spec in specs:
        path = resolve_run_path(spec, storage)
        if path.is_dir():
            folders.append(path.resolve())
            found = _folder_files(path)
            if not found:
                raise LabError(
                    f"'{spec}' is a folder with no JSON runs in it (a pytest-benchmark "
                    "storage folder holds */NNNN_*.json)"
                )
            for file in found:
                if file.resolve() in seen:
                    continue
                seen.add(file.resolve())
                files.append(file.resolve())
                try:
                    runs.append(load_run(file, str(file)))
                except LabError as exc:
                    skipped.append(str(exc))
            continue
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        files.append(path.resolve())
        runs.append(load_run(path, str(path)))
    if not runs:
        raise LabError("no pytest-benchmark runs in the sources given: " + "; ".join(skipped[:3]))
    return Loaded(history_order(runs), skipped, files, folders)


def _when(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)  # pytest-benchmark writes UTC


def order_key(run: Run) -> tuple[datetime, datetime, str]:
    """Commit time, then the run's own date (several runs of one commit), then its file name."""
    date = _when(run.datetime) or datetime.min.replace(tzinfo=timezone.utc)
    return (_when(run.commit_info.get("time")) or date, date, str(run.path))


def history_order(runs: Sequence[Run]) -> list[Run]:
    """`runs` by commit time, with the runs of one commit (block_key) kept together, from its first run on:
    two commits made in the same second (a rebase) would otherwise interleave their runs by date."""
    first: dict[tuple[str, ...], tuple[datetime, datetime, str]] = {}
    for run in runs:
        first[block_key(run)] = min(first.get(block_key(run), order_key(run)), order_key(run))
    return sorted(runs, key=lambda run: (first[block_key(run)], order_key(run)))


def commit_id(run: Run) -> str:
    value = run.commit_info.get("id")
    return value if isinstance(value, str) and value else "unknown"


def block_key(run: Run) -> tuple[str, ...]:
    """The runs that measure one state of the code: those of one commit, its clean and its dirty runs apart
    (a dirty tree is not its commit). A run with no commit recorded is a block of its own."""
    commit = commit_id(run)
    return (commit, "dirty" if is_dirty(run) else "clean") if commit != "unknown" else ("unknown", str(run.path))


def is_dirty(run: Run) -> bool:
    return run.commit_info.get("dirty") is True


# ---------------------------------------------------------------------------
# --since REF: the only use of git
# ---------------------------------------------------------------------------


def commits_since(ref: str, repo: Path | None = None) -> set[str]:
    """REF and the commits after it that HEAD reaches (full ids)."""

    def git(*args: str) -> str:
        try:
            result = subprocess.run(["git", *args], cwd=repo, check=False, capture_output=True, text=True, timeout=60)
        except FileNotFoundError:
            raise LabError("--since needs git, which is not installed here") from None
        if result.returncode != 0:
            detail = (result.stderr.strip().splitlines() or ["git failed"])[-1]
            raise LabError(
                f"--since {ref}: {detail} (give a commit, tag or branch of the repository in the current folder)"
            )
        return result.stdout

    start = git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}").strip()
    return {start, *git("rev-list", f"{start}..HEAD").split()}


def since(runs: Sequence[Run], ref: str, repo: Path | None = None) -> list[Run]:
    keep = commits_since(ref, repo)
    return [r for r in runs if commit_id(r) in keep]


# ---------------------------------------------------------------------------
# outputs never harm inputs
# ---------------------------------------------------------------------------


def check_outputs(outputs: dict[str, Path | None], loaded: Loaded) -> None:
    """An output may not be an input file, lie inside a source folder, be a folder, or be another output."""
    taken: dict[Path, str] = {}
    for option, path in outputs.items():
        if path is None:
            continue
        target = path.resolve()
        if target.is_dir():
            raise LabError(f"{option} '{path}' is a folder; give a file name, e.g. {path / 'history.html'}")
        if target in loaded.files:
            raise LabError(f"{option} '{path}' is one of the runs being read; write it somewhere else")
        for folder in loaded.folders:
            if target.is_relative_to(folder):
                raise LabError(
                    f"{option} '{path}' lies inside the source folder '{folder}'; write it "
                    "outside the benchmark storage"
                )
        if target in taken:
            raise LabError(f"{option} and {taken[target]} both name '{path}'; give them different files")
        taken[target] = option
