"""How the inputs' bin counts go from the model replicas to plot: append-only files in ``LOGS_DIR/inputs``.

Each model replica counts the rows it predicts in the bins of its reference (``Profile.count``) and appends one JSON
line per block of at most ``BLOCK_ROWS`` rows to its own file, ``counts-<host>-<pid>.jsonl`` (a restarted container
keeps its host name and pid 1, so it goes on with its file). A line is ``{"t": <unix time the block closed>,
"ref": <reference id>, "rows": <rows in the block>, "counted": <rows the replica counted so far>, "counts": [...]}``.
The reference itself is saved once as ``reference-<id>.json``, so plot can read it. Plot adds the blocks of every
replica in the order they closed: its figures cover every row, not one replica's share.

The counts are statistics: a block that cannot be written (a full disk) is dropped, with one WARNING when that
starts and one when it stops, and the model goes on predicting. Nothing is ever cut from a file, which plot may be
reading: a write that stopped part way leaves a torn line, and the next write begins with a newline, so plot skips
the torn line and reads every block after it. A file past ``MOST_FILE_BYTES`` is renamed to ``….jsonl.1`` (replacing
the one before) and a new one begun; the reader keeps the renamed file open until it has read it to the end. Files
nobody wrote to for ``STALE_SECONDS`` are removed when a replica opens its file; a replica whose own file was removed
so opens it again at its next write.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from pipeline import profile
from pipeline.disk import describe
from pipeline.profile import Profile, ProfileError

LOGGER = logging.getLogger(__name__)

FOLDER = "inputs"  # under LOGS_DIR
BLOCK_ROWS = 100  # rows per block at most: the resolution, in rows, at which plot judges the inputs
BLOCK_SECONDS = 1.0  # a block with fewer rows closes after this long, so a slow stream shows too
MOST_FILE_BYTES = 8 << 20
STALE_SECONDS = 7 * 86_400
READ_LIMIT = 1 << 20  # bytes read from one file per call: plot holds at most this much of each at once


def replica_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def reference_path(folder: Path, reference_id: str) -> Path:
    return folder / f"reference-{reference_id}.json"


def learned_path(folder: Path, model_sha256: str) -> Path:
    """Where the reference learned from the stream for the model file with this hash is kept."""
    return folder / f"learned-{model_sha256[:16]}.json"


def learned(folder: Path, model_sha256: str) -> Profile | None:
    """The reference a replica learned before for this model, if one did."""
    path = learned_path(folder, model_sha256)
    try:
        return profile.load(path) if path.exists() else None
    except ProfileError as error:
        LOGGER.warning("ignoring %s: %s", path, error)
        return None


def keep_learned(folder: Path, candidate: Profile) -> Profile:
    """Keep ``candidate`` as the learned reference unless another replica kept one first; return the one kept.

    The file is linked into place, which fails if it exists: of replicas that learn at once, the first wins and the
    others adopt its reference, so that all count in the same bins."""
    path = learned_path(folder, candidate.model_sha256)
    temporary = profile.write_temporary(path, candidate.to_bytes())
    try:
        os.link(temporary, path)
        return candidate
    except FileExistsError:
        return learned(folder, candidate.model_sha256) or candidate
    finally:
        temporary.unlink(missing_ok=True)


class CountsWriter:
    """One replica's counts file: ``add`` counts predicted rows, ``flush`` (every fraction of a second) writes."""

    def __init__(self, folder: Path, reference: Profile, replica: str | None = None) -> None:
        self.folder = folder
        self.reference = reference
        self.path = folder / f"counts-{replica or replica_name()}.jsonl"
        self.counted = 0  # rows counted since start
        self.dropped = 0  # blocks of batches whose write failed (some of a batch may have made it whole)
        self._lines: list[bytes] = []  # closed blocks not written yet
        self._fd = -1
        self._inode = -1
        self._size = 0
        self._torn = False  # the file may end in part of a line: the next write begins with a newline
        self._reference_saved = False
        self._block = np.zeros(reference.bins, dtype=np.int64)
        self._block_rows = 0
        self._block_opened = time.monotonic()
        self._failing: str | None = None
        offsets = np.cumsum([0] + [column.bins for column in reference.columns[:-1]])
        self._offsets = offsets.astype(np.int64)

    def add(self, rows: np.ndarray, predictions: np.ndarray) -> None:
        """Count ``rows`` (one per line) and their predictions, in order, closing a block every BLOCK_ROWS rows."""
        if len(rows) == 0:
            return
        values = np.column_stack([np.asarray(rows, dtype=np.float64), np.asarray(predictions, dtype=np.float64)])
        bins = np.column_stack([column.bin_of(values[:, index]) for index, column in enumerate(self.reference.columns)])
        flat = bins + self._offsets  # each row's bin in the concatenated counts
        start = 0
        while start < len(flat):
            end = min(len(flat), start + BLOCK_ROWS - self._block_rows)
            self._block += np.bincount(flat[start:end].ravel(), minlength=len(self._block))
            self._block_rows += end - start
            self.counted += end - start
            start = end
            if self._block_rows >= BLOCK_ROWS:
                self._close_block()

    def flush(self) -> None:
        """Close a block older than BLOCK_SECONDS and write what is closed; a write that fails drops it."""
        if self._block_rows and time.monotonic() - self._block_opened >= BLOCK_SECONDS:
            self._close_block()
        if not self._lines and self._reference_saved:
            return
        try:
            self._write()
        except OSError as error:
            self._write_failed(error)
            return
        if self._failing is not None:
            LOGGER.warning("input counts are written again to %s (%d blocks were dropped)", self.path, self.dropped)
            self._failing = None

    def close(self) -> None:
        """Write the last rows counted; never raises (the counts are statistics)."""
        if self._block_rows:
            self._close_block()
        self.flush()
        self._close_file()

    def _close_block(self) -> None:
        line = {
            "t": round(time.time(), 3),
            "ref": self.reference.id,
            "rows": self._block_rows,
            "counted": self.counted,
            "counts": self._block.tolist(),
        }
        self._lines.append((json.dumps(line, separators=(",", ":")) + "\n").encode())
        self._block[:] = 0
        self._block_rows = 0
        self._block_opened = time.monotonic()

    def _write(self) -> None:
        if not self._reference_saved:
            path = reference_path(self.folder, self.reference.id)
            if not path.exists():
                self.reference.save(path)
            self._reference_saved = True
        self._open_file()
        data = (b"\n" if self._torn else b"") + b"".join(self._lines)
        self._torn = True  # until every byte is written: a write may stop part way (a full disk)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        self._torn = False
        self._lines.clear()
        self._size += len(data)
        if self._size > MOST_FILE_BYTES:
            self._close_file()
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))

    def _open_file(self) -> None:
        """Open the file unless it is open and still there (one idle for a week may have been removed)."""
        try:
            if self._fd >= 0 and os.stat(self.path).st_ino == self._inode:
                return
        except FileNotFoundError:
            pass
        self._close_file()
        remove_stale(self.folder)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        stat = os.fstat(self._fd)
        self._inode, self._size = stat.st_ino, stat.st_size
        self._torn = self._size > 0 and not ends_with_newline(self.path, self._size)

    def _close_file(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1

    def _write_failed(self, error: OSError) -> None:
        self.dropped += len(self._lines)
        self._lines.clear()
        if self._failing is None:
            self._failing = describe(error)
            LOGGER.warning(
                "cannot write input counts to %s (%s); dropping them until it can, predictions go on",
                self.path,
                self._failing,
            )


def ends_with_newline(path: Path, size: int) -> bool:
    with path.open("rb") as file:
        file.seek(size - 1)
        return file.read(1) == b"\n"


def remove_stale(folder: Path) -> None:
    """Remove counts files nobody wrote to for STALE_SECONDS (replicas long gone)."""
    now = time.time()
    for path in folder.glob("counts-*.jsonl*"):
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime > STALE_SECONDS:
                path.unlink()


@dataclass(frozen=True)
class Block:
    """Counts of up to BLOCK_ROWS rows of one replica, made with reference ``ref``."""

    t: float
    ref: str
    rows: int
    counts: np.ndarray
    replica: str


@dataclass
class _Tail:
    """One counts file being read: kept open, so that a file renamed away is still read to its end."""

    file: IO[bytes] | None = None
    inode: int = -1
    partial: bytes = b""
    caught_up: bool = True

    def read(self, path: Path) -> bytes:
        """The complete lines appended since the last call (those of a file renamed away first)."""
        try:
            inode: int | None = path.stat().st_ino
        except FileNotFoundError:
            inode = None
        data = b""
        self.caught_up = True
        if self.file is not None and inode != self.inode:  # renamed away: its rest first, READ_LIMIT at a time
            chunk = self.file.read(READ_LIMIT)
            if len(chunk) == READ_LIMIT:
                self.caught_up = False
                return self._complete(chunk)
            data = self._complete(chunk)
            self.file.close()
            self.file, self.partial = None, b""  # a torn line at its end is no block
        if self.file is None and inode is not None:
            with contextlib.suppress(FileNotFoundError):
                self.file = path.open("rb")
                self.inode = os.fstat(self.file.fileno()).st_ino
        if self.file is not None:
            chunk = self.file.read(READ_LIMIT)
            self.caught_up = len(chunk) < READ_LIMIT
            data += self._complete(chunk)
        return data

    def _complete(self, chunk: bytes) -> bytes:
        data = self.partial + chunk
        end = data.rfind(b"\n") + 1
        self.partial = data[end:]
        return data[:end]

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


@dataclass
class CountsReader:
    """plot's side: the blocks appended to every replica's file since the last call, oldest first."""

    folder: Path
    skipped: int = 0  # lines that were no block
    _tails: dict[Path, _Tail] = field(default_factory=dict)
    _references: dict[str, Profile | None] = field(default_factory=dict)

    @property
    def caught_up(self) -> bool:
        return all(tail.caught_up for tail in self._tails.values())

    def read_new(self) -> list[Block]:
        blocks: list[Block] = []
        paths = set(self.folder.glob("counts-*.jsonl")) | {path for path, tail in self._tails.items() if tail.file}
        for path in paths:
            tail = self._tails.setdefault(path, _Tail())
            replica = path.name.removeprefix("counts-").removesuffix(".jsonl")
            for line in tail.read(path).splitlines():
                if not line:
                    continue  # a writer ends a line torn by a failed write with a newline of its own
                block = self._parse(line, replica)
                if block is not None:
                    blocks.append(block)
        blocks.sort(key=lambda block: block.t)
        return blocks

    def reference(self, reference_id: str) -> Profile | None:
        """The reference with this id, as a replica saved it; None if there is none (yet) or it is unreadable."""
        if self._references.get(reference_id) is None:
            path = reference_path(self.folder, reference_id)
            try:
                self._references[reference_id] = profile.load(path) if path.exists() else None
            except ProfileError as error:
                LOGGER.warning("cannot use %s: %s", path, error)
                self._references[reference_id] = None
        return self._references[reference_id]

    def close(self) -> None:
        for tail in self._tails.values():
            tail.close()

    def _parse(self, line: bytes, replica: str) -> Block | None:
        try:
            data: dict[str, Any] = json.loads(line)
            counts = np.asarray(data["counts"], dtype=np.int64)
            block = Block(float(data["t"]), str(data["ref"]), int(data["rows"]), counts, replica)
            if counts.ndim != 1 or block.rows < 0 or (counts < 0).any():
                raise ValueError("negative counts")
        except (ValueError, TypeError, KeyError, AttributeError, ArithmeticError, RecursionError):
            self.skipped += 1  # whatever a line holds, it is skipped: 1e999 overflows, deep nesting recurses
            return None
        return block
