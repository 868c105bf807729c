"""The page in a real browser: Debian's Chromium driven by Playwright (never `playwright install`: the browser is the
system's). plot runs as a process on a real CSV; the browser must show both pictures, the CSV's numbers, new rows
without a reload, the drift banner, the stalled state and the labels pending, with no error in its console; and the
inputs' table, its pictures and its banner from counts files written as a model replica writes them."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from pipeline.input_counts import FOLDER, CountsWriter
from pipeline.status import write_status
from tests.helpers.examples import example, inputs
from tests.helpers.plot_page import csv_numbers, start_plot, write_rows
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "the browser tests need Debian's chromium: apt-get install chromium (make test does)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


def number(page: Page, element: str) -> float:
    return float(page.text_content(element).replace(",", ""))  # type: ignore[union-attr]


def natural_width(page: Page, element: str) -> int:
    return int(page.eval_on_selector(element, "img => img.complete ? img.naturalWidth : 0"))


def test_the_page_shows_the_csv_live_in_a_real_browser(browser: Browser, tmp_path: Path, logs_dir: Path) -> None:
    csv = logs_dir / "metric_log.csv"
    services, port = start_plot(tmp_path, logs_dir, STALLED_AFTER="3", DRIFT_REFERENCE_ROWS="1000", DRIFT_WINDOW="200")
    write_rows(csv, 3000, seed=21)
    page, problems = page_noting_errors(browser)
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_function("document.getElementById('rows').textContent === '3,000'", timeout=WAIT_MS)
        wait_for_pictures(page)
        expected = csv_numbers(csv)
        assert number(page, "#rows") == expected["rows"] == 3000
        assert math.isclose(number(page, "#mae"), expected["mae"], rel_tol=1e-6)
        assert math.isclose(number(page, "#rmse"), expected["rmse"], rel_tol=1e-6)
        assert math.isclose(number(page, "#bias"), expected["bias"], rel_tol=1e-6)
        assert page.text_content("#drift-state") == "ok"
        # (not the stalled banner: it rightly shows once STALLED_AFTER passes, which a busy machine's checks may take)
        assert page.is_hidden("#drift-banner")
        first = picture_urls(page)

        page.evaluate("window.sameDocument = true")
        write_rows(csv, 600, seed=22, shift=60.0)  # the model now guesses 60 too high: drift
        page.wait_for_function("document.getElementById('rows').textContent === '3,600'", timeout=WAIT_MS)
        page.wait_for_selector("#drift-banner", state="visible", timeout=WAIT_MS)
        wait_until(lambda: all(a != b for a, b in zip(first, picture_urls(page), strict=True)), 30, "new pictures")
        wait_for_pictures(page)
        assert page.evaluate("window.sameDocument") is True, "the numbers and pictures changed without a reload"
        assert math.isclose(number(page, "#mae"), csv_numbers(csv)["mae"], rel_tol=1e-6)
        assert page.text_content("#drift-state") == "ALARM"
        assert "drift alarm since row" in (page.text_content("#drift-banner") or "")

        page.wait_for_selector("#stalled-banner", state="visible", timeout=WAIT_MS)
        assert "stalled" in (page.text_content("#stalled-banner") or "")

        assert page.is_hidden("#waiting-banner") and page.text_content("#waiting-y-pred") == "\u2013", "no status yet"
        labels_two_hours_late = {"waiting": {"y_true": 0, "y_pred": 3600}, "oldest_created": time.time() - 7200}
        write_status(logs_dir, labels_two_hours_late | {"paused": [], "positions": {}, "written_at": time.time()})
        page.wait_for_selector("#waiting-banner", state="visible", timeout=WAIT_MS)
        assert "labels pending: 3,600 predictions wait" in (page.text_content("#waiting-banner") or "")
        assert page.text_content("#waiting-y-pred") == "3,600" and page.text_content("#waiting-oldest") == "2.0 h"
        write_status(logs_dir, {"waiting": {"y_true": 0, "y_pred": 0}, "oldest_created": None, "paused": []})
        page.wait_for_selector("#waiting-banner", state="hidden", timeout=WAIT_MS)
        assert page.text_content("#waiting-oldest") == "none"
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        assert problems == [], f"console errors: {problems}"
    finally:
        page.close()
        services.stop_all()


def wait_for_pictures(page: Page) -> None:
    for element in ("#error_distribution", "#error_over_time"):
        wait_until(lambda element=element: natural_width(page, element) > 0, 30, f"{element} loaded")


def picture_urls(page: Page) -> list[str]:
    return [page.get_attribute(f"#{name}", "src") or "" for name in ("error_distribution", "error_over_time")]


def test_the_inputs_table_pictures_and_banner_follow_the_counts_without_a_reload(
    browser: Browser, tmp_path: Path, logs_dir: Path
) -> None:
    services, port = start_plot(tmp_path, logs_dir, INPUT_DRIFT_WINDOW="500")
    reference = example()
    writer = CountsWriter(logs_dir / FOLDER, reference, replica="model-1")
    page, problems = page_noting_errors(browser)
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_function("document.getElementById('updated').textContent.startsWith('updated')", timeout=WAIT_MS)
        assert page.is_hidden("#inputs") and page.is_hidden("#inputs-banner"), "no counts yet: nothing shown"
        page.evaluate("window.sameDocument = true")

        writer.add(*inputs(300, seed=1))
        writer.flush()
        page.wait_for_selector("#inputs", state="visible", timeout=WAIT_MS)
        wait_until(lambda: input_states(page).get("x") == "waiting for 200 rows", 30, "the window filling")
        assert list(input_states(page)) == ["x", "sex", "y", "prediction"]

        writer.add(*inputs(700, seed=2))
        writer.flush()
        wait_until(lambda: set(input_states(page).values()) == {"ok"}, 30, "every input judged ok")
        bins = {column.name: column.bins for column in reference.columns}
        for name, bars in bar_counts(page).items():
            assert bars == {"reference": bins[name], "recent": bins[name]}, name
        steady = recent_heights(page)
        assert page.is_hidden("#inputs-banner")

        writer.add(*inputs(500, seed=3, shift=3.0))
        writer.flush()
        page.wait_for_selector("#inputs-banner", state="visible", timeout=WAIT_MS)
        wait_until(
            lambda: list(input_states(page))[:2] in (["x", "prediction"], ["prediction", "x"]), 30, "worst first"
        )
        banner = page.text_content("#inputs-banner") or ""
        assert banner.startswith("input drift: ") and "x" in banner and "prediction" in banner and "sex" not in banner
        states = input_states(page)
        assert states["x"].startswith("ALARM since row ") and states["sex"] == "ok"
        moved = recent_heights(page)
        assert moved["x"] != steady["x"]
        tallest = max(range(len(moved["x"])), key=moved["x"].__getitem__)
        assert tallest >= len(moved["x"]) // 2, "x moved up: its recent rows pile up in the upper bins"
        assert page.evaluate("window.sameDocument") is True, "the table changed without a reload"
        page.screenshot(path=str(tmp_path / "inputs.png"), full_page=True)
        assert problems == [], f"console errors: {problems}"
    finally:
        page.close()
        services.stop_all()


def input_states(page: Page) -> dict[str, str]:
    """Each row of the inputs table, in the order shown: its input's name and state."""
    rows = page.eval_on_selector_all(
        "#inputs-rows tr", "rows => rows.map(row => [row.dataset.name, row.querySelector('.state').textContent])"
    )
    return dict(rows)


def bar_counts(page: Page) -> dict[str, dict[str, int]]:
    rows = page.eval_on_selector_all(
        "#inputs-rows tr",
        """rows => rows.map(row => [row.dataset.name, {
            reference: row.querySelectorAll('svg rect.reference').length,
            recent: row.querySelectorAll('svg rect.recent').length}])""",
    )
    return dict(rows)


def recent_heights(page: Page) -> dict[str, list[float]]:
    rows = page.eval_on_selector_all(
        "#inputs-rows tr",
        """rows => rows.map(row => [row.dataset.name,
            [...row.querySelectorAll('svg rect.recent')].map(bar => Number(bar.getAttribute('height')))])""",
    )
    return dict(rows)


def page_noting_errors(browser: Browser) -> tuple[Page, list[str]]:
    """A new page, and the list its console errors and uncaught exceptions go to."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return page, problems
