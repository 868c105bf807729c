"""plot's watch on the inputs: each feature and the predictions against their reference, before any label comes.

The model replicas count the rows they predict in the bins of their reference and append the counts, a block of at
most 100 rows at a time, to files in ``LOGS_DIR/inputs`` (``pipeline.input_counts``). At each refresh ``InputDrift``
reads the new blocks of every replica, oldest first, and keeps a window of the newest blocks that hold at least
INPUT_DRIFT_WINDOW rows (the oldest block is dropped while the others still hold that many). After each block it scores
every column of the window against the reference with PSI (``pipeline.profile.psi``), once the window is full: a
column's alarm rises when its score exceeds INPUT_DRIFT_RAISE and clears when it falls below INPUT_DRIFT_CLEAR (in
between its state stays), each change one WARNING line naming the row of the inputs (every row of every block read so
far) at which it happened.

A replica counts with the reference of its model. When a replica starts with another one (a new model, or the first
replica of one), plot judges against that from then on: window and alarms start again, with one INFO line; blocks that
replicas still running the reference left behind send are read, and counted in the rows, but not judged.

The blocks of one refresh are judged together: the window after each block is a difference of cumulative sums, and the
scores of every block and column are one set of array operations, so a refresh costs about the same for one block as
for fifty.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.core import GaugeMetricFamily

from pipeline.input_counts import BLOCK_ROWS, FOLDER, Block, CountsReader
from pipeline.profile import SMALLEST_SHARE, Profile
from pipeline.settings import SettingsError, env_float, env_int

LOGGER = logging.getLogger("plot.inputs")

BATCH_BLOCKS = 512  # blocks judged at once at most: bounds the arrays of a long first read


@dataclass(frozen=True)
class InputDriftSettings:
    window: int = 1000  # rows the window holds at least
    raise_above: float = 0.2  # PSI above which a column's alarm rises
    clear_below: float = 0.1  # PSI below which it clears


MOST_WINDOW_ROWS = 1_000_000  # the window's blocks are kept: 10,000 of them at most


def load_input_drift_settings() -> InputDriftSettings:
    default = InputDriftSettings()
    # a block holds up to BLOCK_ROWS rows: a smaller window would be judged on one block, whatever its size
    window = env_int("INPUT_DRIFT_WINDOW", default.window, minimum=BLOCK_ROWS, maximum=MOST_WINDOW_ROWS)
    raise_above = env_float("INPUT_DRIFT_RAISE", default.raise_above)
    clear_below = env_float("INPUT_DRIFT_CLEAR", default.clear_below)
    if clear_below <= 0:
        raise SettingsError(f"INPUT_DRIFT_CLEAR must be above 0 (PSI is never below 0), got {clear_below:g}")
    if clear_below >= raise_above:
        raise SettingsError(
            f"INPUT_DRIFT_CLEAR ({clear_below:g}) must be below INPUT_DRIFT_RAISE ({raise_above:g}), "
            "so that a score between the two leaves the alarm as it is"
        )
    return InputDriftSettings(window, raise_above, clear_below)


@dataclass(frozen=True)
class InputChange:
    """A column's alarm rose (``alarm``) or cleared after row ``row`` of the inputs, with ``score`` over
    ``window_rows`` rows."""

    column: str
    row: int
    alarm: bool
    score: float
    window_rows: int


class Judge:
    """The window and the alarms of one reference.

    The window is kept as its blocks' counts (a row per block, concatenated over the columns like a block's line) and
    rows; its counts are whole numbers, so sums and differences of them are exact."""

    def __init__(self, reference: Profile, settings: InputDriftSettings) -> None:
        self.reference, self.settings = reference, settings
        self._bins = np.array([column.bins for column in reference.columns])
        self._column_starts = np.concatenate([[0], np.cumsum(self._bins)[:-1]])
        self._expected = np.maximum(
            np.concatenate([np.asarray(column.shares) for column in reference.columns]), SMALLEST_SHARE
        )
        self._blocks = np.zeros((0, reference.bins), dtype=np.int64)
        self._block_rows = np.zeros(0, dtype=np.int64)
        self.window_counts = np.zeros(reference.bins, dtype=np.int64)
        self.window_rows = 0
        self.scores: np.ndarray | None = None  # per column, once the window is full
        self.alarm = np.zeros(len(reference.columns), dtype=bool)
        self.alarm_since: list[int | None] = [None] * len(reference.columns)

    @property
    def blocks(self) -> int:
        """Blocks in the window now."""
        return len(self._block_rows)

    def add(self, counts: np.ndarray, rows: np.ndarray, ends: np.ndarray) -> list[InputChange]:
        """Take blocks in order: their ``counts`` (one line each), ``rows``, and the row of the inputs each ends at."""
        changes: list[InputChange] = []
        for start in range(0, len(rows), BATCH_BLOCKS):
            batch = slice(start, start + BATCH_BLOCKS)
            changes += self._add_batch(counts[batch], rows[batch], ends[batch])
        return changes

    def _add_batch(self, counts: np.ndarray, rows: np.ndarray, ends: np.ndarray) -> list[InputChange]:
        blocks = np.concatenate([self._blocks, counts])
        block_rows = np.concatenate([self._block_rows, rows])
        rows_before = np.concatenate([[0], np.cumsum(block_rows)])  # rows of the blocks before each index
        counts_before = np.concatenate([np.zeros((1, blocks.shape[1]), dtype=np.int64), np.cumsum(blocks, axis=0)])
        last = np.arange(len(self._block_rows), len(block_rows)) + 1  # one past each new block
        # the window after each new block starts at the latest block that leaves at least `window` rows from it on
        # (which never moves back, as the rows only grow); before the window is full, at the first block kept
        first = np.maximum(np.searchsorted(rows_before, rows_before[last] - self.settings.window, side="right") - 1, 0)
        window_counts = counts_before[last] - counts_before[first]
        window_rows = rows_before[last] - rows_before[first]
        full = window_rows >= self.settings.window
        scores = self.psi(window_counts)
        self._blocks, self._block_rows = blocks[first[-1] :].copy(), block_rows[first[-1] :].copy()
        self.window_counts, self.window_rows = window_counts[-1].copy(), int(window_rows[-1])
        self.scores = scores[-1] if full[-1] else None
        return self._changes(scores, full, ends, window_rows)

    def psi(self, counts: np.ndarray) -> np.ndarray:
        """PSI of every column of every line of ``counts`` against the reference (``pipeline.profile.psi``, for
        all at once): one row of scores per line, 0 for a column with no rows."""
        totals = np.add.reduceat(counts, self._column_starts, axis=1)
        per_bin = np.repeat(totals, self._bins, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            recent = np.maximum(counts / per_bin, SMALLEST_SHARE)
        terms = np.where(per_bin > 0, (recent - self._expected) * np.log(recent / self._expected), 0.0)
        return np.add.reduceat(terms, self._column_starts, axis=1)

    def _changes(
        self, scores: np.ndarray, full: np.ndarray, ends: np.ndarray, window_rows: np.ndarray
    ) -> list[InputChange]:
        changes: list[InputChange] = []
        for index, column in enumerate(self.reference.columns):
            above = np.flatnonzero(full & (scores[:, index] > self.settings.raise_above))
            below = np.flatnonzero(full & (scores[:, index] < self.settings.clear_below))
            at = 0
            while True:
                candidates = below if self.alarm[index] else above
                found = int(np.searchsorted(candidates, at))
                if found == len(candidates):
                    break
                block = int(candidates[found])
                self.alarm[index] = not self.alarm[index]
                row = int(ends[block])
                self.alarm_since[index] = row if self.alarm[index] else None
                score = float(scores[block, index])
                changes.append(InputChange(column.name, row, bool(self.alarm[index]), score, int(window_rows[block])))
                at = block + 1
        return sorted(changes, key=lambda change: change.row)  # stable: columns in their order within a block


class InputDrift:
    """Reads the counts in ``folder`` at each ``refresh`` and judges them against the newest reference."""

    def __init__(self, folder: Path, settings: InputDriftSettings | None = None) -> None:
        self.settings = settings or InputDriftSettings()
        self.folder = folder
        self.rows = 0  # rows of every block read, whatever its reference
        self.judge: Judge | None = None
        self._reader = CountsReader(folder)
        self._replicas: dict[str, str] = {}  # the reference of each replica's latest block judged
        self._pending: list[tuple[Block, int]] = []  # blocks to judge, each with the row of the inputs it ends at
        self._reading_fails = False

    def refresh(self, between: Callable[[], object] = lambda: None) -> list[InputChange]:
        """Read every new block and judge it; return the alarms' changes, each also logged. ``between`` is called
        between the chunks of a long read (to touch the health file)."""
        changes: list[InputChange] = []
        try:
            while True:
                changes += self._take(self._reader.read_new())
                if self._reader.caught_up:
                    break
                between()
        except OSError as error:  # the folder unreadable for a moment, say: the next refresh reads on
            self._reading_failed(error)
            return changes
        if self._reading_fails:
            LOGGER.warning("input counts in %s are read again", self.folder)
            self._reading_fails = False
        return changes

    def _take(self, blocks: list[Block]) -> list[InputChange]:
        changes: list[InputChange] = []
        for block in blocks:
            self.rows += block.rows
            judge = self.judge
            if judge is None or block.ref != judge.reference.id:
                reference = self._newer_reference(block)
                if reference is None:
                    continue
                changes += self._judge_pending()
                judge = self._switch(reference, block)
            if block.rows > 0 and len(block.counts) == judge.reference.bins:
                self._replicas[block.replica] = block.ref
                self._pending.append((block, self.rows))
        return changes + self._judge_pending()

    def _newer_reference(self, block: Block) -> Profile | None:
        """The reference of ``block`` if plot should judge against it from now on: a replica starts with it."""
        if self._replicas.get(block.replica) == block.ref:
            return None  # a replica still on a reference plot has left
        return self._reader.reference(block.ref)  # None: not saved yet, or unreadable (the reader logs why)

    def _judge_pending(self) -> list[InputChange]:
        if self.judge is None or not self._pending:
            return []
        counts = np.stack([block.counts for block, _end in self._pending])
        rows = np.array([block.rows for block, _end in self._pending], dtype=np.int64)
        ends = np.array([end for _block, end in self._pending], dtype=np.int64)
        self._pending = []
        changes = self.judge.add(counts, rows, ends)
        for change in changes:
            log_change(change, self.settings)
        return changes

    def _switch(self, reference: Profile, block: Block) -> Judge:
        first_row = self.rows - block.rows + 1
        about = f"reference {reference.id} ({reference.source}, {reference.rows:,} rows)"
        if self.judge is None:
            LOGGER.info("input drift: judging the inputs from row %s on against %s", f"{first_row:,}", about)
        else:
            LOGGER.info(
                "input drift: replica %s counts with a new %s from row %s of the inputs on; the window and the alarms "
                "start again, and blocks of reference %s are no longer judged",
                block.replica,
                about,
                f"{first_row:,}",
                self.judge.reference.id,
            )
        self.judge = Judge(reference, self.settings)
        return self.judge

    def _reading_failed(self, error: OSError) -> None:
        if not self._reading_fails:
            LOGGER.warning("cannot read the input counts in %s (%s); trying again at each refresh", self.folder, error)
            self._reading_fails = True

    def summary(self) -> dict[str, Any] | None:
        """The numbers for the page and the metrics: a new dict, never changed afterwards; None before a reference."""
        judge = self.judge
        if judge is None:
            return None
        reference = judge.reference
        return {
            "reference": {"id": reference.id, "source": reference.source, "rows": reference.rows},
            "window": self.settings.window,
            "window_rows": judge.window_rows,
            "raise": self.settings.raise_above,
            "clear": self.settings.clear_below,
            "rows": self.rows,
            "alarm": bool(judge.alarm.any()),
            "columns": self._columns(judge),
        }

    def _columns(self, judge: Judge) -> list[dict[str, Any]]:
        """Each column's score, state and shares, the highest score first (in the reference's order until scored)."""
        columns = judge.reference.columns
        parts = judge.reference.split(judge.window_counts)
        order = range(len(columns)) if judge.scores is None else np.argsort(-judge.scores, kind="stable")
        return [
            {
                "name": columns[index].name,
                "kind": "prediction" if index == len(columns) - 1 else "feature",
                "score": None if judge.scores is None else float(judge.scores[index]),
                "threshold": self.settings.raise_above,
                "alarm": bool(judge.alarm[index]),
                "alarm_since_row": judge.alarm_since[index],
                "edges": list(columns[index].edges),
                "reference": list(columns[index].shares),
                "recent": (parts[index] / parts[index].sum()).tolist() if parts[index].sum() else None,
            }
            for index in order
        ]


def counts_folder(logs_dir: Path) -> Path:
    return logs_dir / FOLDER


def log_change(change: InputChange, settings: InputDriftSettings) -> None:
    """One WARNING line per change of a column's alarm."""
    LOGGER.warning(
        "input drift alarm %s for %s at row %s of the inputs: PSI %.3g %s %g over the last %s rows",
        "raised" if change.alarm else "cleared",
        change.column,
        f"{change.row:,}",
        change.score,
        ">" if change.alarm else "<",
        settings.raise_above if change.alarm else settings.clear_below,
        f"{change.window_rows:,}",
    )


def metric_families(inputs: dict[str, Any] | None) -> Iterator[GaugeMetricFamily]:
    """``pipeline_input_drift_psi`` and ``pipeline_input_drift_alarm`` by ``feature`` (the predictions' column is
    ``prediction``); a column's score only once its window is full."""
    psi = GaugeMetricFamily(
        "pipeline_input_drift_psi",
        "PSI of the last INPUT_DRIFT_WINDOW rows of each input (and of the predictions) against the reference",
        labels=["feature"],
    )
    alarm = GaugeMetricFamily(
        "pipeline_input_drift_alarm", "1 while the input drift alarm of the column is up, else 0", labels=["feature"]
    )
    for column in inputs["columns"] if inputs else []:
        if column["score"] is not None:
            psi.add_metric([column["name"]], column["score"])
        alarm.add_metric([column["name"]], int(column["alarm"]))
    yield psi
    yield alarm
