"""plot's page and /summary.json over real HTTP from a real plot process: its routes, its numbers against the CSV,
the stalled state, and clients that are slow or hostile while the pictures must keep being redrawn."""

from __future__ import annotations

import contextlib
import http.client
import math
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pipeline.status import write_status
from tests.helpers.plot_page import Page, csv_numbers, start_plot, write_rows
from tests.helpers.services import Services
from tests.helpers.waiting import wait_until

PICTURES = ("error_distribution.png", "error_over_time.png")


@pytest.fixture
def page(tmp_path: Path, logs_dir: Path) -> Iterator[tuple[Page, Services, Path]]:
    services, port = start_plot(tmp_path, logs_dir, STALLED_AFTER="2", DRIFT_REFERENCE_ROWS="500", DRIFT_WINDOW="200")
    try:
        yield Page(port), services, logs_dir / "metric_log.csv"
    finally:
        services.stop_all()
        print(services.log("plot")[-3000:])


def test_only_the_named_routes_answer(page: tuple[Page, Services, Path]) -> None:
    client, _services, csv = page
    write_rows(csv, 300, seed=1)
    wait_until(lambda: all(client.summary()["pictures"].values()), 30, "both pictures drawn")
    status, headers, body = client.get("/")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b"/summary.json" in body
    assert b"http://" not in body and b"https://" not in body, "nothing from elsewhere: the page works offline"
    for name in PICTURES:
        status, headers, body = client.get(f"/{name}?v=7")
        assert (status, headers["Content-Type"], body[:8]) == (200, "image/png", b"\x89PNG\r\n\x1a\n")
    assert client.get("/summary.json", method="HEAD")[0] == 200
    for path in (
        "/index.html",
        "/metric_log.csv",
        "/page.html",
        "/plot.py",
        "/logs/",
        "/error_distribution.png/",
        "//error_distribution.png/",
        "http://127.0.0.1/summary.json",
        "/summary.json/x",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/../../etc/passwd",
        "/metrics",
        "/.error_distribution.png.tmp",
    ):
        assert client.get(path)[0] == 404, path
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        status, headers, _body = client.get("/summary.json", method=method)
        assert (status, headers["Allow"]) == (405, "GET, HEAD"), method
        assert client.get("/metric_log.csv", method=method)[0] == 404, method
    with socket.create_connection(("127.0.0.1", client.port), timeout=10) as raw:  # a path with no leading slash
        raw.sendall(b"GET error_distribution.png HTTP/1.0\r\n\r\n")
        assert raw.recv(64).startswith(b"HTTP/1.0 404")


def test_the_summary_holds_the_numbers_of_the_csv(page: tuple[Page, Services, Path]) -> None:
    client, _services, csv = page
    write_rows(csv, 5000, seed=2)
    wait_until(lambda: client.summary()["rows"] == 5000, 30, "5000 rows in the summary")
    written = csv.stat().st_mtime  # the CSV's last write, which plot also reads
    age_before = time.time() - written
    summary = client.summary()
    age_after = time.time() - written
    expected = csv_numbers(csv)
    for key in ("mae", "rmse", "bias"):
        assert math.isclose(summary[key], expected[key], rel_tol=1e-9), key
    for key in ("median", "p90", "p99"):  # from the log-bucket histogram: within 1 % of the row at that rank
        assert math.isclose(summary[key], expected[key], rel_tol=0.01), key
    assert summary["drift"]["alarm"] is False
    blocks = np.array_split(np.loadtxt(csv, delimiter=",", skiprows=1, usecols=3)[:500], 10)
    reference = float(np.median([block.mean() for block in blocks]))  # the median of the MAEs of 10 blocks
    assert math.isclose(summary["drift"]["reference_mae"], reference, rel_tol=1e-9)
    assert age_before <= summary["seconds_since_last_row"] <= age_after, "the age of the CSV's last write"


def test_the_summary_says_what_metric_says_of_the_waiting_halves(page: tuple[Page, Services, Path]) -> None:
    client, _services, csv = page
    assert client.summary()["waiting"] is None, "metric has written no status yet"
    now = time.time()
    status = {"waiting": {"y_true": 2, "y_pred": 3600}, "oldest_created": now - 3600, "paused": ["y_pred"]}
    write_status(csv.parent, status | {"positions": {}, "written_at": now})
    wait_until(lambda: client.summary()["waiting"] is not None, 30, "the status in the summary")
    waiting = client.summary()["waiting"]
    assert (waiting["y_true"], waiting["y_pred"], waiting["paused"]) == (2, 3600, ["y_pred"])
    assert 3600 <= waiting["oldest_seconds"] < 3600 + 30 and 0 <= waiting["seconds_since_update"] < 30


def test_stalled_appears_when_rows_stop_and_goes_when_they_come(page: tuple[Page, Services, Path]) -> None:
    client, _services, csv = page
    assert client.summary()["seconds_since_last_row"] is None and client.summary()["stalled"] is False
    write_rows(csv, 100, seed=3)
    wait_until(lambda: client.summary()["rows"] == 100, 30, "100 rows")
    wait_until(lambda: client.summary()["stalled"], 30, "the stalled state (STALLED_AFTER=2)")
    write_rows(csv, 100, seed=4)
    wait_until(lambda: not client.summary()["stalled"], 30, "the stalled state to clear")
    assert client.summary()["rows"] == 200


def test_slow_and_hostile_clients_do_not_stop_the_pictures(page: tuple[Page, Services, Path], logs_dir: Path) -> None:
    client, services, csv = page
    write_rows(csv, 300, seed=5)
    wait_until(lambda: all(client.summary()["pictures"].values()), 30, "both pictures drawn")
    picture = logs_dir / "error_distribution.png"
    stuck = socket.socket()  # served first, so that it holds a connection slot
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(("127.0.0.1", client.port))
    stuck.sendall(b"GET /error_distribution.png HTTP/1.1\r\nHost: x\r\n\r\n" * 50)  # pictures never read
    # then more connections than there are slots; those past MAX_CONNECTIONS wait in the listen queue
    silent = [socket.create_connection(("127.0.0.1", client.port)) for _ in range(40)]  # never send a request
    for connection in silent[:5]:  # within the slots
        connection.sendall(b"GET /summary.json HTTP/1.1\r\nHost: x\r\n")  # a request that never ends
    try:
        for round_ in range(3):
            before = picture.stat().st_ino
            write_rows(csv, 100, seed=10 + round_)
            wait_until(lambda before=before: picture.stat().st_ino != before, 30, "the picture redrawn")
    finally:
        for connection in [*silent, stuck]:
            connection.close()
    wait_until(lambda: client.rows_or_none() == 600, 30, "the page to answer again with every row")
    assert services.processes["plot"].poll() is None


class Tricklers:
    """Connections that each send a request one byte a second and never finish it; one cut by the page is opened
    again at once, so that the page's slots stay taken for as long as the page lets them."""

    REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000

    def __init__(self, port: int, count: int) -> None:
        self.port, self.cut, self.answered = port, 0, 0
        self.connections = [self._connect() for _ in range(count)]
        self.sent = [0] * count
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()

    def _connect(self) -> socket.socket:
        connection = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        connection.settimeout(None)  # blocking, so that MSG_DONTWAIT answers at once
        connection.sendall(self.REQUEST[:1])
        return connection

    def _trickle(self) -> None:
        while not self._stop.wait(1.0):
            for index, connection in enumerate(self.connections):
                self.sent[index] += 1
                try:
                    connection.sendall(self.REQUEST[self.sent[index] : self.sent[index] + 1])
                    if connection.recv(1, socket.MSG_DONTWAIT) != b"":
                        self.answered += 1  # the page answered a request not complete: it must not
                except BlockingIOError:
                    continue  # still open
                except OSError:
                    pass  # reset
                # the page cut it (end of file or reset): come back at once, at the end of the listen queue
                connection.close()
                self.cut += 1
                self.sent[index] = 0
                self.connections[index] = self._connect()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for connection in self.connections:
            connection.close()


def test_a_visitor_gets_the_page_while_slow_clients_trickle_into_every_slot(
    page: tuple[Page, Services, Path],
) -> None:
    client, services, _csv = page
    tricklers = Tricklers(client.port, 120)  # every one of the 32 slots, and 88 more waiting in the listen queue
    try:
        with pytest.raises((ConnectionError, TimeoutError)):  # every slot taken: no answer within a second
            probe = http.client.HTTPConnection("127.0.0.1", client.port, timeout=1)
            try:
                probe.request("GET", "/summary.json")
                probe.getresponse()
            finally:
                probe.close()
        # the page cuts a connection whose request is not in REQUEST_TIMEOUT (2 s) after it took it, so the queue
        # ahead of a visitor moves 32 every 2 s: about 8 s here (one old page let them trickle for ever, another
        # cut them after 10 s: 40 s). 25 s leaves a busy machine room; a visitor turned away comes back at once
        started = time.monotonic()
        status = wait_until(lambda: _get_or_none(client.port, "/", started + 25), 25, "the page for a new visitor")
        assert status == 200
        print(f"a visitor got the page {time.monotonic() - started:.1f} s after it first connected")
        assert tricklers.answered == 0, "the page answers no request that is not complete"
    finally:
        tricklers.close()
    assert services.processes["plot"].poll() is None


def _get_or_none(port: int, path: str, deadline: float) -> int | None:
    """The status of ``GET path``, waiting until ``deadline`` at most; None if the page closed the connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=max(0.1, deadline - time.monotonic()))
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    except (ConnectionError, TimeoutError):
        return None
    finally:
        connection.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs as LOGS_DIR needs root")
def test_a_full_disk_keeps_the_last_pictures_served_and_leaves_no_temporary_file(
    tmp_path: Path, logs_dir: Path
) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(logs_dir)], check=True)
    services = None
    try:
        services, port = start_plot(tmp_path, logs_dir, HEALTH_FILE=str(tmp_path / "healthy"))
        client, csv = Page(port), logs_dir / "metric_log.csv"
        write_rows(csv, 300, seed=20)
        wait_until(lambda: all(client.summary()["pictures"].values()), 30, "both pictures drawn")
        wait_until(lambda: client.summary()["rows"] == 300, 30, "300 rows")
        served = {name: client.get(f"/{name}")[2] for name in PICTURES}
        versions = client.summary()["pictures"]
        _fill(logs_dir / "filler", leave=16_384)  # room for the rows below, not for a picture
        write_rows(csv, 100, seed=21)  # the distribution and the error over time are due again
        assert shutil.disk_usage(logs_dir).free < min(len(picture) for picture in served.values()), "no room"
        # the summary is updated after the refresh's draw: 400 rows there, and the distribution failed to save
        wait_until(lambda: client.summary()["rows"] == 400, 30, "400 rows in the summary")
        write_rows(csv, 1, seed=22)  # then the error over time fails, and the distribution again
        wait_until(lambda: client.summary()["rows"] == 401, 30, "401 rows in the summary")
        assert services.processes["plot"].poll() is None
        assert not list(logs_dir.glob(".*.tmp")), "no temporary file left"
        assert client.get("/")[0] == 200
        assert {name: client.get(f"/{name}")[2] for name in PICTURES} == served, "the last good pictures"
        assert client.summary()["pictures"] == versions
        assert services.log("plot").count("cannot save") == 1, "one WARNING while it lasts"

        subprocess.run(["mount", "-o", "remount,size=64m", str(logs_dir)], check=True)  # room again; no new row
        wait_until(  # at the next refreshes, though no row came
            lambda: all(client.summary()["pictures"][key] != versions[key] for key in versions), 30, "both redrawn"
        )
        assert all(client.get(f"/{name}")[2] != served[name] for name in PICTURES)
        assert services.log("plot").count("pictures are saved again") == 1
        assert not list(logs_dir.glob(".*.tmp"))
        assert services.processes["plot"].poll() is None
    finally:
        if services is not None:
            services.stop_all()
            print(services.log("plot")[-3000:])
        subprocess.run(["umount", str(logs_dir)], check=True)


def _fill(path: Path, leave: int) -> None:
    """Fill the file system of ``path`` with ``path`` but ``leave`` bytes."""
    with path.open("wb", buffering=0) as filler:
        with contextlib.suppress(OSError):  # ENOSPC: full
            while filler.write(b"\0" * 4096):
                pass
        filler.truncate(max(0, filler.tell() - leave))
