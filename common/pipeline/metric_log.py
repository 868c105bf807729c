"""The CSV contract: ``id,y_true,y_pred,absolute_error``, header once, one line per row, appended and fsynced."""

from __future__ import annotations

import csv
import io
import logging
import os
from collections import OrderedDict
from pathlib import Path

LOGGER = logging.getLogger(__name__)

HEADER = b"id,y_true,y_pred,absolute_error\n"
REMEMBERED_IDS = 100_000
READ_CHUNK = 1 << 20


def format_row(message_id: str, y_true: float, y_pred: float) -> bytes:
    if any(char in message_id for char in ',"'):
        message_id = '"' + message_id.replace('"', '""') + '"'
    return f"{message_id},{y_true!r},{y_pred!r},{abs(y_true - y_pred)!r}\n".encode()


class MetricLog:
    """Appends rows to the CSV and remembers the ids of the last ``remember`` rows, also across restarts."""

    def __init__(self, path: Path, remember: int = REMEMBERED_IDS) -> None:
        self.path = path
        self._remember = remember
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._buffer: list[bytes] = []
        self._fd = -1

    def open(self) -> None:
        """Open for appending: cut a torn last line, write the header into an empty file, recall recent ids."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self._cut_torn_line()
        if os.fstat(self._fd).st_size == 0:
            os.write(self._fd, HEADER)
            os.fsync(self._fd)
        for message_id in self._read_last_ids():
            self._note(message_id)
        LOGGER.info("appending to %s; %d recent ids remembered", self.path, len(self._ids))

    def __contains__(self, message_id: str) -> bool:
        return message_id in self._ids

    def append(self, message_id: str, y_true: float, y_pred: float) -> None:
        """Buffer a row; it is on disk after the next ``sync``."""
        self._buffer.append(format_row(message_id, y_true, y_pred))
        self._note(message_id)

    def sync(self) -> int:
        """Write buffered rows in one write, fsync, and return how many there were."""
        rows = len(self._buffer)
        if rows:
            os.write(self._fd, b"".join(self._buffer))
            os.fsync(self._fd)
            self._buffer.clear()
        return rows

    def close(self) -> None:
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1

    def _note(self, message_id: str) -> None:
        self._ids[message_id] = None
        if len(self._ids) > self._remember:
            self._ids.popitem(last=False)

    def _cut_torn_line(self) -> None:
        size = os.fstat(self._fd).st_size
        if size == 0 or os.pread(self._fd, 1, size - 1) == b"\n":
            return
        keep = self._end_of_last_full_line(size)
        LOGGER.warning("cutting a torn last line of %d bytes from %s", size - keep, self.path)
        os.ftruncate(self._fd, keep)
        os.fsync(self._fd)

    def _end_of_last_full_line(self, size: int) -> int:
        end = size
        while end > 0:
            start = max(0, end - READ_CHUNK)
            newline = os.pread(self._fd, end - start, start).rfind(b"\n")
            if newline >= 0:
                return start + newline + 1
            end = start
        return 0

    def _read_last_ids(self) -> list[str]:
        """Ids of up to ``remember`` last rows, oldest first, read backwards from the end of the file."""
        end = os.fstat(self._fd).st_size
        tail = b""
        while end > 0 and tail.count(b"\n") <= self._remember:
            start = max(0, end - READ_CHUNK)
            tail = os.pread(self._fd, end - start, start) + tail
            end = start
        lines = tail.splitlines()
        if end > 0:
            lines = lines[1:]  # may start mid-line
        lines = lines[-self._remember :]
        ids = [row[0] for row in csv.reader(io.StringIO(b"\n".join(lines).decode())) if row]
        return [message_id for message_id in ids if message_id != "id"]


class CsvTail:
    """Reads the absolute errors of rows appended since the last call; only complete lines count."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._inode: int | None = None

    def read_new(self) -> tuple[list[float], bool]:
        """Return (errors of new rows, whether the file was replaced or truncated since the last read)."""
        try:
            with open(self.path, "rb") as file:
                stat = os.fstat(file.fileno())
                restarted = self._inode is not None and (stat.st_ino != self._inode or stat.st_size < self._offset)
                if restarted:
                    self._offset = 0
                self._inode = stat.st_ino
                file.seek(self._offset)
                data = file.read(stat.st_size - self._offset)
        except FileNotFoundError:
            restarted = self._inode is not None
            self._inode, self._offset = None, 0
            return [], restarted
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        return _absolute_errors(complete), restarted


def _absolute_errors(lines: bytes) -> list[float]:
    errors = []
    for line in lines.splitlines():
        try:
            errors.append(float(line.rsplit(b",", 1)[1]))
        except (IndexError, ValueError):
            continue  # the header, or a line no row of ours looks like
    return errors
