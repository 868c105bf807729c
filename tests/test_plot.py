"""The plot reads a growing CSV and keeps a valid PNG; it redraws only when rows were added."""

import signal
import sys
from pathlib import Path

import matplotlib.image
import pytest

from tests.helpers import REPO, Services, wait_until

sys.path.insert(0, str(REPO / "plot" / "src"))
from plot import Plotter

HEADER = b"id,y_true,y_pred,absolute_error\n"


def is_png(path: Path) -> bool:
    return path.exists() and matplotlib.image.imread(path).shape[0] > 0


def test_refresh_draws_once_for_a_missing_csv_then_only_for_new_rows(tmp_path: Path) -> None:
    plotter = Plotter(tmp_path)
    picture, csv = tmp_path / "error_distribution.png", tmp_path / "metric_log.csv"
    assert plotter.refresh() is True
    assert is_png(picture)
    assert plotter.refresh() is False
    csv.write_bytes(HEADER)
    assert plotter.refresh() is False
    csv.write_bytes(HEADER + b"a,1.0,3.0,2.0\nb,1.0,2.0,1.")
    assert plotter.refresh() is True
    assert plotter.refresh() is False
    with csv.open("ab") as file:
        file.write(b"0\n")
    inode = picture.stat().st_ino
    assert plotter.refresh() is True
    assert picture.stat().st_ino != inode, "the picture is replaced by a rename, not rewritten in place"
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("start", [b"", HEADER, HEADER + b"a,1.0,3.0,2.0\nb,1.0,2"], ids=["empty", "header", "torn"])
def test_the_service_keeps_a_valid_picture_of_a_growing_csv(tmp_path: Path, start: bytes) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    csv, picture = logs / "metric_log.csv", logs / "error_distribution.png"
    csv.write_bytes(start)
    services = Services(tmp_path, {"LOGS_DIR": str(logs), "PLOT_INTERVAL": "0.1"})
    try:
        services.start("plot")
        wait_until(lambda: is_png(picture), 30, "the first picture")
        first = picture.stat().st_ino
        with csv.open("ab") as file:
            file.write((b"" if start else HEADER) + b"".join(b"r%d,1.0,2.0,1.0\n" % index for index in range(100)))
        wait_until(lambda: picture.stat().st_ino != first, 30, "the picture to be redrawn")
        assert is_png(picture)
        services.signal("plot", signal.SIGTERM)
        assert services.wait("plot", timeout=10) == 0
    finally:
        services.stop_all()
