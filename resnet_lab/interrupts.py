"""Ctrl-C held back for the few moments when acting on it would lose or strand something.

Python runs signal handlers in the main thread whichever thread the signal reached, so a
Python-level handler (not a thread's signal mask) is what can defer SIGINT reliably. No torch here.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) back while DataLoader workers fork or shut down, then raise it.

    A KeyboardInterrupt raised inside an at-fork hook (logging registers one) or inside the
    iterator's __del__ is printed as 'Exception ignored' and lost, and training would go on;
    Ctrl-C right after an epoch line lands exactly there. Forked workers inherit the holding
    handler, so they leave Ctrl-C to the main process, which shuts them down.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield  # someone else handles SIGINT here; leave it alone
        return
    pending: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if pending:
            raise KeyboardInterrupt
