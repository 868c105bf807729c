"""StopSignals without a pika loop (plot's): ``wait`` sleeps until a stop signal or its timeout, in this process."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from pipeline.stop_signals import STOP_SIGNALS, StopSignals


@pytest.fixture(autouse=True)
def restored_signals() -> Iterator[None]:
    """Give pytest back its handlers and wake-up socket (none) after each test."""
    handlers = {signum: signal.getsignal(signum) for signum in (*STOP_SIGNALS, signal.SIGUSR1)}
    wakeup = signal.set_wakeup_fd(-1)
    yield
    signal.set_wakeup_fd(wakeup)
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def send_soon(signum: int, seconds: float = 0.2) -> None:
    threading.Timer(seconds, os.kill, (os.getpid(), signum)).start()


def test_wait_sleeps_its_timeout_when_no_signal_comes() -> None:
    stop_signals = StopSignals(None)
    started = time.monotonic()
    assert stop_signals.wait(0.3) is False
    assert time.monotonic() - started >= 0.25
    assert stop_signals.stopped is False


@pytest.mark.parametrize("signum", STOP_SIGNALS, ids=lambda signum: signal.Signals(signum).name)
def test_a_stop_signal_ends_the_wait_at_once_and_every_later_one(signum: int) -> None:
    stopped: list[bool] = []
    stop_signals = StopSignals(None, lambda: stopped.append(True))
    started = time.monotonic()
    send_soon(signum)
    assert stop_signals.wait(10.0) is True
    assert time.monotonic() - started < 2.0
    assert stop_signals.stopped and stopped == [True]
    started = time.monotonic()
    assert stop_signals.wait(10.0) is True, "stopped stays stopped"
    assert time.monotonic() - started < 0.5


def test_a_stop_signal_before_the_wait_is_not_lost() -> None:
    stop_signals = StopSignals(None)
    os.kill(os.getpid(), signal.SIGTERM)  # between two waits, as when it comes during a refresh
    assert stop_signals.wait(10.0) is True


def test_another_signal_may_end_the_wait_early_but_is_no_stop() -> None:
    other: list[int] = []
    stop_signals = StopSignals(None)
    signal.signal(signal.SIGUSR1, lambda signum, _frame: other.append(signum))
    send_soon(signal.SIGUSR1)
    assert stop_signals.wait(10.0) is False
    assert other == [signal.SIGUSR1] and not stop_signals.stopped
