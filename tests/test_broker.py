"""The shared runtime against a real broker: acks only after the effect, never past a pending delivery."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from pipeline import broker as broker_module
from pipeline import confirms
from pipeline.broker import Broker, Delivery
from pipeline.health import HEALTH_INTERVAL, is_fresh
from pipeline.messages import BadMessage
from pipeline.settings import Common
from tests.helpers.ledger import ledger_ids
from tests.helpers.ports import free_port
from tests.helpers.queues import consumer_count, queue_depths
from tests.helpers.rabbit import RabbitNode
from tests.helpers.services import stop_gracefully
from tests.helpers.stream import Stream
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.broker

QUEUE = "y_true"


class Running:
    """A Broker consuming QUEUE in a thread; the handler keeps every delivery for the test to settle."""

    def __init__(self, url: str, prefetch: int = 100, health_file: str = "") -> None:
        self.deliveries: list[Delivery] = []
        self.broker = Broker(Common(url, "", "quorum", "INFO", health_file), [QUEUE], prefetch=prefetch)
        self.broker.consume(QUEUE, self._on_message)
        self._thread = threading.Thread(target=self.broker.run, kwargs={"handle_signals": False})
        self._thread.start()

    def _on_message(self, delivery: Delivery) -> None:
        if delivery.body == b"bad":
            raise BadMessage("a test's bad message")
        if delivery.body == b"bug":
            self.deliveries.append(delivery)  # half done, as a real fault leaves things
            raise RuntimeError("a fault of the handler's own")
        self.deliveries.append(delivery)

    def call(self, function, *args) -> None:
        done = threading.Event()

        def run() -> None:
            function(*args)
            done.set()

        self.broker.ioloop.add_callback_threadsafe(run)
        assert done.wait(10)

    def stop(self) -> None:
        self.broker.ioloop.add_callback_threadsafe(self.broker.stop)
        self.join()

    def join(self) -> None:
        """Wait for the loop to end (15 s at most)."""
        self._thread.join(15)
        assert not self._thread.is_alive()


@pytest.fixture
def running(broker_url: str) -> Iterator[Running]:
    instance = Running(broker_url)
    yield instance
    if instance._thread.is_alive():
        instance.stop()


def publish(url: str, bodies: list[bytes]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.confirm_delivery()
    for body in bodies:
        channel.basic_publish("", QUEUE, body, pika.BasicProperties(delivery_mode=2))
    connection.close()


def test_a_pending_delivery_is_not_acked_by_the_settled_ones_after_it(running: Running, broker_url: str) -> None:
    wait_until(lambda: running.broker.is_ready, 30, "the broker to be ready")
    publish(broker_url, [b"%d" % index for index in range(10)])
    wait_until(lambda: len(running.deliveries) == 10, 30, "10 deliveries")
    for delivery in running.deliveries[1:]:
        running.call(running.broker.ack, delivery)
    running.stop()
    assert queue_depths(broker_url)[QUEUE] == 1, "only the unsettled first delivery goes back to the queue"


def test_settled_deliveries_are_acked_and_bad_ones_dead_lettered(running: Running, broker_url: str) -> None:
    wait_until(lambda: running.broker.is_ready, 30, "the broker to be ready")
    publish(broker_url, [b"1", b"bad", b"2", b"bad", b"3"])
    wait_until(lambda: len(running.deliveries) == 3, 30, "3 good deliveries")
    for delivery in running.deliveries:
        running.call(running.broker.ack, delivery)
    running.stop()
    depths = queue_depths(broker_url)
    assert (depths[QUEUE], depths["y_true.dead"]) == (0, 2)


def test_confirmed_publishes_run_their_callback(running: Running, broker_url: str) -> None:
    wait_until(lambda: running.broker.is_ready, 30, "the broker to be ready")
    confirmed: list[int] = []
    for index in range(300):
        running.call(running.broker.publish, "y_true.dead", b"%d" % index, lambda i=index: confirmed.append(i))
    wait_until(lambda: len(confirmed) == 300, 30, "300 confirms")
    assert sorted(confirmed) == list(range(300))
    running.stop()
    assert queue_depths(broker_url)["y_true.dead"] == 300


def test_a_paused_queue_keeps_its_messages_until_resumed(running: Running, broker_url: str) -> None:
    wait_until(lambda: running.broker.is_ready, 30, "the broker to be ready")
    publish(broker_url, [b"%d" % index for index in range(10)])
    wait_until(lambda: len(running.deliveries) == 10, 30, "10 deliveries")
    running.call(running.broker.pause, QUEUE)
    for delivery in running.deliveries:  # deliveries taken before the pause are still ours to ack
        running.call(running.broker.ack, delivery)
    # a quorum queue counts a cancelled consumer until its deliveries are settled
    wait_until(lambda: consumer_count(broker_url, QUEUE) == 0, 30, "the consumer to be cancelled")
    publish(broker_url, [b"%d" % index for index in range(10, 15)])
    assert queue_depths(broker_url)[QUEUE] == 5

    running.call(running.broker.resume, QUEUE)
    wait_until(lambda: len(running.deliveries) == 15, 30, "the 5 held back")
    for delivery in running.deliveries[10:]:
        running.call(running.broker.ack, delivery)
    running.stop()
    assert sorted(int(delivery.body) for delivery in running.deliveries) == list(range(15))
    assert queue_depths(broker_url)[QUEUE] == 0


def test_settling_a_delivery_twice_changes_nothing(running: Running, broker_url: str) -> None:
    wait_until(lambda: running.broker.is_ready, 30, "the broker to be ready")
    publish(broker_url, [b"%d" % index for index in range(6)])
    wait_until(lambda: len(running.deliveries) == 6, 30, "6 deliveries")
    first, second, third, fourth, fifth, sixth = running.deliveries
    for delivery in (first, first, second, third, first, second):  # acked twice, once after a flush
        running.call(running.broker.ack, delivery)
    running.call(running.broker.reject, fourth)
    running.call(running.broker.ack, fourth)  # reject, then ack: the reject stands
    running.call(running.broker.ack, fifth)
    running.call(running.broker.reject, fifth)  # ack, then reject: the ack stands
    running.call(running.broker.reject, sixth)
    running.call(running.broker.reject, sixth)
    running.stop()
    assert running.broker.connections_lost == 0, "a second ack of a tag would have closed the channel (406)"
    depths = queue_depths(broker_url)
    assert (depths[QUEUE], depths["y_true.dead"]) == (0, 2)


def test_an_unexpected_error_in_a_handler_rejects_that_message_alone(running: Running, broker_url: str) -> None:
    wait_until(lambda: running.broker.is_ready, 30, "the broker to be ready")
    publish(broker_url, [b"1", b"bug", b"2", b"bug", b"3"])
    wait_until(lambda: len(running.deliveries) == 5, 30, "5 deliveries")
    for delivery in running.deliveries:  # the handler's own later ack of a rejected message is ignored
        running.call(running.broker.ack, delivery)
    running.stop()
    assert running.broker.connections_lost == 0
    assert running.broker.rejected[QUEUE] == 2
    depths = queue_depths(broker_url)
    assert (depths[QUEUE], depths["y_true.dead"]) == (0, 2)


@contextlib.contextmanager
def full_queue(rabbit: RabbitNode, url: str, queue: str) -> Iterator[int]:
    """``queue`` full, refusing every publish (a policy of one message at most), for the time of the block; yields
    how many messages it took before it refused."""
    rabbit.ctl("rabbitmqctl", "set_policy", "full", f"^{queue}$", '{"max-length": 1, "overflow": "reject-publish"}')
    try:
        yield fill_until_nacked(url, queue)
    finally:
        rabbit.ctl("rabbitmqctl", "clear_policy", "full")


def fill_until_nacked(url: str, queue: str) -> int:
    """Publish to ``queue`` until the broker nacks one; return how many it confirmed."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.confirm_delivery()
    confirmed = 0
    try:
        while confirmed < 100:
            channel.basic_publish("", queue, b"filler", pika.BasicProperties(delivery_mode=2))
            confirmed += 1
    except pika.exceptions.NackError:
        return confirmed
    finally:
        connection.close()
    raise AssertionError(f"{queue} took 100 messages without a nack")


def test_a_broker_that_keeps_nacking_gets_a_new_connection_and_nothing_goes_twice(
    running: Running, broker_url: str, rabbit: RabbitNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RabbitMQ before 3.13 can nack every publish on a channel whose queue leader died; a new channel recovers.

    A full queue that rejects publishes stands in for it: on 3.10 a channel that saw it full keeps nacking even once
    the limit is lifted, and a new channel asks the queue afresh.
    """
    monkeypatch.setattr(confirms, "NACK_RECONNECT_AFTER", 1.0)
    wait_until(lambda: running.broker.is_ready, 30, "the broker to be ready")
    queue = "y_true.dead"
    with full_queue(rabbit, broker_url, queue) as fillers:
        confirmed: list[bytes] = []
        running.call(running.broker.publish, queue, b"one", lambda: confirmed.append(b"one"))
        wait_until(lambda: running.broker.connections_lost >= 1, 30, "a reconnect after a second of nacks")
        assert not confirmed
    assert_confirmed_once(running, confirmed, broker_url, queue, fillers)


def test_a_drain_goes_on_over_a_new_connection_until_every_message_is_confirmed(
    running: Running, broker_url: str, rabbit: RabbitNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """features at its FEATURES_LIMIT drains: a connection lost meanwhile is opened again, and the drain goes on."""
    monkeypatch.setattr(confirms, "NACK_RECONNECT_AFTER", 1.0)
    wait_until(lambda: running.broker.is_ready, 30, "the broker to be ready")
    queue = "y_true.dead"
    with full_queue(rabbit, broker_url, queue) as fillers:
        confirmed: list[bytes] = []
        running.call(running.broker.publish, queue, b"one", lambda: confirmed.append(b"one"))
        running.call(functools.partial(running.broker.stop, drain_forever=True))
        wait_until(lambda: running.broker.connections_lost >= 1, 30, "a reconnect while draining")
        wait_until(lambda: running.broker.is_ready, 30, "a new connection, still draining")
        assert not confirmed
    running.join()
    assert confirmed == [b"one"], "the drain ended once the message was confirmed, not before"
    assert queue_depths(broker_url)[queue] == fillers + 1


def assert_confirmed_once(running: Running, confirmed: list[bytes], url: str, queue: str, fillers: int) -> None:
    """Once the queue takes messages again, the refused one is confirmed on a new channel, and is in it once."""
    wait_until(lambda: confirmed, 30, "the confirm on a new channel once the limit is lifted")
    running.stop()
    assert confirmed == [b"one"]
    assert queue_depths(url)[queue] == fillers + 1, "the fillers and the message, once"


def test_nacks_from_one_queue_bring_a_new_connection_while_another_queue_confirms(
    running: Running, broker_url: str, rabbit: RabbitNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """features publishes to two queues: acks from one must not hide a channel that nacks every publish to the other."""
    monkeypatch.setattr(confirms, "NACK_RECONNECT_AFTER", 1.0)
    wait_until(lambda: running.broker.is_ready, 30, "the broker to be ready")
    refusing, accepting = "y_true.dead", "accepting"
    declare_queue(broker_url, accepting)
    accepted: list[int] = []
    with full_queue(rabbit, broker_url, refusing) as fillers:
        confirmed: list[bytes] = []
        running.call(running.broker.publish, refusing, b"one", lambda: confirmed.append(b"one"))

        def publish_one_accepted_and_see_a_reconnect() -> bool:
            index = len(accepted)
            running.call(running.broker.publish, accepting, b"%d" % index, lambda: accepted.append(index))
            return running.broker.connections_lost >= 1

        wait_until(publish_one_accepted_and_see_a_reconnect, 30, "a reconnect after a second of nacks from one queue")
        assert accepted, "the other queue confirmed publishes all along"
        assert not confirmed
    assert_confirmed_once(running, confirmed, broker_url, refusing, fillers)
    delete_queue(broker_url, accepting)


def declare_queue(url: str, queue: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    connection.channel().queue_declare(queue, durable=True)
    connection.close()


def delete_queue(url: str, queue: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    connection.channel().queue_delete(queue)
    connection.close()


def test_a_broker_that_stops_answering_does_not_hold_a_stop(own_rabbit: RabbitNode) -> None:
    """A broker busy electing leaders, or frozen, may never answer the close: the service stops anyway."""
    own_rabbit.start()
    running = Running(own_rabbit.url)
    wait_until(lambda: running.broker.is_ready, 30, "the broker to be ready")
    own_rabbit.signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        running.stop()  # fails if the loop still runs 15 s later
        print(f"stopped {time.monotonic() - started:.1f} s after the stop, without the broker's answer")
    finally:
        own_rabbit.signal(signal.SIGCONT)


def test_a_stop_while_the_connection_is_still_opening_ends_the_loop_cleanly() -> None:
    """SIGTERM may come between the TCP connect and the broker's answer (pika cannot abort that handshake)."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, and never says a word of AMQP
        port = silent.getsockname()[1]
        broker = Broker(Common(f"amqp://guest:guest@127.0.0.1:{port}/%2F", "", "quorum", "INFO", ""), [QUEUE])
        ended: list[object] = []

        def run() -> None:
            try:
                ended.append(broker.run(handle_signals=False))
            except BaseException as error:
                ended.append(error)

        thread = threading.Thread(target=run)
        thread.start()
        silent.settimeout(30)
        connection, _address = silent.accept()
        with connection:
            assert connection.recv(8) == b"AMQP\x00\x00\x09\x01", "the client's protocol header: it waits for us"
            broker.ioloop.add_callback_threadsafe(broker.stop)
            thread.join(15)
    assert not thread.is_alive() and ended == [0], ended


def test_a_problem_stops_the_touches_of_the_health_file_while_it_lasts(
    broker_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broker_module, "HEALTH_INTERVAL", 0.05)
    health = tmp_path / "healthy"
    running = Running(broker_url, health_file=str(health))
    try:
        wait_until(lambda: running.broker.is_ready and health.exists(), 30, "the broker to be ready")
        running.call(running.broker.set_problem, "blocked", "a test's problem")
        os.utime(health, (0, 0))
        loop_turns_past(running, seconds=1.0)  # twenty touches would have come by now
        assert health.stat().st_mtime == 0, "touched while a problem lasts"
        assert running.broker.problems == {"blocked": "a test's problem"}

        running.call(running.broker.set_problem, "other", "a second problem")
        running.call(running.broker.set_problem, "blocked", None)
        loop_turns_past(running, seconds=1.0)
        assert health.stat().st_mtime == 0, "touched while the other problem lasts"

        running.call(running.broker.set_problem, "other", None)
        assert health.stat().st_mtime > 0, "touched as soon as the last problem is over"
        assert running.broker.problems == {}
    finally:
        running.stop()


def loop_turns_past(running: Running, seconds: float) -> None:
    """Wait until the broker's loop has run a timer ``seconds`` from now (every timer due before it has run)."""
    fired = threading.Event()
    running.call(running.broker.call_later, seconds, fired.set)
    wait_until(fired.is_set, 30, f"the loop to run {seconds:g} s on")


class BlockedStream:
    """features (health file, metrics endpoint), model and metric on a node of the test's own."""

    def __init__(self, stream: Stream, node: RabbitNode, health: Path, metrics_port: int) -> None:
        self.stream, self.node, self.health, self.metrics_port = stream, node, health, metrics_port

    def gauge(self) -> float | None:
        """features' pipeline_connection_blocked, or None if it does not serve it."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
                text = response.read().decode()
        except OSError:
            return None
        found = re.search(r"^pipeline_connection_blocked (\S+)$", text, re.MULTILINE)
        return float(found.group(1)) if found else None

    def warnings(self, text: str) -> int:
        log = self.stream.services.log("features")
        return sum(1 for line in log.splitlines() if " WARNING " in line and text in line)


def test_a_broker_resource_alarm_shows_as_blocked_and_nothing_is_lost(
    own_rabbit: RabbitNode, make_services, logs_dir: Path, tmp_path: Path
) -> None:
    """The disk alarm blocks publishers: features says so (log, gauge, a health file left stale); it recovers when
    the alarm clears, and every row arrives once."""
    own_rabbit.start()
    metrics_port, health = free_port(), tmp_path / "features-healthy"
    stream = Stream(make_services(own_rabbit.url), own_rabbit.url, logs_dir)
    stream.start(  # no row limit: features must still run (and serve its gauge) when the alarm clears
        FEATURES_INTERVAL="0.05",
        HEALTH_FILE=str(health),
        METRICS_PORT=str(metrics_port),
    )
    blocked = BlockedStream(stream, own_rabbit, health, metrics_port)
    wait_until(lambda: len(ledger_ids(stream.ledger)) >= 5, 60, "features to have 5 rows confirmed")
    assert blocked.gauge() == 0

    own_rabbit.ctl("rabbitmqctl", "set_disk_free_limit", "1000000GB")  # more than any disk here: the alarm is on
    try:
        wait_until(lambda: blocked.warnings(" blocked the connection (") == 1, 60, "features to log that it is blocked")
        assert blocked.gauge() == 1
        confirmed = len(ledger_ids(stream.ledger))
        max_age = HEALTH_INTERVAL * 2 + 1
        wait_until(lambda: not is_fresh(str(health), max_age), 60, f"the health file to be older than {max_age:g} s")
        assert len(ledger_ids(stream.ledger)) == confirmed, "confirms came while blocked"
        assert stream.services.processes["features"].poll() is None
    finally:
        own_rabbit.ctl("rabbitmqctl", "set_disk_free_limit", "50MB")

    wait_until(lambda: blocked.warnings("unblocked the connection") == 1, 60, "features to log that it is unblocked")
    wait_until(lambda: blocked.gauge() == 0, 30, "the gauge to go back to 0")
    wait_until(lambda: is_fresh(str(health), HEALTH_INTERVAL * 2), 30, "the health file to be touched again")
    stop_gracefully(stream.services, "features")
    stream.finish()
    assert blocked.warnings(" blocked the connection (") == 1, "one warning when blocked"


def test_a_queue_declared_with_other_arguments_stops_the_service_with_2_and_one_line(
    broker_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A classic y_true where QUEUE_TYPE says quorum: the broker refuses the declaration (406), which no reconnect
    mends."""
    declare_queue(broker_url, QUEUE)
    broker = Broker(Common(broker_url, "", "quorum", "INFO", ""), [QUEUE])
    ended: list[int] = []
    with caplog.at_level(logging.ERROR):
        thread = threading.Thread(target=lambda: ended.append(broker.run(handle_signals=False)))
        thread.start()
        thread.join(30)
    assert not thread.is_alive() and ended == [2], ended
    ours = [record for record in caplog.records if record.name.startswith("pipeline")]  # pika's own are silenced
    errors = [record.getMessage() for record in ours if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and "other arguments than QUEUE_TYPE=quorum" in errors[0], errors
    assert broker.connections_lost == 0
    delete_queue(broker_url, QUEUE)


def test_a_queue_deleted_under_its_consumer_is_declared_again_and_consumed(running: Running, broker_url: str) -> None:
    """Deleting a queue cancels its consumers (basic.cancel): the service opens a new channel, declares the queue
    again and goes on, in the same process."""
    wait_until(lambda: running.broker.is_ready, 30, "the broker to be ready")
    delete_queue(broker_url, QUEUE)
    wait_until(lambda: running.broker.connections_lost >= 1 and running.broker.is_ready, 30, "a new connection")
    publish(broker_url, [b"after"])
    wait_until(lambda: [delivery.body for delivery in running.deliveries] == [b"after"], 30, "the new message")
    running.call(running.broker.ack, running.deliveries[0])
    running.stop()
    assert queue_depths(broker_url)[QUEUE] == 0
