from pathlib import Path

from pipeline.metric_log import CsvTail


def test_only_complete_new_lines_are_read(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    tail = CsvTail(path)
    assert tail.read_new() == ([], False)
    path.write_bytes(b"")
    assert tail.read_new() == ([], False)
    with path.open("ab") as file:
        file.write(b"id,y_true,y_pred,absolute_error\na,1.0,3.0,2.0\nb,1.0,1.5,0.")
    assert tail.read_new() == ([2.0], False)
    with path.open("ab") as file:
        file.write(b"5\nc,2.0,2.0,0.0\n")
    assert tail.read_new() == ([0.5, 0.0], False)
    assert tail.read_new() == ([], False)


def test_a_replaced_or_truncated_file_is_read_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(b"id,y_true,y_pred,absolute_error\na,1.0,3.0,2.0\nb,1.0,4.0,3.0\n")
    tail = CsvTail(path)
    assert tail.read_new() == ([2.0, 3.0], False)
    path.write_bytes(b"id,y_true,y_pred,absolute_error\nc,1.0,2.0,1.0\n")
    assert tail.read_new() == ([1.0], True)
    path.unlink()
    assert tail.read_new() == ([], True)


def test_lines_that_are_not_rows_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(b"id,y_true,y_pred,absolute_error\ngarbage\na,1.0,3.0,oops\nb,1.0,2.0,1.0\n")
    assert CsvTail(path).read_new() == ([1.0], False)
