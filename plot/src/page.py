"""plot's live page: both pictures and the numbers, on WEB_PORT, served by the standard library in its own threads.

Four routes answer, each a GET or HEAD: ``/`` (page.html: HTML, CSS and a little JavaScript, nothing from
elsewhere), ``/summary.json`` (the numbers of the latest refresh), ``/error_distribution.png`` and
``/error_over_time.png`` (the files plot last saved; a query string such as ``?v=3`` is ignored); another method on
them gets a 405. Anything else is a 404. The server only reads: the latest snapshot (replaced whole by the drawing
thread) and the picture files (replaced by a rename, so a reader gets a whole old or a whole new file). Each
connection has its own thread, and there are at most MAX_CONNECTIONS of them: the drawing loop never waits on a client.
A connection has REQUEST_TIMEOUT from its accept to send its whole request (a browser sends it in one packet), then
CLIENT_TIMEOUT to take the answer, however slowly the client trickles its bytes (a watchdog shuts its socket down at
the deadline); the connections past MAX_CONNECTIONS wait in the listen queue, in the order they came, for a slot. So a
client that trickles holds a slot REQUEST_TIMEOUT at most, and a new visitor behind the 128 the queue holds is served
within about five times that, whatever the others do.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import logging
import math
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import service

if TYPE_CHECKING:
    from plot_settings import Settings
    from snapshot import HasSnapshot, Snapshot

LOGGER = logging.getLogger("plot.page")

PAGE = Path(__file__).with_name("page.html")
PICTURE_ROUTES = {f"/{name}": name for name in ("error_distribution.png", "error_over_time.png")}
ROUTES = {"/", "/summary.json", *PICTURE_ROUTES}
REQUEST_TIMEOUT = 2.0  # seconds from a connection's accept to the end of its request's headers
CLIENT_TIMEOUT = 10.0  # seconds from the end of the request's headers to the last byte of its answer
MAX_CONNECTIONS = 32  # connections served at once; more wait in the listen queue for a slot
LISTEN_QUEUE = 128  # connections the kernel keeps waiting for a slot (the standard library's 5 would drop more)
SLOT_WAIT = 0.5  # seconds the accepting thread waits for a free slot before it looks whether it must stop


def summary(snapshot: Snapshot, now: float, stalled_after: float, run: str = "") -> dict[str, Any]:
    """The numbers for ``/summary.json``: the snapshot's, and the seconds since the last row as of ``now``.

    Each picture's path carries ``run`` (which start of plot drew it) and its version: a browser may keep it in its
    cache, and asks again when either changes.
    """
    since = None if snapshot.last_row_at is None else max(0.0, now - snapshot.last_row_at)
    numbers = {
        "rows": snapshot.rows,
        "mae": snapshot.mae,
        "rmse": snapshot.rmse,
        "median": snapshot.median,
        "p90": snapshot.p90,
        "p99": snapshot.p99,
        "bias": snapshot.bias,
        "rows_per_second": snapshot.rows_per_second,
        "seconds_since_last_row": since,
        "stalled": since is not None and since > stalled_after,
        "stalled_after": stalled_after,
        "drift": snapshot.drift,
        "waiting": _waiting(snapshot.waiting, now),
        "inputs": snapshot.inputs,
        "pictures": {
            name.removesuffix(".png"): f"/{name}?v={run}{version}" if version else None
            for name, version in snapshot.pictures.items()
        },
    }
    return _finite(numbers)


def _waiting(status: dict[str, Any] | None, now: float) -> dict[str, Any] | None:
    """What metric_status.json says of the halves waiting for their partner, as of ``now``; None if metric has not
    written it."""
    if status is None:
        return None
    waiting, oldest, written = status.get("waiting") or {}, status.get("oldest_created"), status.get("written_at")
    return {
        "y_true": waiting.get("y_true"),
        "y_pred": waiting.get("y_pred"),
        "oldest_seconds": None if not isinstance(oldest, int | float) else max(0.0, now - oldest),
        "paused": status.get("paused", []),
        "seconds_since_update": None if not isinstance(written, int | float) else max(0.0, now - written),
    }


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such a number becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


class Deadlines:
    """One thread that shuts a connection's socket down when its deadline passes.

    A socket timeout bounds each read, not a request: a client that sends a byte every few seconds would hold its
    connection for ever. Shutting the socket down ends the handler's pending read or write at once, with an error or
    end of file, and the handler's thread ends.
    """

    def __init__(self) -> None:
        self._due: list[tuple[float, int, socket.socket]] = []  # a heap of (deadline, order of adding, socket)
        self._open: dict[socket.socket, float] = {}  # the connections not closed yet, and their deadline now
        self._order = itertools.count()
        self._changed = threading.Condition()
        threading.Thread(target=self._watch, name="page-deadlines", daemon=True).start()

    def add(self, connection: socket.socket, seconds: float) -> None:
        """Shut ``connection`` down in ``seconds`` unless ``remove`` is called first; a later ``add`` replaces the
        deadline."""
        with self._changed:
            deadline = time.monotonic() + seconds
            heapq.heappush(self._due, (deadline, next(self._order), connection))
            self._open[connection] = deadline
            self._changed.notify()

    def remove(self, connection: socket.socket) -> None:
        """Forget ``connection``; called before it is closed, so that its number is never shut down once reused."""
        with self._changed:
            self._open.pop(connection, None)

    def _watch(self) -> None:
        while True:
            with self._changed:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._changed.wait(self._due[0][0] - time.monotonic() if self._due else None)
                deadline, _order, connection = heapq.heappop(self._due)
                if self._open.get(connection) == deadline:  # not closed, and no later deadline replaced this one
                    del self._open[connection]
                    with contextlib.suppress(OSError):  # reset by the client, say
                        connection.shutdown(socket.SHUT_RDWR)


class PageServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = LISTEN_QUEUE

    def __init__(self, address: tuple[str, int], source: HasSnapshot, logs_dir: Path, stalled_after: float) -> None:
        super().__init__(address, PageHandler)
        self.source, self.logs_dir, self.stalled_after = source, logs_dir, stalled_after
        self.page = PAGE.read_bytes()
        self.run = f"{int(time.time())}."  # a picture's version counts from 1 again when plot starts again
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._deadlines = Deadlines()

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept a connection once a slot is free: until then it waits in the listen queue, behind earlier ones."""
        if not self._slots.acquire(timeout=SLOT_WAIT):
            raise OSError("every connection slot is taken")  # serve_forever looks whether to stop, then comes back
        try:
            return super().get_request()
        except BaseException:
            self._slots.release()
            raise

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()  # no thread started, so none will release it
            raise

    def extend_deadline(self, connection: socket.socket) -> None:
        """The request's headers are in: the connection has CLIENT_TIMEOUT from now to take its answer."""
        self._deadlines.add(connection, CLIENT_TIMEOUT)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        self._deadlines.add(request, REQUEST_TIMEOUT)
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def shutdown_request(self, request: Any) -> None:
        self._deadlines.remove(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that goes away mid-answer is routine (a closed tab): no traceback for it."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            LOGGER.debug("%s went away: %s", client_address[0], error)
        else:
            LOGGER.exception("answering %s failed", client_address[0])


class PageHandler(BaseHTTPRequestHandler):
    server: PageServer
    timeout = CLIENT_TIMEOUT
    server_version = "plot"
    sys_version = ""

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        if parsed:
            self.server.extend_deadline(self.connection)
        return parsed

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def _refuse(self) -> None:
        """Any other method: 405 on a route (it only reads), 404 elsewhere; the body, if any, is never read."""
        if self._route() not in ROUTES:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        self.close_connection = True  # an unread body must not be taken for the next request
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse  # noqa: N815 (stdlib's names)

    def _route(self) -> str:
        return self.path.partition("?")[0]  # the standard library has already collapsed a leading "//"

    def _answer(self, *, with_body: bool) -> None:
        route = self._route()
        answer: tuple[bytes, str] | None = None
        if route == "/":
            answer = self.server.page, "text/html; charset=utf-8"
        elif route == "/summary.json":
            answer = self._summary()
        elif route in PICTURE_ROUTES:
            answer = self._picture(PICTURE_ROUTES[route])
        if answer is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        body, content_type = answer
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        # a picture's path names its version, so the browser may keep it: the page preloads a new version, then
        # shows it from the cache; the page and the numbers are never kept
        self.send_header("Cache-Control", "private, max-age=600" if content_type == "image/png" else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def _summary(self) -> tuple[bytes, str]:
        numbers = summary(self.server.source.snapshot, time.time(), self.server.stalled_after, self.server.run)
        return json.dumps(numbers).encode(), "application/json"

    def _picture(self, name: str) -> tuple[bytes, str] | None:
        try:
            return (self.server.logs_dir / name).read_bytes(), "image/png"
        except OSError:
            return None  # not drawn yet

    def log_message(self, format: str, *args: Any) -> None:
        LOGGER.debug("%s %s", self.address_string(), format % args)


def serve(config: Settings, source: HasSnapshot) -> PageServer | None:
    """Start the page on LISTEN_ADDRESS:WEB_PORT in a background thread; WEB_PORT=0 means no page."""
    if not config.web_port:
        return None

    def start(address: str, port: int) -> PageServer:
        server = PageServer((address, port), source, Path(config.common.logs_dir), config.stalled_after)
        threading.Thread(target=server.serve_forever, name="page", daemon=True).start()
        return server

    server = service.listen("WEB_PORT", config.common.listen_address, config.web_port, start)
    LOGGER.info("serving the page at http://%s:%d/", config.common.listen_address, config.web_port)
    return server
