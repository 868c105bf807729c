"""metric's CSV as the tests read it: its lines, its rows under the one header, and when each row appeared."""

from __future__ import annotations

import csv
import time
from pathlib import Path

HEADER = ["id", "y_true", "y_pred", "absolute_error"]


def csv_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def csv_rows(path: Path) -> list[list[str]]:
    """The CSV's rows after the header, asserting the header is its first line and nowhere else."""
    return parse_rows(path.read_text() if path.exists() else "")


def parse_rows(text: str) -> list[list[str]]:
    lines = text.splitlines()
    assert lines and lines[0] == ",".join(HEADER), f"first line is {lines[:1]}"
    rows = list(csv.reader(lines[1:]))
    assert HEADER not in rows, "header written again"
    return rows


def row_count(path: Path) -> int:
    return max(0, len(csv_lines(path)) - 1)


class CsvWatch:
    """When each id's row first appeared in the CSV, by reading what was appended at each ``look``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: dict[str, float] = {}
        self._offset, self._partial = 0, b""

    def look(self) -> int:
        """Read what is new; return how many rows have appeared."""
        if self.path.exists():
            with self.path.open("rb") as file:
                file.seek(self._offset)
                data = file.read()
            self._offset += len(data)
            now = time.time()
            lines = (self._partial + data).split(b"\n")
            self._partial = lines.pop()
            for row in csv.reader(line.decode() for line in lines):
                if row and row[0] != "id":
                    self.seen.setdefault(row[0], now)
        return len(self.seen)
