"""A file that is only ever appended to, in whole lines, each batch fsynced; a torn last line is cut on open.

A write that fails part way (a full disk, a quota, a file-size limit, an I/O error) leaves no trace: the batch is
written again from the same offset at the next ``sync``, so no line is ever torn, merged with the next, or lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

LOGGER = logging.getLogger(__name__)

READ_CHUNK = 1 << 20


def quote(field: str) -> str:
    """A CSV field as RFC 4180 writes it (quoted only when it holds a comma or a quote)."""
    return '"' + field.replace('"', '""') + '"' if "," in field or '"' in field else field


def fsync_directory(path: Path) -> None:
    """Make a file's creation, or a rename into ``path``, survive a crash of the machine."""
    directory = os.open(path, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class AppendFile:
    """Buffered lines, written and fsynced by ``sync`` at the end of what is safely written; reopening cuts a line
    a crash tore."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._buffer: list[bytes] = []
        self._fd = -1
        self._end = 0  # bytes safely written: the next batch goes here, whatever a failed write left behind it

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # not O_APPEND: pwrite must go where told
        fsync_directory(self.path.parent)  # at every open: one made by an open that failed after it counts too
        self._end = os.fstat(self._fd).st_size
        self._cut_torn_line()

    @property
    def size(self) -> int:
        """Bytes safely written (lines buffered since the last ``sync`` not included)."""
        return self._end

    @property
    def unsynced(self) -> int:
        """Lines buffered and not yet on disk."""
        return len(self._buffer)

    def append(self, line: bytes) -> None:
        """Buffer one line (ending in a newline); it is on disk after the next ``sync``."""
        self._buffer.append(line)

    def discard_last(self) -> None:
        """Forget the line appended last (not written yet)."""
        self._buffer.pop()

    def sync(self, *, durable: bool = True) -> int:
        """Write the buffered lines at the end, fsync (unless not ``durable``: a crash of the process loses nothing
        written, one of the machine may), and return how many there were. If that fails, the error is raised, the
        file cut back to where it was and the lines kept: the next ``sync`` writes them again."""
        lines = len(self._buffer)
        if lines:
            data = b"".join(self._buffer)
            try:
                self._write_at_end(data, durable)
            except OSError:
                with contextlib.suppress(OSError):  # cutting frees what was written; if it fails, pwrite overwrites
                    os.ftruncate(self._fd, self._end)
                raise
            self._end += len(data)
            self._buffer.clear()
        return lines

    def _write_at_end(self, data: bytes, durable: bool) -> None:
        view = memoryview(data)
        offset = self._end
        while view:  # a write may take only part of it (a full disk, a file-size limit): go on, or raise
            written = os.pwrite(self._fd, view, offset)
            view, offset = view[written:], offset + written
        if os.fstat(self._fd).st_size > offset:  # the rest of a batch that failed before, now rewritten shorter
            os.ftruncate(self._fd, offset)
        if durable:
            os.fsync(self._fd)

    def close(self) -> None:
        """Sync and close; lines that cannot be written then (a full disk) are dropped, and the error raised."""
        if self._fd >= 0:
            try:
                self.sync()
            finally:
                self._buffer.clear()
                os.close(self._fd)
                self._fd = -1

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

    def _cut_torn_line(self) -> None:
        size = self.size
        if size == 0 or os.pread(self._fd, 1, size - 1) == b"\n":
            return
        keep = self._end_of_last_full_line(size)
        LOGGER.warning("cutting a torn last line of %d bytes from %s", size - keep, self.path)
        os.ftruncate(self._fd, keep)
        os.fsync(self._fd)
        self._end = keep

    def _end_of_last_full_line(self, size: int) -> int:
        end = size
        while end > 0:
            start = max(0, end - READ_CHUNK)
            newline = os.pread(self._fd, end - start, start).rfind(b"\n")
            if newline >= 0:
                return start + newline + 1
            end = start
        return 0
