"""terminate_as_interrupt: SIGTERM raises Terminated inside the block, and only there."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from hallo_pipeline.signals import Terminated, terminate_as_interrupt


def _wait_for_signal() -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the handler runs between bytecodes of the main thread
        time.sleep(0.01)
    pytest.fail("the signal did not arrive")


def test_sigterm_raises_inside_and_the_old_handler_comes_back() -> None:
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with pytest.raises(Terminated), terminate_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            _wait_for_signal()
        assert isinstance(Terminated(), KeyboardInterrupt) and not isinstance(Terminated(), Exception)
        os.kill(os.getpid(), signal.SIGTERM)  # after the block: the handler from before
        time.sleep(0.05)
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_outside_the_main_thread_it_changes_nothing() -> None:
    handlers = []

    def worker():
        with terminate_as_interrupt():
            handlers.append(signal.getsignal(signal.SIGTERM))

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert handlers == [before]
