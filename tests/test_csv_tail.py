from pathlib import Path

from pipeline.metric_log import CsvTail


def test_only_complete_new_lines_are_read(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    tail = CsvTail(path)
    assert tail.read_new() == ([], [], False)
    path.write_bytes(b"")
    assert tail.read_new() == ([], [], False)
    with path.open("ab") as file:
        file.write(b"id,y_true,y_pred,absolute_error\na,1.0,3.0,2.0\nb,1.0,1.5,0.")
    assert tail.read_new() == ([2.0], [2.0], False)
    with path.open("ab") as file:
        file.write(b"5\nc,2.0,2.0,0.0\n")
    assert tail.read_new() == ([0.5, 0.0], [0.5, 0.0], False)
    assert tail.read_new() == ([], [], False)


def test_a_replaced_or_truncated_file_is_read_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(b"id,y_true,y_pred,absolute_error\na,1.0,3.0,2.0\nb,1.0,4.0,3.0\n")
    tail = CsvTail(path)
    assert tail.read_new() == ([2.0, 3.0], [2.0, 3.0], False)
    path.write_bytes(b"id,y_true,y_pred,absolute_error\nc,1.0,2.0,1.0\n")
    assert tail.read_new() == ([1.0], [1.0], True)
    path.unlink()
    assert tail.read_new() == ([], [], True)


def test_lines_that_are_not_rows_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(b"id,y_true,y_pred,absolute_error\ngarbage\na,1.0,3.0,oops\nb,1.0,2.0,1.0\n")
    assert CsvTail(path).read_new() == ([1.0], [1.0], False)


def test_a_long_csv_is_read_in_bounded_pieces(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(b"id,y_true,y_pred,absolute_error\n" + b"".join(b"r%d,1.0,3.0,2.0\n" % i for i in range(1000)))
    tail = CsvTail(path)
    errors: list[float] = []
    reads = 0
    while True:
        new, _differences, _restarted = tail.read_new(limit=1000)
        errors += new
        reads += 1
        if tail.caught_up:
            break
    assert errors == [2.0] * 1000
    assert reads > 10


def test_a_line_longer_than_the_limit_is_skipped_not_stalled_on(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(b"x" * 50 + b"\na,1.0,2.0,1.0\n")
    tail = CsvTail(path)
    assert tail.read_new(limit=20) == ([], [], False)
    assert not tail.caught_up
    while not tail.caught_up:
        errors, _differences, _restarted = tail.read_new(limit=20)
    assert errors == [1.0]
