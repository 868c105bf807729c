"""A file that is only ever appended to, in whole lines, each batch fsynced; a torn last line is cut on open."""

from __future__ import annotations

import logging
import os
from pathlib import Path

LOGGER = logging.getLogger(__name__)

READ_CHUNK = 1 << 20


def quote(field: str) -> str:
    """A CSV field as RFC 4180 writes it (quoted only when it holds a comma or a quote)."""
    return '"' + field.replace('"', '""') + '"' if "," in field or '"' in field else field


class AppendFile:
    """Buffered lines, written in one ``write`` and fsynced by ``sync``; reopening cuts a line a crash tore."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._buffer: list[bytes] = []
        self._fd = -1

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self._cut_torn_line()

    @property
    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def append(self, line: bytes) -> None:
        """Buffer one line (ending in a newline); it is on disk after the next ``sync``."""
        self._buffer.append(line)

    def sync(self) -> int:
        """Write the buffered lines in one write, fsync, and return how many there were."""
        lines = len(self._buffer)
        if lines:
            data = memoryview(b"".join(self._buffer))
            while data:  # a write may take only part of it (a full disk, a file-size limit): go on or raise
                data = data[os.write(self._fd, data) :]
            os.fsync(self._fd)
            self._buffer.clear()
        return lines

    def close(self) -> None:
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1

    def all_lines(self) -> list[bytes]:
        return os.pread(self._fd, self.size, 0).splitlines()

    def lines_after(self, offset: int) -> list[bytes]:
        """The lines past byte ``offset``."""
        return os.pread(self._fd, max(0, self.size - offset), offset).splitlines()

    def last_lines(self, count: int) -> list[bytes]:
        """Up to ``count`` last lines, oldest first, read backwards from the end."""
        end = self.size
        tail = b""
        while end > 0 and tail.count(b"\n") <= count:
            start = max(0, end - READ_CHUNK)
            tail = os.pread(self._fd, end - start, start) + tail
            end = start
        lines = tail.splitlines()
        if end > 0:
            lines = lines[1:]  # may start mid-line
        return lines[-count:] if count else []

    def replace_lines(self, lines: list[bytes]) -> None:
        """Atomically replace the whole file, buffer included, by ``lines`` (a temporary file renamed over it)."""
        self._buffer.clear()
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        with open(temporary, "wb") as file:
            file.write(b"".join(lines))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND)

    def _cut_torn_line(self) -> None:
        size = self.size
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
