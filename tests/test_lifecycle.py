"""The stop conditions alone: when a lost connection is opened again, and when a stopped service may close."""

from __future__ import annotations

from pipeline.broker import Lifecycle, State
from pipeline.publish_window import Outgoing, PublishWindow


def lifecycle(unconfirmed: int = 0) -> Lifecycle:
    window = PublishWindow(10)
    for index in range(unconfirmed):
        window.sent(Outgoing("q", b"%d" % index, None, True))
    return Lifecycle(window)


def test_running_it_reconnects_and_does_not_close() -> None:
    running = lifecycle(unconfirmed=1)
    assert running.running and not running.stopping
    assert running.keeps_running()


def test_a_stop_ends_it_whatever_is_unconfirmed() -> None:
    stopped = lifecycle(unconfirmed=1)
    assert stopped.stop(drain_forever=False)
    assert stopped.state is State.STOPPING and stopped.stopping
    assert not stopped.keeps_running(), "a connection lost while stopping is not opened again"
    assert not stopped.may_close(connected=True), "connected, it waits for the confirms (STOP_TIMEOUT at most)"
    assert stopped.may_close(connected=False), "nothing can confirm them"


def test_a_drain_reconnects_until_every_message_is_confirmed() -> None:
    draining = lifecycle(unconfirmed=1)
    assert draining.stop(drain_forever=True)
    assert draining.state is State.DRAINING and not draining.stopping
    assert draining.keeps_running()
    assert not draining.may_close(connected=False), "it waits for a new connection"
    assert not draining.may_close(connected=True)


def test_with_nothing_unconfirmed_a_stopped_service_closes() -> None:
    for drain_forever in (False, True):
        idle = lifecycle()
        idle.stop(drain_forever=drain_forever)
        assert not idle.keeps_running()
        assert idle.may_close(connected=True)


def test_a_plain_stop_during_a_drain_ends_it_and_a_second_stop_changes_nothing() -> None:
    service = lifecycle(unconfirmed=1)
    assert service.stop(drain_forever=True)
    assert not service.stop(drain_forever=True), "draining again"
    assert service.stop(drain_forever=False), "a signal during the drain"
    assert service.state is State.STOPPING and not service.keeps_running()
    assert not service.stop(drain_forever=False)
    assert not service.stop(drain_forever=True), "no drain after a stop"
    assert service.state is State.STOPPING


def test_a_fault_no_reconnect_mends_stops_with_its_exit_code() -> None:
    service = lifecycle(unconfirmed=1)
    assert service.exit_code == 0
    service.fail(exit_code=2)
    assert (service.exit_code, service.state) == (2, State.STOPPING)
    assert not service.keeps_running()
