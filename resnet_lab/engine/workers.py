"""A DataLoader worker that died or hung, named: what the loop raises instead of torch's bare error.

A killed worker (often the out-of-memory killer) surfaces in torch as one of several errors,
depending on timing; `loader_failure` turns each into one `LoaderWorkerError` naming the worker,
its signal and where in the epoch it happened.
"""

from __future__ import annotations

import signal
import time


class LoaderWorkerError(RuntimeError):
    """A DataLoader worker process died or hung; the message names the worker and the signal."""


def _exited_workers(iterator: object) -> list[str]:
    """'pid 123 killed by SIGKILL' for each exited worker of a multi-process DataLoader iterator."""
    found = []
    for worker in getattr(iterator, "_workers", ()):  # torch's multi-process iterator; read only
        code = getattr(worker, "exitcode", None)
        if code is None:
            continue
        try:
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
        except ValueError:
            how = f"killed by signal {-code}"
        found.append(f"pid {worker.pid} {how}")
    return found


def loader_failure(exc: BaseException, iterator: object, epoch: int | None, batch: int) -> LoaderWorkerError | None:
    """A clear error for a worker that died or hung, or None when `exc` is something else.

    Callers raise the result themselves, in their own `except`: a helper that raised it would keep the
    iterator alive in its frame on the traceback, and the loop's `finally` could no longer shut the
    workers down (tests/test_distributed_faults.py sees a worker outlive the job).

    torch reports a killed worker in three ways depending on timing: RuntimeError 'DataLoader worker
    (pid X) is killed by signal', RuntimeError '... exited unexpectedly', or a bare
    ConnectionResetError/EOFError while receiving a batch the dead worker had queued. Its SIGCHLD
    handler can raise the first one at any moment, including while this looks at the workers.
    `epoch` None: the loader is the test loader, during evaluation.
    """
    for _ in range(3):
        try:
            return _describe_loader_failure(exc, iterator, epoch, batch)
        except RuntimeError as late:  # torch's SIGCHLD handler reported the death meanwhile
            if not str(late).startswith("DataLoader worker (pid"):
                raise
            exc = late
    return LoaderWorkerError(f"a DataLoader worker died {_where(epoch, batch)}: {str(exc).strip()}")


def _where(epoch: int | None, batch: int) -> str:
    return f"mid-epoch (epoch {epoch}, batch {batch})" if epoch is not None else f"during evaluation (batch {batch})"


def _describe_loader_failure(
    exc: BaseException, iterator: object, epoch: int | None, batch: int
) -> LoaderWorkerError | None:
    text = str(exc)
    where = f"epoch {epoch}, batch {batch}" if epoch is not None else f"evaluation, batch {batch}"
    if isinstance(exc, (ConnectionError, EOFError)) or text.startswith("DataLoader worker (pid"):
        exited = _exited_workers(iterator)
        deadline = time.monotonic() + 1.0  # a socket can reset a moment before its process is reapable
        while not exited and isinstance(exc, (ConnectionError, EOFError)) and time.monotonic() < deadline:
            time.sleep(0.05)
            exited = _exited_workers(iterator)
        cause = "; ".join(exited) if exited else f"{type(exc).__name__}: {text.strip()}"
        return LoaderWorkerError(
            f"a DataLoader worker died {_where(epoch, batch)}: {cause}; "
            "SIGKILL is often the out-of-memory killer: use fewer workers or check the machine's memory"
        )
    if text.startswith("DataLoader timed out"):
        return LoaderWorkerError(
            f"{text.strip()} waiting for a batch ({where}): a DataLoader worker is hung (see LoaderConfig.timeout)"
        )
    return None
