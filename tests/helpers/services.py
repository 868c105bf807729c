"""The services run as processes from their files, as their images run them, each with its output in a log file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

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


def stop_gracefully(services: Services, *names: str) -> None:
    for name in names:
        services.signal(name, signal.SIGTERM)
    for name in names:
        assert services.wait(name, timeout=15) == 0, f"{name} did not exit 0 on SIGTERM"
