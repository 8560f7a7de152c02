"""SIGTERM handled like Ctrl-C, so `kill`, a job scheduler or a container stop cleans up too.

Python's default for SIGTERM is to die at once: no `finally`, no `__exit__`, so a `VideoWriter`
left its hidden `.NAME.PID.partial` file behind. Inside `terminate_as_interrupt()` the signal
raises `Terminated` instead, which unwinds like KeyboardInterrupt and runs every cleanup.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM).

    A KeyboardInterrupt, not an Exception: code that catches Exception to report a failed step
    must not swallow a request to stop, and everything that cleans up after Ctrl-C does so here.
    """


def _raise_terminated(signum, frame) -> None:
    # Later SIGTERMs must not interrupt the cleanup this one starts (a second `kill`, or a
    # scheduler that repeats the signal), so they are ignored until the block is left.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated(f"terminated by signal {signum}")


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While active, SIGTERM raises `Terminated` in the main thread; the previous handler is restored after.

    Outside the main thread it does nothing: Python only lets the main thread set handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        # getsignal gives None for a handler installed outside Python; the default is the best guess.
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
