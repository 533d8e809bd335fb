"""Writing files: every file the project writes is complete or absent, and no output harms an input.

A reader never sees a half-written file, even after SIGKILL: data goes to a temporary file in the
target's directory, is fsynced, then `os.replace`d into place (atomic on POSIX within one filesystem).
A symlink is written through (its target is replaced, the link stays), a new file gets the mode the
umask gives, an existing file keeps its mode, and a target that is not a regular file (/dev/stdout,
a FIFO) is written in place, since it cannot be replaced. A folder of outputs is built in a
sibling staging folder and moved in only once complete (`staged_folder`). `check_outputs` refuses
an output that is, or lies inside, an input of the same command. No torch here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from .errors import LabError
from .interrupts import deferred_interrupt
from .procs import TEMP_SUFFIX, remove_stale, temporary_name

STAGING_SUFFIX = TEMP_SUFFIX


def current_umask() -> int:
    """The process umask, read without changing it where Linux shows it (/proc/self/status)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but only a fallback)
    os.umask(mask)
    return mask


def write_target(path: str | os.PathLike[str]) -> Path:
    """Where writing `path` lands: a symlink's final target (the link itself is kept), else the path."""
    target = Path(path)
    if target.is_symlink():
        return Path(os.path.realpath(target))
    return target


def _special(path: Path) -> bool:
    """An existing target that is not a regular file or folder: a device (/dev/stdout), a FIFO, a socket."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary sibling of `path` for writing; rename it over `path` only on success.

    Ctrl-C is held back from creating the temporary file to renaming or removing it (writes
    here take milliseconds), so an interrupt can neither strand the temporary file nor leave
    half a target; it is raised once the file is complete, or gone.
    """
    if _special(Path(path)):
        with open(path, mode, **kwargs) as handle:  # cannot be replaced, and a reader is waiting on it
            yield handle
        return
    target = write_target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        kept_mode: int | None = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        kept_mode = None
    remove_stale(target.parent, f".{target.name}.")  # what a SIGKILLed writer of this file left
    with deferred_interrupt():
        fd, tmp = tempfile.mkstemp(prefix=temporary_name(f".{target.name}."), suffix=STAGING_SUFFIX, dir=target.parent)
        try:
            # mkstemp creates 0600; the file should have what open() would have given it.
            os.fchmod(fd, kept_mode if kept_mode is not None else 0o666 & ~current_umask())
            with os.fdopen(fd, mode, **kwargs) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write `data` as indented JSON, atomically."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=False)
        handle.write("\n")


# ----------------------------------------------------------------------------- outputs vs inputs


def _real(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(os.path.expanduser(os.fspath(path))))


def check_outputs(outputs: Iterable[tuple[str, str]], inputs: Iterable[tuple[str, str]]) -> None:
    """LabError when an output (option, path) is, or lies inside, an input (option, path) of the same command.

    Paths are compared after following symlinks, so a link to the dataset is the dataset. Devices and
    FIFOs (/dev/stdout) are never inputs to protect.
    """
    reals = [(option, path, _real(path)) for option, path in inputs if os.path.exists(os.path.expanduser(path))]
    for out_option, out_path in outputs:
        if _special(Path(out_path)):
            continue
        out = _real(out_path)
        for in_option, in_path, real in reals:
            if out == real or out.is_relative_to(real):
                where = "is" if out == real else "lies inside"
                raise LabError(
                    f"{out_option} {out_path} {where} {in_option} {in_path}, an input of this command: "
                    f"writing it would destroy that input; pass another {out_option}"
                )


# ----------------------------------------------------------------------------- folders of outputs


@contextlib.contextmanager
def staged_folder(out: str | os.PathLike[str]) -> Iterator[Path]:
    """A sibling staging folder to fill; on success its files move into `out`, on failure it is removed.

    `out` then appears complete or not at all: a new folder is renamed into place whole; into an
    existing one (which may hold the user's other files, kept) each file is renamed only after every
    file is written, so a failure while building leaves `out` as it was.
    """
    target = write_target(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target.parent, f".{target.name}.")  # a SIGKILLed run's staging folder
    stage = Path(tempfile.mkdtemp(prefix=temporary_name(f".{target.name}."), suffix=STAGING_SUFFIX, dir=target.parent))
    try:
        os.chmod(stage, 0o777 & ~current_umask())
        yield stage
        with deferred_interrupt():
            if not target.exists():
                os.rename(stage, target)
                return
            for item in sorted(stage.iterdir()):
                os.replace(item, target / item.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
