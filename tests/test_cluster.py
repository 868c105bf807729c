"""The pipeline on a three-node RabbitMQ cluster (Debian's 3.10, as processes on loopback): no single node stops it.

The services get all three URLs in AMQP_URL and features keeps a ledger; every test ends with each confirmed row in
the CSV exactly once. The quorum queues have three members, so one node down leaves a majority: a new leader is
elected and rows keep flowing. Two nodes down leave none: producers wait and nothing confirmed is lost.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.topology import FEATURES, Y_PRED, Y_TRUE
from tests.helpers.queues import delete_queues
from tests.helpers.rabbit import RabbitCluster, RabbitNode
from tests.helpers.services import Services, stop_gracefully
from tests.helpers.stream import Stream
from tests.helpers.waiting import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.cluster]

QUEUES = (FEATURES, Y_TRUE, Y_PRED)
CONNECTED = re.compile(r"ready: connected to [\d.]+:(\d+)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitCluster]:
    cluster = RabbitCluster(tmp_path_factory.mktemp("cluster"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def stream(cluster: RabbitCluster, make_services: Callable[..., Services], logs_dir: Path) -> Stream:
    """A stream on the whole cluster, every node up and the pipeline's queues deleted."""
    for node in cluster.nodes:
        if not node.running:
            node.start()
    wait_until(lambda: len(cluster.running_nodes()) == 3, 120, "all three nodes in the cluster", poll=1)
    delete_queues(cluster.nodes[0].url)
    return Stream(make_services(cluster.url), cluster.nodes[0].url, logs_dir)


class GapMeter:
    """Watches the CSV grow in a thread; ``longest`` is the longest time between two growths it saw."""

    def __init__(self, csv: Path) -> None:
        self._csv, self.longest = csv, 0.0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> GapMeter:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped.set()
        self._thread.join()

    def _watch(self) -> None:
        size, grew = self._csv.stat().st_size, time.monotonic()
        while not self._stopped.wait(0.01):
            now, current = time.monotonic(), self._csv.stat().st_size
            if current != size:
                self.longest = max(self.longest, now - grew)
                size, grew = current, now


def connected_node(stream: Stream, cluster: RabbitCluster, name: str) -> RabbitNode | None:
    """The node the latest start of service ``name`` says it is connected to."""
    ports = CONNECTED.findall(stream.services.log(name))
    return cluster.by_port(int(ports[-1])) if ports else None


def rejoin(cluster: RabbitCluster, *nodes: RabbitNode) -> None:
    for node in nodes:
        node.launch()
    for node in nodes:
        node.wait_until_up()
    wait_until(lambda: len(cluster.running_nodes()) == 3, 120, "the nodes to rejoin the cluster", poll=1)


def test_every_queue_has_a_member_on_each_node_and_a_killed_leader_loses_nothing(
    stream: Stream, cluster: RabbitCluster
) -> None:
    stream.start(FEATURES_INTERVAL="0.002")  # no limit: the rows after the kill must come however slow the machine
    stream.wait_for_rows(1000)
    for queue in QUEUES:
        assert set(cluster.members(queue)) == {node.name for node in cluster.nodes}, f"{queue} lacks a member"
    leader = cluster.leader(FEATURES)
    with GapMeter(stream.csv) as gaps:
        leader.kill()
        stream.wait_for_rows(stream.rows() + 1000)
    print(f"\nleader {leader.name} SIGKILLed: longest gap between CSV writes {gaps.longest:.2f} s (aim: 10 s)")
    rejoin(cluster, leader)
    stop_gracefully(stream.services, "features")
    stream.finish()


def test_each_service_moves_to_another_node_when_its_node_is_killed(stream: Stream, cluster: RabbitCluster) -> None:
    stream.start(FEATURES_INTERVAL="0.002")  # no limit: features must still run when its node is killed
    stream.wait_for_rows(500)
    for name in ("features", "model", "metric"):
        node = connected_node(stream, cluster, name)
        assert node is not None, f"{name} names no node"
        node.kill()
        moved = lambda n=name, old=node: connected_node(stream, cluster, n) not in (None, old)  # noqa: E731
        wait_until(moved, 60, f"{name} to connect to another node than {node.name}")
        print(f"\n{name}: {node.name} killed, now on {connected_node(stream, cluster, name).name}")  # type: ignore[union-attr]
        rejoin(cluster, node)
    stop_gracefully(stream.services, "features")
    stream.finish()


def test_two_nodes_down_hold_the_stream_and_it_resumes_when_they_return(stream: Stream, cluster: RabbitCluster) -> None:
    stream.start(FEATURES_INTERVAL="0.002")  # no limit: a features done before the nodes go down would have exited
    stream.wait_for_rows(500)
    down = cluster.nodes[:2]
    for node in down:
        node.kill()
    went_down = time.monotonic()
    every_service_alive = lambda: all(p.poll() is None for p in stream.services.processes.values())  # noqa: E731
    wait_until(lambda: not every_service_alive() or time.monotonic() - went_down >= 20, 30, "20 s with two nodes down")
    assert every_service_alive(), "a service exited while the cluster had no majority"
    rows_while_down = stream.rows()
    rejoin(cluster, *down)
    stream.wait_for_rows(stream.rows() + 500)  # features, still running, is heard again
    stop_gracefully(stream.services, "features")
    rows = stream.finish()
    print(f"\ntwo nodes down for 20 s: {rows_while_down} rows by then, the stream resumed and all {len(rows)} arrived")


def test_a_rolling_restart_of_every_node_loses_nothing(stream: Stream, cluster: RabbitCluster) -> None:
    stream.start(FEATURES_INTERVAL="0.002")  # no limit: rows flow through every restart, however slow the machine
    stream.wait_for_rows(500)
    for node in cluster.nodes:
        node.stop()
        rejoin(cluster, node)
    stream.wait_for_rows(stream.rows() + 500)
    stop_gracefully(stream.services, "features")
    stream.finish()
