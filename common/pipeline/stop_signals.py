"""SIGTERM and SIGINT delivered to an I/O loop as readable bytes, never handled inside a signal handler.

A Python signal handler runs between two bytecodes of the main thread, possibly while that thread holds a lock (pika's
``add_callback_threadsafe`` takes one); a handler that called into the loop could wait on that lock forever. So the
handler does nothing, and Python's C-level handler writes the signal's number to the wake-up socket
(``signal.set_wakeup_fd``), which the loop watches like any other socket.

A service without pika's loop (plot) passes no loop and sleeps in ``wait``, which watches the same socket: its loop
sees a stop between two sleeps, and a stop during one ends that sleep at once.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import signal
import socket
from collections.abc import Callable

from pika.adapters.select_connection import IOLoop

LOGGER = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _only_wake_up(_signum: int, _frame: object) -> None:
    """The wake-up socket already carries the signal to the loop; nothing may happen here (no lock, no logging)."""


class StopSignals:
    """Calls ``on_stop`` on the loop, once per batch of SIGTERM or SIGINT received. Main thread only.

    Without a loop (``ioloop`` None), nothing watches the socket but ``wait``; ``stopped`` says whether a stop signal
    has been read from it."""

    def __init__(self, ioloop: IOLoop | None, on_stop: Callable[[], None] = lambda: None) -> None:
        self._on_stop = on_stop
        self.stopped = False
        self._receiver, sender = socket.socketpair()
        for end in (self._receiver, sender):
            end.setblocking(False)
        self._sender = sender  # kept open as long as Python writes to it
        signal.set_wakeup_fd(sender.fileno(), warn_on_full_buffer=False)
        for signum in STOP_SIGNALS:
            signal.signal(signum, _only_wake_up)
        if ioloop is not None:
            ioloop.add_handler(self._receiver.fileno(), self._on_readable, IOLoop.READ)

    def _on_readable(self, _fd: int, _events: int) -> None:
        received = b""
        with contextlib.suppress(BlockingIOError):
            received = self._receiver.recv(4096)
        stop_signals = [signum for signum in dict.fromkeys(received) if signum in STOP_SIGNALS]
        for signum in stop_signals:
            LOGGER.info("received %s", signal.Signals(signum).name)
        if stop_signals:
            self.stopped = True
            self._on_stop()

    def wait(self, timeout: float) -> bool:
        """Sleep until a stop signal comes or ``timeout`` seconds pass; return whether one has come, now or before.

        For a loop of its own: another signal (one Python handles) may end the sleep early, without a stop."""
        if not self.stopped:
            with selectors.DefaultSelector() as selector:
                selector.register(self._receiver, selectors.EVENT_READ)
                if selector.select(timeout):
                    self._on_readable(self._receiver.fileno(), selectors.EVENT_READ)
        return self.stopped
