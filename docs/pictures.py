"""make pictures: run the four services on data/wine.csv, copy the two pictures they produce into docs/, and take a
screenshot of plot's page in Debian's chromium.

The services run as processes (the same files the images run) against a private RabbitMQ node: features streams
PICTURE_ROWS rows (default 19,200: 300 blocks of 64) as fast as the broker confirms, then SHIFTED_ROWS rows of a copy
whose alcohol is 2 higher (a drift the model cannot know of: 1,920 rows, 30 blocks, so that the last block ends
with the last row) and whose color_intensity is 1.5 times what it was (an input that moved). A model trained on the
example by train.py predicts them, metric writes the CSV and plot draws it, raises its drift alarm and the input
alarm of color_intensity. When every row is in and both pictures show them, the pictures are copied here and the page
is photographed as docs/page.png.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.helpers import REPO
from tests.helpers.csv_log import row_count
from tests.helpers.ports import free_port
from tests.helpers.rabbit import RabbitNode
from tests.helpers.services import Services, stop_gracefully
from tests.helpers.waiting import wait_until

STATIONARY_ROWS = int(os.environ.get("PICTURE_ROWS") or 19_200)
SHIFTED_ROWS = 1_920
ROWS = STATIONARY_ROWS + SHIFTED_ROWS
EXAMPLE = {"DATASET_PATH": str(REPO / "data" / "wine.csv"), "TARGET_COLUMN": "alcohol"}
PICTURES = ("error_distribution.png", "error_over_time.png")
MOVED = "color_intensity"


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="pictures-") as temporary:
        folder = Path(temporary)
        model_path = folder / "wine.skops"
        train = [sys.executable, str(REPO / "model" / "src" / "train.py")]
        # the profile names its data as given: data/wine.csv, as a user of the repository would give it
        trained = {"DATASET_PATH": "data/wine.csv", "MODEL_PATH": str(model_path)}
        subprocess.run(train, env=os.environ | EXAMPLE | trained, cwd=REPO, check=True)
        node = RabbitNode(folder / "rabbit")
        node.base.mkdir()
        node.start()
        logs = folder / "logs"
        logs.mkdir()
        environment = {"AMQP_URL": node.url, "LOGS_DIR": str(logs), "MODEL_PATH": str(model_path)}
        services = Services(folder, environment | EXAMPLE | {"PLOT_INTERVAL": "0.5"})
        port = free_port()
        try:
            services.start("model")
            services.start("metric")
            services.start("plot", LOG_LEVEL="DEBUG", WEB_PORT=str(port), STALLED_AFTER="600")
            stream(services, logs, STATIONARY_ROWS, FEATURES_LIMIT=str(STATIONARY_ROWS))
            stream(services, logs, ROWS, DATASET_PATH=str(shifted_copy(folder)), FEATURES_LIMIT=str(SHIFTED_ROWS))
            for picture in PICTURES:
                drawn = f"redrew {picture} with {ROWS} rows"
                wait_until(lambda text=drawn: text in services.log("plot"), 60, drawn)
            screenshot(port, REPO / "docs" / "page.png")
            stop_gracefully(services, "model", "metric", "plot")
        finally:
            services.stop_all()
            node.stop()
        for picture in PICTURES:
            shutil.copy(logs / picture, REPO / "docs" / picture)
            print(f"docs/{picture}: {ROWS:,} rows of data/wine.csv, the last {SHIFTED_ROWS:,} with alcohol + 2")
        print(f"docs/page.png: the page at the end of the run, the input alarm of {MOVED} up")
    return 0


def stream(services: Services, logs: Path, rows_after: int, **features: str) -> None:
    services.start("features", FEATURES_INTERVAL="0", **features)
    assert services.wait("features", timeout=600) == 0
    wait_until(lambda: row_count(logs / "metric_log.csv") >= rows_after, 600, f"{rows_after} rows")


def shifted_copy(folder: Path) -> Path:
    """data/wine.csv with alcohol (the target) 2 higher and color_intensity 1.5 times what it was."""
    with (REPO / "data" / "wine.csv").open(newline="") as source:
        rows = list(csv.DictReader(source))
    path = folder / "wine-shifted.csv"
    with path.open("w", newline="") as target:
        writer = csv.DictWriter(target, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            moved = {"alcohol": f"{float(row['alcohol']) + 2:.2f}", MOVED: f"{float(row[MOVED]) * 1.5:.3f}"}
            writer.writerow(row | moved)
    return path


def screenshot(port: int, path: Path) -> None:
    """The page once it shows every row and both pictures, in Debian's chromium (never a downloaded browser)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page(viewport={"width": 1400, "height": 720})
        page.goto(f"http://127.0.0.1:{port}/")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/summary.json", timeout=10) as response:
            latest = json.loads(response.read())["pictures"]  # the pictures are drawn: these are their last versions
        shown = " && ".join(
            f"document.getElementById('{name}').dataset.url === '{url}'" for name, url in latest.items()
        )
        page.wait_for_function(shown, timeout=60_000)
        page.wait_for_function(f"document.getElementById('rows').textContent === '{ROWS:,}'", timeout=60_000)
        page.wait_for_function(f"document.getElementById('inputs-banner').textContent.includes('{MOVED}')")
        page.screenshot(path=str(path), full_page=True)
        browser.close()


if __name__ == "__main__":
    sys.exit(main())
