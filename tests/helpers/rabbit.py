"""Private rabbitmq-server nodes on loopback, alone or three formed into a cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pika
import pika.exceptions

from tests.helpers.ports import free_port, free_port_range, port_open
from tests.helpers.waiting import wait_until

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
CTL_PORTS = 10  # distribution ports a cluster's CLI calls may use (by default 35672-35682, shared by every cluster)


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
