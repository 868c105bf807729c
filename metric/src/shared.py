"""What metric's pieces share: the broker and the clock, the CSV and the waiting halves' file, the join and the streams.

The join and the streams are those of the run the files were last opened for (``open``); until then there is no join,
and a sync joins nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from join import Join
from streams import Streams
from waiting import WaitingStore

from pipeline.broker_surface import BrokerSurface
from pipeline.disk import WriteTrouble
from pipeline.metric_log import MetricLog
from pipeline.topology import Y_PRED, Y_TRUE

SIDES = (Y_TRUE, Y_PRED)


class Shared:
    """metric's files and the state read by every piece; only ``commit`` writes the join to its file."""

    def __init__(self, logs: Path, broker: BrokerSurface, clock: Callable[[], float], orphan_timeout: float) -> None:
        self.logs = logs
        self.log = MetricLog(logs / "metric_log.csv")
        self.store = WaitingStore(logs / "metric_waiting.sqlite")
        self.broker = broker
        self.clock = clock
        self.orphan_timeout = orphan_timeout
        self.disk = WriteTrouble(f"{logs}/", broker.set_problem)
        self.streams = Streams({}, orphan_timeout)
        self._join: Join | None = None

    @property
    def join(self) -> Join:
        assert self._join is not None, "open() first"
        return self._join

    @property
    def has_join(self) -> bool:
        """Whether the files were opened: until then nothing was consumed, and there is nothing to join."""
        return self._join is not None

    def open(self) -> dict[str, int]:
        """Open the CSV and the waiting halves' file; return what the file saved at its last commit."""
        self.log.open()
        saved = self.store.open()
        self.streams = Streams(saved, self.orphan_timeout)
        self._join = Join(self.store, saved.get("next_seq", 1))
        return saved

    def close(self) -> None:
        self.store.close()
        with contextlib.suppress(OSError):  # after a failed write: the next start cuts what is torn
            self.log.close()

    def drop_join(self) -> None:
        """The files could not be opened: no join until a start succeeds."""
        self._join = None

    def commit(self) -> None:
        """Commit the join, with how far the CSV was written and how far each stream has come."""
        self.join.commit({"csv_offset": self.log.size} | self.streams.saved())
