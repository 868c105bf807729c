"""The entrypoint of metric and plot: the service runs as the owner of LOGS_DIR, or as 10001 if root owns it."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO

SCRIPT = REPO / "common" / "docker" / "run-as-logs-owner"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv, as in the images"
)


@pytest.fixture
def folder() -> Iterator[Path]:
    """A folder other users can reach (pytest's own temporary folders are root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="run-as-owner-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def run_as_owner(logs: Path) -> int:
    command = [str(SCRIPT), "sh", "-c", f"id -u && touch {logs}/written"]
    environment = os.environ | {"LOGS_DIR": str(logs)}
    result = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


def test_the_service_runs_as_the_owner_of_the_logs_folder(folder: Path) -> None:
    logs = folder / "logs"
    logs.mkdir()
    os.chown(logs, 4321, 4321)
    (logs / "metric_log.csv").touch()  # left by an older version that ran as root
    assert run_as_owner(logs) == 4321
    assert (logs / "written").stat().st_uid == 4321
    assert (logs / "metric_log.csv").stat().st_uid == 4321, "root's old files are handed over"


def test_a_logs_folder_of_roots_is_given_to_the_images_user(folder: Path) -> None:
    logs = folder / "logs"
    logs.mkdir()
    assert run_as_owner(logs) == 10001
    assert logs.stat().st_uid == 10001


def test_a_missing_logs_folder_is_created(folder: Path) -> None:
    assert run_as_owner(folder / "new") == 10001
