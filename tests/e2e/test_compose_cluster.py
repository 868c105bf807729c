"""The cluster overlay, as a user runs it: docker compose -f docker-compose.yml -f docker-compose.cluster.yml up.

Run on loopback as the single-broker stack is (tests/e2e/test_compose.py): host networking, so the three nodes get
distinct node names and ports from the override, their own cluster configuration naming them, and one port-mapper
daemon (epmd) of their own that outlives any node. Then: three healthy nodes, queues with three members, rows; one
node's process SIGKILLed from the host: rows keep flowing, its restart policy brings it back and it rejoins.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator

import pytest

from tests.e2e.compose import (
    PASSWORD,
    USER,
    Stack,
    assert_csv_sound,
    assert_memory_limited,
    is_png,
    shipped_files,
)
from tests.helpers.ports import free_port
from tests.helpers.waiting import wait_until

pytestmark = [pytest.mark.compose, pytest.mark.timeout(900), pytest.mark.usefixtures("stack_logs_on_failure")]

NODES = ("rabbit1", "rabbit2", "rabbit3")
SERVICES = ("features", "model", "metric", "plot")


def management_port(port: int) -> str:
    return f"-rabbitmq_management tcp_config [{{port,{port}}}]"


def loopback_override(amqp: list[int], epmd: int) -> str:
    nodes = []
    for name, port in zip(NODES, amqp, strict=True):
        nodes.append(
            f"""  {name}:
    <<: *loopback
    depends_on: {{epmd: {{condition: service_started}}}}
    environment:
      RABBITMQ_NODENAME: {name}@localhost
      RABBITMQ_NODE_PORT: "{port}"
      RABBITMQ_DIST_PORT: "{free_port()}"
      ERL_EPMD_PORT: "{epmd}"
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: "{management_port(free_port())}"
    volumes:
      - ./cluster.loopback.conf:/etc/rabbitmq/conf.d/20-cluster.conf:ro
"""
        )
    urls = ",".join(f"amqp://{USER}:{PASSWORD}@127.0.0.1:{port}/%2F" for port in amqp)
    return f"""\
# Keeps all traffic on loopback: host networking, so each node its own name and ports, and one epmd for all.
x-loopback: &loopback
  network_mode: host
  ports: !reset []
x-service: &service
  <<: *loopback
  build:
    network: host
  environment:
    AMQP_URL: "{urls}"
    METRICS_PORT: "0"  # host networking: the single-broker stack's test covers /metrics
services:
  epmd:
    image: rabbitmq:4.0-management
    network_mode: host
    entrypoint: ["epmd", "-address", "127.0.0.1", "-port", "{epmd}"]
    restart: unless-stopped
{"".join(nodes)}  cluster-formed:
    <<: *loopback
    environment:
      CLUSTER_NODE: rabbit1@localhost
      ERL_EPMD_PORT: "{epmd}"
  features: *service
  model: *service
  metric: *service
  plot:
    <<: *loopback
    build:
      network: host
    environment:
      METRICS_PORT: "0"
      WEB_PORT: "0"
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("cluster-stack")
    shipped_files(folder)
    amqp, epmd = [free_port() for _ in NODES], free_port()
    (folder / "cluster.loopback.conf").write_text(
        "cluster_formation.peer_discovery_backend = classic_config\n"
        + "".join(f"cluster_formation.classic_config.nodes.{i} = {name}@localhost\n" for i, name in enumerate(NODES, 1))
    )
    made = subprocess.run(["make", "cookie"], cwd=folder, capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr  # the cookie of this installation, as the README has a user make it
    stack = Stack(folder, ("docker-compose.yml", "docker-compose.cluster.yml"), loopback_override(amqp, epmd))
    yield stack
    stack.compose("down", "--volumes", "--remove-orphans", timeout=180)


def node_exec(stack: Stack, node: str, *command: str) -> str:
    [container] = stack.container_ids(node)
    result = subprocess.run(["docker", "exec", container, *command], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def members(stack: Stack, queue: str) -> set[str]:
    rows = json.loads(node_exec(stack, "rabbit1", "rabbitmq-queues", "quorum_status", queue, "--formatter", "json"))
    return {row["Node Name"] for row in rows}


def running_nodes(stack: Stack) -> set[str]:
    """The cluster's running nodes as rabbit1 sees them; none while its app is not running yet (after a restart the
    health check, a ping, passes before it does)."""
    try:
        status = json.loads(node_exec(stack, "rabbit1", "rabbitmqctl", "cluster_status", "--formatter", "json"))
    except AssertionError:
        return set()
    return set(status["running_nodes"])


def test_1_three_nodes_form_a_cluster_and_rows_flow_through_queues_with_three_members(stack: Stack) -> None:
    stack.compose("up", "--detach", "--build")
    wait_until(lambda: stack.healthy(*NODES, *SERVICES), 240, "the nodes and the services to be healthy", poll=1)
    assert running_nodes(stack) == {f"{name}@localhost" for name in NODES}
    stack.wait_for_more_rows(50)
    for queue in ("features", "y_true", "y_pred"):
        assert members(stack, queue) == {f"{name}@localhost" for name in NODES}, f"{queue} lacks a member"
    wait_until(lambda: is_png(stack.picture), 30, "a valid picture")
    assert_csv_sound(stack)


def test_2_the_cookie_is_on_no_command_line_nor_in_docker_inspect_and_every_container_has_a_memory_limit(
    stack: Stack,
) -> None:
    cookie = (stack.folder / "rabbitmq" / "erlang.cookie").read_text().strip()
    assert len(cookie) >= 32
    containers = [c for c in stack.container_ids_of_project() if stack.service_of(c) != "epmd"]  # epmd: the test's
    assert len(containers) == len(NODES) + 1 + len(SERVICES), "three nodes, cluster-formed and the four services"
    for container in containers:
        top = ["docker", "top", container, "-eo", "pid,args"]  # fails on the exited cluster-formed: no processes
        processes = subprocess.run(top, capture_output=True, text=True, check=False)
        assert cookie not in processes.stdout, f"the cookie is on a command line in {stack.service_of(container)}"
    inspected = subprocess.run(["docker", "inspect", *containers], capture_output=True, text=True, check=True)
    assert cookie not in inspected.stdout, "docker inspect shows the cookie"
    for node in NODES:  # each node runs with the installation's cookie, in the file RabbitMQ reads
        assert node_exec(stack, node, "cat", "/var/lib/rabbitmq/.erlang.cookie").strip() == cookie
        mode = node_exec(stack, node, "stat", "-c", "%a %U", "/var/lib/rabbitmq/.erlang.cookie").split()
        assert mode == ["600", "rabbitmq"]
    assert_memory_limited(stack, containers, brokers=NODES)


def test_3_a_node_killed_from_the_host_leaves_rows_flowing_and_rejoins(stack: Stack) -> None:
    restarts = stack.restarts("rabbit2")
    os.kill(stack.main_process("rabbit2"), signal.SIGKILL)
    stack.wait_for_more_rows(100)  # with two nodes of three, and then with the third back
    wait_until(lambda: stack.restarts("rabbit2") > restarts, 60, "rabbit2 to be restarted", poll=0.5)
    wait_until(lambda: len(running_nodes(stack)) == 3, 120, "rabbit2 to rejoin the cluster", poll=2)
    stack.wait_for_more_rows(50)
    assert_csv_sound(stack)


def test_4_a_restart_of_all_three_nodes_comes_back_by_itself(stack: Stack) -> None:
    """Every node stopped, then all started together: each waits for its peers, and the health checks let them."""
    stack.compose("stop", *NODES)
    rows = stack.rows()
    stack.compose("start", *NODES)
    wait_until(lambda: stack.healthy(*NODES, *SERVICES), 240, "the nodes and the services to be healthy", poll=1)
    wait_until(lambda: len(running_nodes(stack)) == 3, 120, "the three nodes to form the cluster again", poll=2)
    wait_until(lambda: stack.rows() >= rows + 50, 120, "50 more rows", poll=0.5)
    assert_csv_sound(stack)
