"""SIGTERM and SIGINT sent to this very process: with a real pika I/O loop they come as one call of on_stop per batch;
without a loop (plot's), ``wait`` sleeps until a stop signal or its timeout."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from pika.adapters.select_connection import IOLoop

from pipeline.stop_signals import STOP_SIGNALS, StopSignals

GIVE_UP_AFTER = 5.0  # seconds: a loop still running then failed the test rather than hang it


@pytest.fixture
def ioloop() -> Iterator[IOLoop]:
    """A real loop; SIGTERM and SIGINT ignored unless StopSignals takes them (a signal it missed fails the test
    rather than end the session), and the process's own handlers and wake-up fd put back afterwards."""
    handlers = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGTERM, signal.SIGINT)}
    wakeup_fd = signal.set_wakeup_fd(-1)
    loop = IOLoop()
    try:
        yield loop
    finally:
        signal.set_wakeup_fd(wakeup_fd)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        loop.close()


class Calls:
    """on_stop's calls, each noting whether the loop was running then (and not a signal handler)."""

    def __init__(self) -> None:
        self.on_loop: list[bool] = []
        self.loop_running = False

    def on_stop(self) -> None:
        self.on_loop.append(self.loop_running)


def run_loop(ioloop: IOLoop, calls: Calls, seconds: float, *timers: tuple[float, Callable[[], None]]) -> None:
    for delay, callback in timers:
        ioloop.call_later(delay, callback)
    ioloop.call_later(seconds, ioloop.stop)
    calls.loop_running = True
    ioloop.start()
    calls.loop_running = False


def send_to_self(signum: int) -> None:
    os.kill(os.getpid(), signum)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_calls_on_stop_once_on_the_loop(ioloop: IOLoop, signum: int) -> None:
    calls = Calls()
    StopSignals(ioloop, calls.on_stop)
    send_to_self(signum)  # before the loop runs: Python's handler runs now, and must do nothing
    assert calls.on_loop == [], "called inside the signal handler"
    run_loop(ioloop, calls, 0.5)
    assert calls.on_loop == [True]


def test_signals_in_one_batch_call_on_stop_once_and_a_later_batch_again(ioloop: IOLoop) -> None:
    calls = Calls()
    StopSignals(ioloop, calls.on_stop)
    for signum in (signal.SIGTERM, signal.SIGTERM, signal.SIGINT):
        send_to_self(signum)
    assert calls.on_loop == []
    run_loop(ioloop, calls, 0.6, (0.3, lambda: send_to_self(signal.SIGTERM)))
    assert calls.on_loop == [True, True], "once for the first batch, once for the signal during the loop"


def test_on_stop_may_stop_the_loop_it_runs_on(ioloop: IOLoop) -> None:
    calls: list[str] = []

    def stop() -> None:
        calls.append("stop")
        ioloop.stop()

    def give_up() -> None:
        calls.append("gave up")
        ioloop.stop()

    StopSignals(ioloop, stop)
    ioloop.call_later(0.1, lambda: send_to_self(signal.SIGTERM))
    ioloop.call_later(GIVE_UP_AFTER, give_up)
    ioloop.start()
    assert calls == ["stop"]


# --- without a loop: wait (plot's) ---


@pytest.fixture
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


@pytest.mark.usefixtures("restored_signals")
def test_wait_sleeps_its_timeout_when_no_signal_comes() -> None:
    stop_signals = StopSignals(None)
    started = time.monotonic()
    assert stop_signals.wait(0.3) is False
    assert time.monotonic() - started >= 0.25
    assert stop_signals.stopped is False


@pytest.mark.parametrize("signum", STOP_SIGNALS, ids=lambda signum: signal.Signals(signum).name)
@pytest.mark.usefixtures("restored_signals")
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


@pytest.mark.usefixtures("restored_signals")
def test_a_stop_signal_before_the_wait_is_not_lost() -> None:
    stop_signals = StopSignals(None)
    os.kill(os.getpid(), signal.SIGTERM)  # between two waits, as when it comes during a refresh
    assert stop_signals.wait(10.0) is True


@pytest.mark.usefixtures("restored_signals")
def test_another_signal_may_end_the_wait_early_but_is_no_stop() -> None:
    other: list[int] = []
    stop_signals = StopSignals(None)
    signal.signal(signal.SIGUSR1, lambda signum, _frame: other.append(signum))
    send_soon(signal.SIGUSR1)
    assert stop_signals.wait(10.0) is False
    assert other == [signal.SIGUSR1] and not stop_signals.stopped
