"""The plot reads a growing CSV and keeps a valid PNG; it redraws only when rows were added."""

import json
import math
import os
import signal
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import page
import plot_settings
import pytest
from error_stats import DriftSettings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from snapshot import Snapshot
from timeline import FIRST_BLOCK

import plot
from pipeline.metric_log import CsvTail, format_row
from plot import Plotter
from tests.helpers.ports import free_port, port_open
from tests.helpers.services import Services
from tests.helpers.waiting import wait_until

HEADER = b"id,y_true,y_pred,absolute_error\n"


def is_png(path: Path) -> bool:
    return path.exists() and matplotlib.image.imread(path).shape[0] > 0


def test_refresh_draws_once_for_a_missing_csv_then_only_for_new_rows(tmp_path: Path) -> None:
    plotter = Plotter(tmp_path)
    picture, csv = tmp_path / "error_distribution.png", tmp_path / "metric_log.csv"
    assert plotter.refresh() is True
    assert is_png(picture)
    assert plotter.refresh() is True, "the error over time takes the second refresh"
    assert plotter.refresh() is False
    csv.write_bytes(HEADER)
    assert plotter.refresh() is False
    csv.write_bytes(HEADER + b"a,1.0,3.0,2.0\nb,1.0,2.0,1.")
    assert plotter.refresh() is True
    assert plotter.refresh() is True, "the error over time counts the row it waits for"
    assert plotter.refresh() is False
    with csv.open("ab") as file:
        file.write(b"0\n")
    inode = picture.stat().st_ino
    assert plotter.refresh() is True
    assert picture.stat().st_ino != inode, "the picture is replaced by a rename, not rewritten in place"
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_error_over_time_is_redrawn_when_a_block_of_rows_is_complete(tmp_path: Path) -> None:
    plotter = Plotter(tmp_path)
    over_time, csv = tmp_path / "error_over_time.png", tmp_path / "metric_log.csv"
    csv.write_bytes(HEADER)
    while plotter.refresh():  # both pictures of no rows
        pass
    assert is_png(over_time)
    with csv.open("ab") as file:
        file.write(b"".join(b"r%d,1.0,2.0,1.0\n" % index for index in range(FIRST_BLOCK - 1)))
    assert plotter.refresh() is True, "the distribution first"
    assert plotter.refresh() is True, "then the error over time's empty state, which counts the rows"
    assert plotter.refresh() is False
    drawn = over_time.read_bytes()  # not its inode: the file replaced since may have freed it for the next one
    with csv.open("ab") as file:
        file.write(b"last,1.0,4.0,3.0\n")
    assert plotter.refresh() is True, "the distribution first"
    assert plotter.refresh() is True, "then the error over time"
    assert plotter.refresh() is False
    assert over_time.read_bytes() != drawn
    assert is_png(over_time)
    kept = over_time.stat().st_ino  # the file in place: a new one could not take its inode
    with csv.open("ab") as file:
        file.write(b"more,1.0,2.0,1.0\n")
    assert plotter.refresh() is True, "the distribution"
    assert plotter.refresh() is False, "no new block is complete"
    assert over_time.stat().st_ino == kept


def test_both_pictures_take_turns_while_rows_keep_coming(tmp_path: Path) -> None:
    plotter = Plotter(tmp_path)
    distribution, over_time = tmp_path / "error_distribution.png", tmp_path / "error_over_time.png"
    turns = []
    with (tmp_path / "metric_log.csv").open("ab") as file:
        file.write(HEADER)
        for batch in range(4):  # every batch completes a block and changes the distribution
            file.write(b"".join(b"r%d-%d,1.0,2.0,1.0\n" % (batch, row) for row in range(FIRST_BLOCK)))
            file.flush()
            before = {path: path.stat().st_mtime_ns if path.exists() else 0 for path in (distribution, over_time)}
            assert plotter.refresh() is True
            redrawn = [path.name for path in before if path.exists() and path.stat().st_mtime_ns != before[path]]
            assert len(redrawn) == 1, redrawn
            turns += redrawn
    assert turns == ["error_distribution.png", "error_over_time.png"] * 2
    assert is_png(distribution) and is_png(over_time)


@pytest.mark.parametrize("start", [b"", HEADER, HEADER + b"a,1.0,3.0,2.0\nb,1.0,2"], ids=["empty", "header", "torn"])
def test_the_service_keeps_a_valid_picture_of_a_growing_csv(tmp_path: Path, start: bytes) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    csv, picture, over_time = logs / "metric_log.csv", logs / "error_distribution.png", logs / "error_over_time.png"
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
        wait_until(lambda: is_png(over_time), 30, "the error over time")
        services.signal("plot", signal.SIGTERM)
        assert services.wait("plot", timeout=10) == 0
    finally:
        services.stop_all()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_ends_the_plot_process_mid_sleep_at_once(tmp_path: Path, signum: signal.Signals) -> None:
    """The loop sleeps HEALTH_INTERVAL (5 s) between refreshes here: the signal must end the sleep, not wait it out."""
    logs = tmp_path / "logs"
    logs.mkdir()
    services = Services(tmp_path, {"LOGS_DIR": str(logs), "PLOT_INTERVAL": "60"})
    try:
        services.start("plot")
        wait_until(lambda: services.is_ready("plot") and is_png(logs / "error_distribution.png"), 30, "a first picture")
        time.sleep(0.5)  # into a sleep of the loop
        sent = time.monotonic()
        services.signal("plot", signum)
        assert services.wait("plot", timeout=10) == 0
        assert time.monotonic() - sent < 2.0, "the sleep ended by the signal, not by its timeout"
        log = services.log("plot")
        assert f"received {signum.name}" in log and log.rstrip().endswith("plot: stopped"), log
    finally:
        services.stop_all()


def test_a_stop_signal_that_comes_while_plot_starts_stops_it_before_any_refresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``docker stop`` while plot starts its page: it stops without reading the CSV, which may take longer than the
    stop timeout. In this process, with a real SIGTERM; the signal handlers and wake-up socket are put back."""
    (tmp_path / "metric_log.csv").write_bytes(HEADER + b"a,1.0,3.0,2.0\n")
    for name, value in {"LOGS_DIR": str(tmp_path), "WEB_PORT": "0", "PLOT_INTERVAL": "60"}.items():
        monkeypatch.setenv(name, value)
    refreshes: list[float] = []
    real_refresh = Plotter.refresh

    def counted(plotter: Plotter) -> bool:
        refreshes.append(time.monotonic())
        return real_refresh(plotter)

    monkeypatch.setattr(Plotter, "refresh", counted)
    monkeypatch.setattr(page, "serve", lambda _config, _source: os.kill(os.getpid(), signal.SIGTERM))
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    wakeup = signal.set_wakeup_fd(-1)
    monkeypatch.setattr(plot, "REGISTRY", CollectorRegistry())  # not the process's: run registers plot's collector
    try:
        assert plot.run(plot_settings.load_settings()) == 0
    finally:
        signal.set_wakeup_fd(wakeup)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    assert refreshes == [], "stopped before its first refresh"


HOSTILE_LINES = [
    b"a,1.0,2.0,inf",
    b"b,1.0,2.0,nan",
    b"c,1.0,2.0,-1.0",
    b"d,1e308,-1e308,1e308",
    b"e,1e308,-1e308,1.7976931348623157e308",
    b"f,,,",
    b",,,,,,,,",
    b"\xff\xfe\x00,1,2,3\x00",
    b"g,1,2," + b"9" * 5000,
    b"h,1,2,1.0\r",
    b"",
    b"i;1;2;3",
    b"x" * 100_000,
]


def test_plot_skips_and_counts_lines_it_cannot_use_and_keeps_drawing(tmp_path: Path) -> None:
    csv = tmp_path / "metric_log.csv"
    csv.write_bytes(HEADER + b"ok,1.0,2.0,1.0\n" + b"\n".join(HOSTILE_LINES) + b"\n")
    plotter = Plotter(tmp_path)
    while plotter.refresh():
        pass
    # d and e: y_pred - y_true is -inf, so no bias could be told; metric never writes such a pair
    assert plotter.snapshot.rows == 2, "the good row and h (a float despite its \\r)"
    assert plotter.skipped_lines == len(HOSTILE_LINES) - 1
    assert is_png(tmp_path / "error_distribution.png") and is_png(tmp_path / "error_over_time.png")
    with csv.open("ab") as file:
        file.write(b"later,1.0,1.5,0.5\n")
    assert plotter.refresh() is True
    assert plotter.snapshot.rows == 3


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_plot_survives_any_bytes_in_the_csv(tmp_path: Path, content: bytes) -> None:
    folder = tmp_path / str(abs(hash(content)))
    folder.mkdir(exist_ok=True)
    (folder / "metric_log.csv").write_bytes(content)
    plotter = Plotter(folder)
    for _ in range(3):
        plotter.refresh()
    assert is_png(folder / "error_distribution.png")


def test_the_distribution_counts_rows_in_whole_numbers(tmp_path: Path) -> None:
    (tmp_path / "metric_log.csv").write_bytes(HEADER + b"a,1,2,1.0\nb,1,3,2.0\n")
    plotter = Plotter(tmp_path)
    plotter.refresh()
    ticks = plotter.distribution.axes.get_yticks()
    assert len(ticks) >= 2 and all(tick == int(tick) for tick in ticks)


def test_the_error_over_time_says_how_many_rows_it_waits_for(tmp_path: Path) -> None:
    (tmp_path / "metric_log.csv").write_bytes(HEADER + b"".join(b"r%d,1,2,1.0\n" % i for i in range(23)))
    plotter = Plotter(tmp_path)
    plotter.refresh()
    plotter.refresh()
    picture = plotter.over_time
    assert picture.empty.get_visible()
    assert picture.empty.get_text() == f"waiting for the first {FIRST_BLOCK} rows: 23 so far"
    assert "rows 1 to 0" not in picture.axes.get_title()


def test_the_error_over_time_keeps_counting_the_rows_it_waits_for(tmp_path: Path) -> None:
    csv = tmp_path / "metric_log.csv"
    csv.write_bytes(HEADER + b"first,1,2,1.0\n")
    plotter = Plotter(tmp_path)
    while plotter.refresh():
        pass
    picture = plotter.over_time
    assert picture.empty.get_text() == f"waiting for the first {FIRST_BLOCK} rows: 1 so far"
    saved = picture.version
    with csv.open("ab") as file:
        file.write(b"".join(b"r%d,1,2,1.0\n" % i for i in range(39)))
    while plotter.refresh():
        pass
    assert plotter.snapshot.rows == 40
    assert picture.empty.get_text() == f"waiting for the first {FIRST_BLOCK} rows: 40 so far"
    assert picture.version > saved, "error_over_time.png saved again with the new count"


def test_the_health_file_is_touched_between_the_chunks_of_a_long_first_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv, health = tmp_path / "metric_log.csv", tmp_path / "healthy"
    csv.write_bytes(HEADER + b"".join(b"r%d,1,2,1.0\n" % i for i in range(2000)))
    touched_before_chunk: list[bool] = []
    read_new = CsvTail.read_new

    def small_chunks(tail: CsvTail, limit: int = 0) -> tuple[list[float], list[float], bool]:
        """A read of a large CSV: many chunks; each notes whether the health file was touched since the last."""
        touched_before_chunk.append(health.exists())
        health.unlink(missing_ok=True)
        return read_new(tail, 1024)

    monkeypatch.setattr(CsvTail, "read_new", small_chunks)
    plotter = Plotter(tmp_path, health_file=health)
    plotter.refresh()
    assert plotter.snapshot.rows == 2000
    assert len(touched_before_chunk) > 20
    assert all(touched_before_chunk[1:]), "touched between every two chunks of the first read"


def test_the_error_over_time_shows_every_block_after_an_empty_start_and_the_drift_marks(tmp_path: Path) -> None:
    csv = tmp_path / "metric_log.csv"
    csv.write_bytes(HEADER)
    plotter = Plotter(tmp_path, DriftSettings(window=100, ratio=1.5, reference_rows=200, reference_mae=None))
    while plotter.refresh():  # the empty state first, as when plot starts before the first row
        pass
    with csv.open("ab") as file:
        file.write(b"".join(b"r%d,1.0,2.0,1.0\n" % i for i in range(20 * FIRST_BLOCK)))
        file.write(b"".join(b"s%d,1.0,4.0,3.0\n" % i for i in range(10 * FIRST_BLOCK)))
    while plotter.refresh():
        pass
    picture = plotter.over_time
    assert picture.axes.get_xlim() == (0, 30 * FIRST_BLOCK), "every block in view, not the empty state's axis"
    assert picture.block_ends[-1] == 30 * FIRST_BLOCK
    assert picture.reference_shown == 1.0
    [(start, _end)] = picture.alarm_stretches
    assert start > 20 * FIRST_BLOCK, "the shaded stretch starts after the shift"
    assert plotter.snapshot.drift["alarm"] is True and plotter.snapshot.drift["alarms"] == 1


# each finite, so metric writes them; two of them sum past the largest float (about 1.8e308)
WILD_ROWS = b"".join(format_row(f"wild-{n}", -8e307, 8e307) for n in range(2))
HUGE_FLOATS = st.sampled_from([1e308, -1e308, 1.7976931348623157e308, -1.7976931348623157e308, 8e307, 5e-324, 0.0])


def strict_json(numbers: Any) -> Any:
    """``numbers`` through JSON as a strict parser reads it: ``Infinity`` and ``NaN`` are no JSON."""
    return json.loads(json.dumps(numbers), parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))


def assert_finite_numbers(snapshot: Snapshot) -> None:
    numbers = page.summary(snapshot, now=0.0, stalled_after=15.0)
    strict_json(numbers)
    for name in ("mae", "rmse", "median", "p90", "p99", "bias"):
        assert math.isfinite(numbers[name]), (name, numbers[name])


def test_rows_whose_sums_pass_the_largest_float_leave_every_number_finite(tmp_path: Path) -> None:
    csv = tmp_path / "metric_log.csv"
    csv.write_bytes(HEADER + b"a,1.0,3.0,2.0\n" + WILD_ROWS + b"b,1.0,2.0,1.0\n")
    plotter = Plotter(tmp_path)
    while plotter.refresh():
        pass
    snapshot = plotter.snapshot
    assert snapshot.rows == 4
    assert snapshot.mae == pytest.approx(1.6e308 / 2 + 3.0 / 4)
    assert snapshot.bias == pytest.approx(1.6e308 / 2 + 3.0 / 4)
    assert snapshot.rmse == pytest.approx(1.6e308 / math.sqrt(2))
    assert snapshot.error_sum == math.inf, "the true sum is beyond the largest float: /metrics says +Inf"
    assert_finite_numbers(snapshot)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.one_of(
            st.tuples(st.floats(allow_nan=False, allow_infinity=False) | HUGE_FLOATS, st.floats() | HUGE_FLOATS),
            st.binary(max_size=60),
        ),
        max_size=40,
    )
)
def test_plot_survives_any_lines_and_any_finite_values(
    tmp_path: Path, lines: list[tuple[float, float] | bytes]
) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))  # a folder of its own: no picture of an earlier example
    rows = [format_row("x", *line) if isinstance(line, tuple) else line + b"\n" for line in lines]
    (folder / "metric_log.csv").write_bytes(HEADER + b"".join(rows))
    plotter = Plotter(folder)
    for _ in range(3):
        plotter.refresh()
    assert_finite_numbers(plotter.snapshot)
    assert is_png(folder / "error_distribution.png")


def test_the_plot_process_keeps_serving_a_csv_with_rows_that_sum_past_the_largest_float(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    csv = logs / "metric_log.csv"
    csv.write_bytes(HEADER + b"".join(b"r%d,1.0,2.0,1.0\n" % n for n in range(100)) + WILD_ROWS)
    web, metrics = free_port(), free_port()
    environment = {"LOGS_DIR": str(logs), "PLOT_INTERVAL": "0.1", "WEB_PORT": str(web), "METRICS_PORT": str(metrics)}
    services = Services(tmp_path, environment)
    plot = services.start("plot")

    def summary() -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{web}/summary.json", timeout=10) as response:
            return strict_json(json.loads(response.read()))

    try:
        wait_until(lambda: port_open(web) and port_open(metrics), 30, "the page and the metrics to listen")
        wait_until(lambda: summary()["rows"] == 102 and all(summary()["pictures"].values()), 30, "both pictures")
        drawn = summary()["pictures"]["error_distribution"]  # its address, which changes when drawn
        with csv.open("ab") as file:
            file.write(b"later,1.0,1.5,0.5\n" + WILD_ROWS)
        wait_until(lambda: summary()["rows"] == 105, 30, "the rows written after the wild ones")
        wait_until(lambda: summary()["pictures"]["error_distribution"] != drawn, 30, "the distribution drawn again")
        assert plot.poll() is None, services.log("plot")
        assert "could not draw" not in services.log("plot")
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=10) as response:
            families = {family.name: family for family in text_string_to_metric_families(response.read().decode())}
        [mean] = families["pipeline_absolute_error_mean"].samples
        assert mean.value == pytest.approx(1.6e308 / 105 * 4 + 100.5 / 105)
        services.signal("plot", signal.SIGTERM)
        assert services.wait("plot", timeout=10) == 0
    finally:
        services.stop_all()


def test_the_distribution_shows_the_bulk_and_counts_a_wild_error_beside(tmp_path: Path) -> None:
    errors = np.random.default_rng(8).exponential(30.0, 2000)
    rows = [format_row(f"r{n}", 0.0, float(error)) for n, error in enumerate(errors)]
    (tmp_path / "metric_log.csv").write_bytes(
        HEADER + b"".join(rows[:1000]) + b"wild,0.0,1e6,1e6\n" + b"".join(rows[1000:])
    )
    plotter = Plotter(tmp_path)
    plotter.refresh()
    picture = plotter.distribution
    _left, right = picture.axes.get_xlim()
    every = np.append(errors, 1e6)
    assert np.quantile(every, 0.999, method="lower") <= right < 1.03 * np.quantile(every, 0.999, method="lower")
    above = int((errors > right).sum()) + 1
    assert picture.outside.get_visible() and picture.outside.get_text() == f"{above} errors above {right:.4g} not shown"
    assert plotter.snapshot.median == pytest.approx(np.quantile(every, 0.5, method="lower"), rel=0.01)
    assert plotter.snapshot.p90 == pytest.approx(np.quantile(every, 0.9, method="lower"), rel=0.01)


def test_a_mae_far_beyond_the_bars_is_left_out_and_the_picture_drawn(tmp_path: Path) -> None:
    (tmp_path / "metric_log.csv").write_bytes(HEADER + format_row("a", 0.0, 189.0) + format_row("b", 0.0, -1e308))
    plotter = Plotter(tmp_path)
    assert plotter.refresh() is True
    assert is_png(tmp_path / "error_distribution.png")
    picture = plotter.distribution
    assert "MAE" not in picture.markers_shown, "the MAE, 5e307, is far beyond the bars"
    assert "p90" in picture.markers_shown, "p90 is the row at rank 0.9 (counted from 0): 189"
    assert picture.outside.get_text().startswith("1 error above 19")
