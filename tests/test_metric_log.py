import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline.metric_log import HEADER, MetricLog, format_row


def write_rows(path: Path, ids: list[str]) -> MetricLog:
    log = MetricLog(path)
    log.open()
    for index, row_id in enumerate(ids):
        log.append(row_id, float(index), 2.0 * index)
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
    real_write = os.pwrite
    short_write = lambda fd, data, offset: real_write(fd, bytes(data[:7]), offset)  # noqa: E731
    monkeypatch.setattr("pipeline.append_file.os.pwrite", short_write)
    log = MetricLog(tmp_path / "m.csv")
    log.open()
    for index in range(5):
        log.append(f"id{index}", 1.0, 2.0)
    assert log.sync() == 5
    log.close()
    assert (tmp_path / "m.csv").read_bytes() == HEADER + b"".join(format_row(f"id{i}", 1.0, 2.0) for i in range(5))


FILE_SIZE_LIMIT_RUN = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path
    from pipeline.metric_log import MetricLog

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit a write is short, then fails with EFBIG
    log = MetricLog(Path(sys.argv[1]))
    log.open()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (log.size + 1000, hard))
    for index in range(100):
        log.append(f"id-{index:04d}", 1.0, 2.0)
    try:
        log.sync()
        print("synced past the limit")
    except OSError as error:
        print(f"refused {error.errno} size {Path(sys.argv[1]).stat().st_size} written {log.size}")
    log.append("next-row", 5.0, 6.0)
    try:
        log.sync()
    except OSError:
        print("refused again")
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    print(f"synced {log.sync()}")
    log.close()
    """
)


def test_a_write_cut_short_by_a_full_disk_leaves_no_trace_and_goes_again_whole(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    run = subprocess.run(
        [sys.executable, "-c", FILE_SIZE_LIMIT_RUN, str(path)], capture_output=True, text=True, timeout=60, check=True
    )
    refused, again, synced = run.stdout.splitlines()
    header_size = len(HEADER)
    assert refused == f"refused 27 size {header_size} written {header_size}", "the torn part was cut at once"
    assert again == "refused again"
    assert synced == "synced 101", "the refused rows were kept for the next sync"
    expected = [format_row(f"id-{index:04d}", 1.0, 2.0) for index in range(100)] + [format_row("next-row", 5.0, 6.0)]
    assert path.read_bytes() == HEADER + b"".join(expected)


def test_a_new_file_is_made_to_last_by_syncing_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr("pipeline.append_file.os.fsync", fsync)
    write_rows(tmp_path / "m.csv", ["a"]).close()
    assert synced[0] == "folder", "the folder's entry for the new file is on disk before any row"
