import os
from pathlib import Path

import pytest

from pipeline.metric_log import HEADER, MetricLog, format_row


def write_rows(path: Path, ids: list[str]) -> MetricLog:
    log = MetricLog(path)
    log.open()
    for index, message_id in enumerate(ids):
        log.append(message_id, float(index), 2.0 * index)
    log.sync()
    return log


def test_rows_follow_a_single_header_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "metric_log.csv"
    write_rows(path, ["a", "b"]).close()
    write_rows(path, ["c"]).close()
    lines = path.read_bytes().splitlines(keepends=True)
    assert lines[0] == HEADER
    assert lines.count(HEADER) == 1
    assert [line.split(b",")[0] for line in lines[1:]] == [b"a", b"b", b"c"]


def test_a_row_holds_the_absolute_error() -> None:
    assert format_row("x", 3.0, 5.5) == b"x,3.0,5.5,2.5\n"
    assert format_row('a,"b', 1.0, 0.25) == b'"a,""b",1.0,0.25,0.75\n'


def test_sync_writes_buffered_rows_and_counts_them(tmp_path: Path) -> None:
    log = MetricLog(tmp_path / "m.csv")
    log.open()
    log.append("a", 1.0, 1.0)
    log.append("b", 1.0, 2.0)
    assert (tmp_path / "m.csv").read_bytes() == HEADER
    assert log.sync() == 2
    assert log.sync() == 0
    assert len((tmp_path / "m.csv").read_bytes().splitlines()) == 3


def test_a_torn_last_line_is_cut_on_open(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    write_rows(path, ["a", "b"]).close()
    with path.open("ab") as file:
        file.write(b"c,1.0,2")
    log = MetricLog(path)
    log.open()
    assert log.last_ids(1) == ["b"]
    log.append("c", 1.0, 2.0)
    log.close()
    assert path.read_bytes().endswith(b"\nc,1.0,2.0,1.0\n")
    assert path.read_bytes().count(b"c,") == 1


def test_a_torn_header_is_replaced_by_a_whole_one(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(b"id,y_tr")
    write_rows(path, ["a"]).close()
    assert path.read_bytes() == HEADER + b"a,0.0,0.0,0.0\n"


def test_the_ids_of_the_last_rows_and_of_those_past_an_offset(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    log = write_rows(path, [f"id{index}" for index in range(50)])
    offset = log.size
    assert log.last_ids(3) == ["id47", "id48", "id49"]
    assert len(log.last_ids(100)) == 50, "the header is no row"
    log.append("new", 1.0, 1.0)
    assert log.ids_after(offset) == [], "a row is past the offset once synced"
    log.sync()
    assert log.ids_after(offset) == ["new"]
    assert log.ids_after(0)[:2] == ["id0", "id1"]
    log.close()


def test_quoted_ids_are_read_as_written(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    write_rows(path, ['a,"b', "plain"]).close()
    log = MetricLog(path)
    log.open()
    assert log.last_ids(2) == ['a,"b', "plain"]


def test_a_write_that_takes_only_part_of_the_rows_goes_on_with_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write
    monkeypatch.setattr("pipeline.append_file.os.write", lambda fd, data: real_write(fd, bytes(data[:7])))
    log = MetricLog(tmp_path / "m.csv")
    log.open()
    for index in range(5):
        log.append(f"id{index}", 1.0, 2.0)
    assert log.sync() == 5
    log.close()
    assert (tmp_path / "m.csv").read_bytes() == HEADER + b"".join(format_row(f"id{i}", 1.0, 2.0) for i in range(5))
