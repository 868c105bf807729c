"""The project's programs run as processes: the services from their files, as their images run them, each with its
output in a log file, and model's scripts as make runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

UNREACHABLE = "amqp://guest:guest@127.0.0.1:1/%2F"  # start-up checks come before any connection; plot never connects
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


def run_train(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """What `make train DATASET_PATH=… TARGET_COLUMN=… MODEL_PATH=…` runs."""
    return run_model_script("train.py", environment)


def run_model_script(script: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """One of model/src's scripts (train.py, make_profile.py) run as make runs it, with ``environment`` added."""
    return subprocess.run(
        [sys.executable, str(REPO / "model" / "src" / script)],
        check=False,
        env=os.environ | environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line(output: str) -> str:
    """The only line of a program's ``output`` (a start-up failure is named in one line)."""
    lines = output.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]
