"""Taking up where the last run stopped: the halves that waited, and the rows written after the last commit.

The waiting halves come back from metric_waiting.sqlite (``Join.restore``). Rows metric_log.csv holds past the offset
the last commit saved were written just before a crash: their halves are done. A file never committed is a new one,
or one made just before a crash: the CSV's last ids count as done, and a journal of waiting halves from before
metric_waiting.sqlite (``metric_waiting.journal``) is adopted, committed, then deleted.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from shared import SIDES, Shared
from waiting import Half

LOGGER = logging.getLogger("metric")

UPGRADE_IDS = 100_000  # ids of the last rows of a CSV written before metric_waiting.sqlite existed
OLD_JOURNAL = "metric_waiting.journal"  # where waiting halves were kept before metric_waiting.sqlite


def take_up(shared: Shared) -> None:
    """Open the CSV and the waiting halves' file, and take up where the last run stopped."""
    saved = shared.open()
    written = _recover(shared, saved)
    shared.commit()
    if written:
        LOGGER.info("%d rows were written just before metric stopped; their halves are done", written)


def _recover(shared: Shared, saved: dict[str, int]) -> int:
    """Take up the waiting halves and the rows written after the last commit; return how many rows those were."""
    now = shared.clock()
    shared.join.restore(now)
    if "csv_offset" not in saved:  # never committed: a new file, or one made just before a crash
        _upgrade(shared, now)
        return 0
    offset = saved.get("csv_offset", 0)
    if offset > shared.log.size:
        LOGGER.warning("%s is shorter than metric last wrote it: it was replaced; reading it all", shared.log.path)
        offset = 0
    written = shared.log.ids_after(offset)
    if written:
        shared.join.written(written, int(now))
    return len(written)


def _upgrade(shared: Shared, now: float) -> None:
    """A CSV, and waiting halves, from before metric_waiting.sqlite: remember its last ids, adopt the halves."""
    shared.join.written(shared.log.last_ids(UPGRADE_IDS), int(now))
    journal = shared.logs / OLD_JOURNAL
    if journal.exists():
        halves = _old_journal_halves(journal, now)
        shared.join.add(halves)
        shared.commit()
        journal.unlink()
        LOGGER.info("took %d waiting halves over from %s", len(halves), journal)


def _old_journal_halves(path: Path, now: float) -> list[Half]:
    """The halves of a journal from before metric_waiting.sqlite (``side,id,value,arrived`` per line), as created
    ``now``: their partners may still be queued, and carry no creation time either."""
    halves = []
    with path.open(newline="") as file:
        for fields in csv.reader(file):
            try:
                side, row_id, value, _arrived = fields
                halves.append(Half(side, row_id, float(value), int(now), arrived=now))
            except ValueError:
                continue  # a torn last line
    return [half for half in halves if half.side in SIDES]
