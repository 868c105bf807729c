"""Real parts for the tests: private RabbitMQ nodes, service processes, and reading what they wrote."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pika
import pika.exceptions

from pipeline.topology import FEATURES, Y_PRED, Y_TRUE, Y_TRUE_DELAYED, dead_letter_queue

REPO = Path(__file__).resolve().parents[1]
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
QUEUES = [FEATURES, Y_TRUE, Y_PRED]
ALL_QUEUES = [*QUEUES, *(dead_letter_queue(queue) for queue in QUEUES), Y_TRUE_DELAYED]
HEADER = ["id", "y_true", "y_pred", "absolute_error"]
CTL_PORTS = 10  # distribution ports a cluster's CLI calls may use (by default 35672-35682, shared by every cluster)


def wait_until(condition: Callable[[], Any], timeout: float, what: str, poll: float = 0.05) -> Any:
    """Return the first truthy value of ``condition()``; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)


LOWEST_PORT = 10_000
PICK = random.SystemRandom()  # not the random module's generator, which a seeded test may have made predictable


def ephemeral_ports() -> range:
    """The ports the kernel hands to outgoing connections."""
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return range(int(low), int(high) + 1)


def free_port(count: int = 1) -> int:
    """A free loopback port (the first of ``count``) below the kernel's ephemeral range.

    A port the kernel picked for us (bind to port 0) comes from the range it also gives to outgoing connections, so
    between the pick and a server's bind a client socket (a node's distribution link, a service's AMQP connection)
    could take it: seen here as a cluster node failing with eaddrinuse. Below that range only servers bind.
    """
    below = ephemeral_ports().start
    while True:
        first = PICK.randrange(LOWEST_PORT, below - count)
        if all(_bindable(port) for port in range(first, first + count)):
            return first


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_range(count: int, avoid: set[int]) -> int:
    """The first of ``count`` consecutive free ports, none of them in ``avoid``."""
    while True:
        first = free_port(count)
        ports = range(first, first + count)
        if not avoid.intersection(ports) and not any(port_open(port) for port in ports):
            return first


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class RabbitNode:
    """A private rabbitmq-server on free loopback ports, its data in ``base``; survives its own restarts.

    ``name`` and ``environment`` are for the nodes of a cluster (their names, shared cookie and configuration).
    """

    def __init__(self, base: Path, name: str = "", environment: dict[str, str] | None = None) -> None:
        self.base = base
        self.port = free_port()
        self.dist_port = free_port()
        self.name = name or f"test{self.port}@localhost"
        self.environment = environment or {}
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def start(self, timeout: float = 90) -> None:
        self.launch()
        self.wait_until_up(timeout)

    def launch(self) -> None:
        """Start the node without waiting for it (the nodes of a cluster start in parallel)."""
        self.base.mkdir(parents=True, exist_ok=True)
        environment = (
            os.environ
            | {
                "RABBITMQ_NODENAME": self.name,
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
                "RABBITMQ_LOG_BASE": str(self.base / "log"),
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
                "ERL_EPMD_ADDRESS": "127.0.0.1",
            }
            | self.environment
        )
        output = open(self.base / "server.out", "ab")  # noqa: SIM115 (the node outlives this call)
        self._process = subprocess.Popen(
            [RABBITMQ_SERVER], env=environment, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        output.close()

    def wait_until_up(self, timeout: float = 90) -> None:
        wait_until(self._accepts_amqp, timeout, f"RabbitMQ node {self.name} to accept AMQP", poll=0.2)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60) -> None:
        """Signal the node's whole process group and wait until every process of it is gone."""
        if self._process is None:
            return
        script, self._process = self._process, None
        try:
            os.killpg(script.pid, signum)
        except ProcessLookupError:
            return
        wait_until(lambda: not _group_alive(script), timeout, f"RabbitMQ node {self.name} to exit")
        wait_until(lambda: not port_open(self.port), timeout, f"port {self.port} to close")

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the node's whole process group (SIGSTOP: a node that no longer answers)."""
        assert self._process is not None, "the node is not running"
        os.killpg(self._process.pid, signum)

    @property
    def running(self) -> bool:
        """Whether the node started last is still up (False once it has exited, killed or not)."""
        return self._process is not None and _group_alive(self._process)

    def ctl(self, tool: str, *arguments: str, environment: dict[str, str] | None = None) -> str:
        """Run ``rabbitmqctl`` or ``rabbitmq-queues`` against this node; fail with what the tool said."""
        command = [str(Path(RABBITMQ_SERVER).with_name(tool)), "-n", self.name, *arguments]
        result = subprocess.run(
            command, env=os.environ | (environment or {}), capture_output=True, text=True, timeout=60, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(arguments)}: {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout

    def log_tail(self, lines: int = 40) -> str:
        """The end of the node's own log: why it stopped, if it did."""
        log = self.base / "log" / f"{self.name}.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"

    def _accepts_amqp(self) -> bool:
        try:
            pika.BlockingConnection(pika.URLParameters(self.url)).close()
        except pika.exceptions.AMQPError:
            return False
        return True


class RabbitCluster:
    """Three nodes of Debian's rabbitmq-server on loopback, formed into one cluster by ``classic_config``.

    Each node has its own name, AMQP and distribution ports and data folder; all share one Erlang cookie (a private
    HOME) and one configuration file naming the three. The CLI tools get a distribution port range of their own, so
    that they do not collide with another cluster's.
    """

    def __init__(self, base: Path, size: int = 3) -> None:
        self.base = base
        prefix = f"cluster{free_port()}"
        names = [f"{prefix}-{index}@localhost" for index in range(1, size + 1)]
        home = base / "home"
        home.mkdir(parents=True)
        cookie = home / ".erlang.cookie"
        cookie.write_text(prefix.upper() + "COOKIE")
        cookie.chmod(0o400)
        config = base / "rabbitmq.conf"
        config.write_text(
            "cluster_formation.peer_discovery_backend = classic_config\n"
            + "".join(f"cluster_formation.classic_config.nodes.{i} = {name}\n" for i, name in enumerate(names, 1))
        )
        shared = {"HOME": str(home), "RABBITMQ_CONFIG_FILE": str(config)}
        self.nodes = [RabbitNode(base / name.split("@")[0], name=name, environment=shared) for name in names]
        taken = {port for node in self.nodes for port in (node.port, node.dist_port)}
        ctl_ports = free_port_range(CTL_PORTS, avoid=taken)
        self.cli_environment = {
            "HOME": str(home),
            "RABBITMQ_CTL_DIST_PORT_MIN": str(ctl_ports),
            "RABBITMQ_CTL_DIST_PORT_MAX": str(ctl_ports + CTL_PORTS - 1),
        }

    @property
    def url(self) -> str:
        """AMQP_URL for the services: every node's URL, separated by commas."""
        return ",".join(node.url for node in self.nodes)

    def start(self, timeout: float = 120) -> None:
        """Start the nodes in parallel and wait until all three run as one cluster."""
        for node in self.nodes:
            node.launch()
        try:
            for node in self.nodes:
                node.wait_until_up(timeout)
            formed = lambda: self.running_nodes() == {n.name for n in self.nodes}  # noqa: E731
            wait_until(formed, timeout, "the cluster to form", poll=1)
        except AssertionError as error:  # say why: each node's own account of its boot
            logs = "".join(f"\n--- {node.name} ---\n{node.log_tail()}" for node in self.nodes)
            raise AssertionError(f"{error}{logs}") from None

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()

    def ctl(self, tool: str, *arguments: str, node: RabbitNode | None = None) -> str:
        """Run ``rabbitmqctl`` or ``rabbitmq-queues`` against ``node`` (by default the first one running)."""
        target = node or next(n for n in self.nodes if n.running)
        return target.ctl(tool, *arguments, environment=self.cli_environment)

    def running_nodes(self) -> set[str]:
        try:
            status = json.loads(self.ctl("rabbitmqctl", "cluster_status", "--formatter", "json"))
        except (RuntimeError, StopIteration, json.JSONDecodeError):
            return set()
        return set(status.get("running_nodes", []))

    def members(self, queue: str) -> dict[str, str]:
        """Each member of quorum queue ``queue``: node name -> Raft state (leader, follower, ...)."""
        rows = json.loads(self.ctl("rabbitmq-queues", "quorum_status", queue, "--formatter", "json"))
        return {row["Node Name"]: row["Raft State"] for row in rows}

    def leader(self, queue: str) -> RabbitNode:
        states = self.members(queue)
        name = next(name for name, state in states.items() if state == "leader")
        return self.by_name(name)

    def by_name(self, name: str) -> RabbitNode:
        return next(node for node in self.nodes if node.name == name)

    def by_port(self, port: int) -> RabbitNode:
        return next(node for node in self.nodes if node.port == port)


def _group_alive(script: subprocess.Popen[bytes]) -> bool:
    """Whether any process of the group the start script leads still runs (the script itself is reaped first)."""
    script.poll()
    try:
        os.killpg(script.pid, 0)
    except ProcessLookupError:
        return False
    return True


def delete_queues(url: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    for queue in ALL_QUEUES:
        channel.queue_delete(queue)
    connection.close()


def queue_depths(url: str) -> dict[str, int]:
    """Ready messages in each queue of the pipeline that exists."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    depths = {}
    for queue in ALL_QUEUES:
        channel = connection.channel()
        try:
            depths[queue] = channel.queue_declare(queue, passive=True).method.message_count
            channel.close()
        except pika.exceptions.ChannelClosedByBroker:
            continue
    connection.close()
    return depths


def consumer_count(url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    count = connection.channel().queue_declare(queue, passive=True).method.consumer_count
    connection.close()
    return count


QUIET = {"WEB_PORT": "0"}  # plot's page only where a test asks for it: processes of one test share the host's ports


class Services:
    """The service files run as processes, each with its output in ``<name>.log`` under ``folder``; ``code`` is the
    checkout they run from (another one than this, for a benchmark of two versions)."""

    def __init__(self, folder: Path, environment: dict[str, str], code: Path = REPO) -> None:
        self.folder = folder
        self.environment = environment
        self.code = code
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._log_offsets: dict[str, int] = {}

    def start(self, name: str, service: str | None = None, **extra: str) -> subprocess.Popen[bytes]:
        """Start ``service`` (by default the one called ``name``) as the process called ``name``."""
        service = service or name
        output = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        self._log_offsets[name] = output.tell()
        process = subprocess.Popen(
            [sys.executable, str(self.code / service / "src" / f"{service}.py")],
            env=os.environ | QUIET | self.environment | extra,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        output.close()
        self.processes[name] = process
        return process

    def signal(self, name: str, signum: int) -> None:
        self.processes[name].send_signal(signum)

    def kill(self, name: str) -> None:
        process = self.processes[name]
        process.kill()
        process.wait()

    def wait(self, name: str, timeout: float) -> int:
        return self.processes[name].wait(timeout)

    def is_ready(self, name: str) -> bool:
        """Whether the latest start of ``name`` has declared its queues and begun its work."""
        path = self.folder / f"{name}.log"
        with path.open("rb") as log:
            log.seek(self._log_offsets[name])
            return b" ready: " in log.read()

    def log(self, name: str) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def csv_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def csv_rows(path: Path) -> list[list[str]]:
    """The CSV's rows after the header, asserting the header is its first line and nowhere else."""
    return parse_rows(path.read_text() if path.exists() else "")


def parse_rows(text: str) -> list[list[str]]:
    lines = text.splitlines()
    assert lines and lines[0] == ",".join(HEADER), f"first line is {lines[:1]}"
    rows = list(csv.reader(lines[1:]))
    assert HEADER not in rows, "header written again"
    return rows


def row_count(path: Path) -> int:
    return max(0, len(csv_lines(path)) - 1)


def ledger_published_at(path: Path) -> dict[str, float]:
    """When features noted each row as published (Unix seconds), before its messages went out."""
    moments = {}
    for line in path.read_text().splitlines():
        if line.startswith("published "):
            _state, row_id, moment = line.split()
            moments[row_id] = float(moment)
    return moments


def ledger_ids(path: Path, state: str = "confirmed") -> list[str]:
    """Ids the features ledger notes as ``published`` or ``confirmed``."""
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.split()[1] for line in lines if line.startswith(state + " ")]


def drained(url: str) -> bool:
    return pipeline_queues_empty(queue_depths(url))


def pipeline_queues_empty(depths: dict[str, int]) -> bool:
    return all(depths[queue] == 0 for queue in (FEATURES, Y_TRUE, Y_PRED))


def stop_gracefully(services: Services, *names: str) -> None:
    for name in names:
        services.signal(name, signal.SIGTERM)
    for name in names:
        assert services.wait(name, timeout=15) == 0, f"{name} did not exit 0 on SIGTERM"


def publish_raw(url: str, messages: list[tuple[str, bytes]], created: int | None = None) -> None:
    """Publish ``messages`` persistently, confirmed; ``created``: their AMQP timestamp (none if None)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.confirm_delivery()
    for queue, body in messages:
        channel.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2, timestamp=created))
    connection.close()


def take_ids(url: str, queue: str) -> list[str]:
    """Take every message out of ``queue`` (a dead-letter queue, say) and return their ids."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    ids = []
    while True:
        method, _properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        ids.append(json.loads(body)["id"])
    connection.close()
    return ids


class CsvWatch:
    """When each id's row first appeared in the CSV, by reading what was appended at each ``look``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: dict[str, float] = {}
        self._offset, self._partial = 0, b""

    def look(self) -> int:
        """Read what is new; return how many rows have appeared."""
        if self.path.exists():
            with self.path.open("rb") as file:
                file.seek(self._offset)
                data = file.read()
            self._offset += len(data)
            now = time.time()
            lines = (self._partial + data).split(b"\n")
            self._partial = lines.pop()
            for row in csv.reader(line.decode() for line in lines):
                if row and row[0] != "id":
                    self.seen.setdefault(row[0], now)
        return len(self.seen)


class Stream:
    """features (with a ledger of confirmed ids), model and metric on one broker, and the checks that end a test."""

    def __init__(self, services: Services, url: str, logs_dir: Path) -> None:
        self.services, self.url = services, url
        self.csv = logs_dir / "metric_log.csv"
        self.ledger = logs_dir.parent / "ledger"

    def start(self, *consumers: str, **features_environment: str) -> None:
        """Start ``consumers`` (metric and model by default; ``model-2`` is a replica of model), then features."""
        for name in consumers or ("metric", "model"):
            self.services.start(name, service=name.split("-", maxsplit=1)[0])
        self.services.start("features", FEATURES_LEDGER=str(self.ledger), **features_environment)

    def rows(self) -> int:
        return row_count(self.csv)

    def wait_for_rows(self, rows: int, timeout: float = 60) -> None:
        wait_until(lambda: self.rows() >= rows, timeout, f"{rows} rows")

    def finish(self, expected: int | None = None, also: frozenset[str] = frozenset()) -> list[list[str]]:
        """Let features end (if limited), metric and model drain the queues and stop; check every row.

        ``also``: ids of rows the test published itself, beside features' rows.
        """
        if expected is not None:
            assert self.services.wait("features", timeout=120) == 0
        produced = expected if expected is not None else len(ledger_ids(self.ledger))
        self.wait_for_rows(produced + len(also), timeout=90)
        draining = [name for name in self.services.processes if name.startswith(("metric", "model"))]
        ready = lambda: all(self.services.is_ready(name) for name in draining)  # noqa: E731
        wait_until(ready, 60, "metric and model to be ready")
        wait_until(lambda: drained(self.url), 30, "the queues to drain")
        stop_gracefully(self.services, *draining)
        assert drained(self.url)
        return self.assert_exactly_once(produced, also)

    def assert_exactly_once(self, produced: int, also: frozenset[str] = frozenset()) -> list[list[str]]:
        """One row per confirmed id: none lost, none duplicated, none of an id never published."""
        rows = csv_rows(self.csv)
        ids = [row[0] for row in rows]
        confirmed = ledger_ids(self.ledger)
        assert len(set(ids)) == len(ids), f"{len(ids) - len(set(ids))} duplicated rows"
        assert len(confirmed) == produced
        assert set(confirmed) <= set(ids), f"{len(set(confirmed) - set(ids))} confirmed ids have no row"
        unexpected = set(ids) - set(ledger_ids(self.ledger, "published")) - also
        assert not unexpected, f"{len(unexpected)} rows of ids never published"
        return rows
