"""Child processes die with their parent: the one place the project starts and stops them. No torch here.

* `popen`/`run`: a child started here is tracked until it ends; `stop_children` (called by the CLI on
  any exception, SIGTERM and Ctrl-C included, and by a caller's `finally`) terminates the ones still
  running, then kills any left after `STOP_S`.
* `die_with_parent`: the first call of every child entry point (the isolated C8 run, the D ranks,
  DataLoader workers) and of every `popen` child: on Linux the kernel sends it SIGTERM when its parent
  dies, even by SIGKILL (prctl PR_SET_PDEATHSIG), so no child outlives a killed parent.
* `sigterm_raises`: SIGTERM (what a CI cancel and `timeout` send) becomes the exception `Terminated`,
  so `finally` blocks run, temporaries are removed and children stopped, as for Ctrl-C.
* `temporary_name`/`remove_stale`: temporaries carry the creating process's id in their name; one
  whose process is gone (a SIGKILLed run's) is removed by the next run.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

STOP_S = 2.0  # a terminated child gets this long to exit before SIGKILL: all are gone within 3 s
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

_live: set[subprocess.Popen[Any]] = set()
_lock = threading.Lock()


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwinds like Ctrl-C (files complete or absent, children stopped); exit status 143."""


def _prctl() -> Any:
    """libc's prctl, or None off Linux; looked up in the parent, so a forked child only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()


def die_with_parent(parent_pid: int | None = None) -> None:
    """Ask the kernel to SIGTERM this process when its parent dies; exit at once if it already has.

    Linux only (prctl); elsewhere a no-op, and the parent's `stop_children` is what stops it.
    """
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _child_setup() -> None:
    # Runs in the forked child before exec: one foreign call, bound in the parent (nothing imported or locked here).
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, 15, 0, 0, 0)


def popen(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """subprocess.Popen, tracked, dying with this process (parent-death signal set before exec)."""
    # preexec_fn is safe here despite threads: one prctl call, no locks taken in the child.
    proc = subprocess.Popen(list(argv), preexec_fn=_child_setup, **kwargs)
    with _lock:
        _live.add(proc)
    return proc


def run(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """subprocess.run's common case (capture_output, text, cwd, env) through `popen`: stopped if this process
    unwinds."""
    capture = kwargs.pop("capture_output", False)
    if capture:
        kwargs.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc = popen(argv, **kwargs)
    try:
        out, err = proc.communicate()
    except BaseException:
        stop(proc)
        raise
    finally:
        forget(proc)
    return subprocess.CompletedProcess(list(argv), proc.returncode, out, err)


def forget(proc: subprocess.Popen[Any]) -> None:
    with _lock:
        _live.discard(proc)


def stop(proc: subprocess.Popen[Any], grace_s: float = STOP_S) -> None:
    """Terminate `proc`, kill it after `grace_s`, reap it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
    forget(proc)


def stop_children(grace_s: float = STOP_S) -> None:
    """Stop every child `popen` started that is still running: SIGTERM to all at once, then SIGKILL."""
    with _lock:
        procs = list(_live)
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
    for proc in procs:
        stop(proc, grace_s)


def raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(f"terminated by {signal.Signals(signum).name}")


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM raises `Terminated` in the main thread while inside; the previous handler afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ----------------------------------------------------------------------------- temporaries


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


TEMP_SUFFIX = ".tmp"  # every temporary's name ends so: nothing else is ever removed as stale


def remove_stale(folder: str | os.PathLike[str], prefix: str) -> None:
    """Remove `<prefix><pid>.*.tmp` entries in `folder` whose process is gone: what a SIGKILLed run left."""
    with contextlib.suppress(OSError):
        for entry in Path(folder).glob(f"{prefix}*{TEMP_SUFFIX}"):
            pid = entry.name[len(prefix) :].split(".", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)


def temporary_name(prefix: str) -> str:
    """`<prefix><pid>.`: the start of a temporary's name (end it with TEMP_SUFFIX), for mkdtemp/mkstemp and
    `remove_stale`."""
    return f"{prefix}{os.getpid()}."
