"""make pictures: run the four services on data/wine.csv and copy the two pictures they produce into docs/.

The services run as processes (the same files the images run) against a private RabbitMQ node: features streams
PICTURE_ROWS rows (default 19,200: 300 blocks of 64, so that the last block ends with the last row) as fast as the
broker confirms, a model trained on the example by train.py
predicts them, metric writes the CSV and plot draws it. When every row is in and both pictures show them, the
pictures are copied here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.helpers import REPO, RabbitNode, Services, row_count, stop_gracefully, wait_until

ROWS = int(os.environ.get("PICTURE_ROWS") or 19_200)
EXAMPLE = {"DATASET_PATH": str(REPO / "data" / "wine.csv"), "TARGET_COLUMN": "alcohol"}
PICTURES = ("error_distribution.png", "error_over_time.png")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="pictures-") as temporary:
        folder = Path(temporary)
        model_path = folder / "wine.skops"
        train = [sys.executable, str(REPO / "model" / "src" / "train.py")]
        subprocess.run(train, env=os.environ | EXAMPLE | {"MODEL_PATH": str(model_path)}, check=True)
        node = RabbitNode(folder / "rabbit")
        node.base.mkdir()
        node.start()
        logs = folder / "logs"
        logs.mkdir()
        environment = {"AMQP_URL": node.url, "LOGS_DIR": str(logs), "MODEL_PATH": str(model_path)}
        services = Services(folder, environment | EXAMPLE | {"PLOT_INTERVAL": "0.5"})
        try:
            services.start("model")
            services.start("metric")
            services.start("plot", LOG_LEVEL="DEBUG")  # it logs each picture it draws
            services.start("features", FEATURES_INTERVAL="0", FEATURES_LIMIT=str(ROWS))
            wait_until(lambda: row_count(logs / "metric_log.csv") >= ROWS, 600, f"{ROWS} rows")
            for picture in PICTURES:
                drawn = f"redrew {picture} with {ROWS} rows"
                wait_until(lambda text=drawn: text in services.log("plot"), 60, drawn)
            stop_gracefully(services, "features", "model", "metric", "plot")
        finally:
            services.stop_all()
            node.stop()
        for picture in PICTURES:
            shutil.copy(logs / picture, REPO / "docs" / picture)
            print(f"docs/{picture}: {ROWS:,} rows of data/wine.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
