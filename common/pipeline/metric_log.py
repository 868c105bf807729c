"""The CSV contract: ``id,y_true,y_pred,absolute_error``, header once, one line per row, appended and fsynced."""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from pathlib import Path

from pipeline.append_file import AppendFile, quote

LOGGER = logging.getLogger(__name__)

HEADER = b"id,y_true,y_pred,absolute_error\n"
READ_LIMIT = 1 << 20  # bytes the plot reads from the CSV at once


def format_row(row_id: str, y_true: float, y_pred: float) -> bytes:
    return f"{quote(row_id)},{y_true!r},{y_pred!r},{abs(y_true - y_pred)!r}\n".encode()


class MetricLog:
    """Appends rows to the CSV; ``size`` is how far it is written, ``ids_after`` what was written past a point."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = AppendFile(path)

    def open(self) -> None:
        """Open for appending: cut a torn last line, write the header into an empty file."""
        self._file.open()
        if self._file.size == 0:
            self._file.append(HEADER)
            self._file.sync()

    @property
    def size(self) -> int:
        """Bytes written to the file (rows appended since the last ``sync`` not included)."""
        return self._file.size

    @property
    def unsynced(self) -> int:
        """Rows appended and not yet on disk."""
        return self._file.unsynced

    def ids_after(self, offset: int) -> list[str]:
        """Ids of the rows written past byte ``offset`` (the header is no row)."""
        return _ids(self._file.lines_after(offset))

    def last_ids(self, count: int) -> list[str]:
        """Ids of the last ``count`` rows."""
        return _ids(self._file.last_lines(count))

    def append(self, row_id: str, y_true: float, y_pred: float) -> None:
        """Buffer a row; it is on disk after the next ``sync``."""
        self._file.append(format_row(row_id, y_true, y_pred))

    def sync(self) -> int:
        """Write buffered rows in one write, fsync, and return how many there were."""
        return self._file.sync()

    def close(self) -> None:
        self._file.close()


def _ids(lines: list[bytes]) -> list[str]:
    return [row[0] for row in csv.reader(io.StringIO(b"\n".join(lines).decode())) if row and row[0] != "id"]


class CsvTail:
    """Reads the rows appended since the last call, at most ``READ_LIMIT`` bytes a call.

    Only complete lines count; ``caught_up`` tells whether the last call reached the end of the file, ``modified``
    when the file was last written (seconds since the epoch). A line that is no row with finite ``y_true`` and
    ``y_pred`` and a finite absolute error >= 0 (the header included) is skipped and counted in ``skipped``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.caught_up = True
        self.skipped = 0
        self.modified: float | None = None
        self._offset = 0
        self._inode: int | None = None

    def read_new(self, limit: int = READ_LIMIT) -> tuple[list[float], list[float], bool]:
        """Return the new rows' absolute errors and ``y_pred - y_true``, and whether the file was replaced or
        truncated since the last read."""
        try:
            with open(self.path, "rb") as file:
                stat = os.fstat(file.fileno())
                restarted = self._inode is not None and (stat.st_ino != self._inode or stat.st_size < self._offset)
                if restarted:
                    self._offset = 0
                self._inode, self.modified = stat.st_ino, stat.st_mtime
                file.seek(self._offset)
                data = file.read(min(stat.st_size - self._offset, limit))
        except FileNotFoundError:
            restarted = self._inode is not None
            self._inode, self._offset, self.caught_up, self.modified = None, 0, True, None
            return [], [], restarted
        complete = data[: data.rfind(b"\n") + 1]
        if not complete and len(data) == limit:
            complete = data  # a "line" longer than the limit is no row of ours: skip it rather than stall
        from_start = self._offset == 0 and complete.startswith(HEADER)
        rows = complete[len(HEADER) :] if from_start else complete
        self._offset += len(complete)
        self.caught_up = self._offset + len(data) - len(complete) >= stat.st_size
        errors, differences, skipped = _parse_rows(rows)
        self.skipped += skipped
        return errors, differences, restarted


def _parse_rows(lines: bytes) -> tuple[list[float], list[float], int]:
    """The absolute errors and ``y_pred - y_true`` of ``lines``, and how many lines were no row a picture can use."""
    errors, differences, skipped = [], [], 0
    for line in lines.splitlines():
        fields = line.rsplit(b",", 3)
        try:
            if len(fields) != 4:
                raise ValueError("not four fields")
            y_true, y_pred, error = float(fields[1]), float(fields[2]), float(fields[3])
            difference = y_pred - y_true
        except ValueError:
            skipped += 1  # the header, or a line no row of ours looks like
            continue
        if 0.0 <= error < math.inf and math.isfinite(difference):  # also refuses nan
            errors.append(error)
            differences.append(difference)
        else:
            skipped += 1
    return errors, differences, skipped
