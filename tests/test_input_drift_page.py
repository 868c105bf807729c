"""plot's input drift over real HTTP from a real plot process: ``inputs`` in /summary.json and the two gauges of
/metrics, from counts files the test writes as a model replica does."""

from __future__ import annotations

import http.client
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.input_counts import FOLDER, CountsWriter
from tests.helpers.examples import direct_scores, example, inputs
from tests.helpers.plot_page import Page, start_plot
from tests.helpers.ports import free_port
from tests.helpers.waiting import wait_until


def metrics(port: int) -> dict[str, dict[str, float]]:
    """The input drift gauges of /metrics: each name's values by feature."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    gauges: dict[str, dict[str, float]] = {"pipeline_input_drift_psi": {}, "pipeline_input_drift_alarm": {}}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in gauges:
                gauges[sample.name][sample.labels["feature"]] = sample.value
    return gauges


def inputs_of(page: Page) -> dict[str, Any] | None:
    return page.summary()["inputs"]


def test_the_summary_and_the_metrics_show_each_input_against_its_reference(tmp_path: Path, logs_dir: Path) -> None:
    metrics_port = free_port()
    services, port = start_plot(tmp_path, logs_dir, METRICS_PORT=str(metrics_port), INPUT_DRIFT_WINDOW="500")
    page = Page(port)
    try:
        wait_until(lambda: page.summary()["pictures"]["error_distribution"], 30, "a first refresh")
        assert inputs_of(page) is None, "no counts yet"
        assert metrics(metrics_port) == {"pipeline_input_drift_psi": {}, "pipeline_input_drift_alarm": {}}

        reference = example()
        writer = CountsWriter(logs_dir / FOLDER, reference, replica="model-1")
        steady, steady_predictions = inputs(1000, seed=1)
        writer.add(steady, steady_predictions)
        writer.flush()
        wait_until(lambda: (inputs_of(page) or {}).get("rows") == 1000, 30, "1,000 rows of the inputs")
        summary = inputs_of(page)
        assert summary is not None
        assert summary["reference"] == {"id": reference.id, "source": reference.source, "rows": reference.rows}
        assert (summary["window"], summary["window_rows"], summary["raise"], summary["clear"]) == (500, 500, 0.2, 0.1)
        expected = direct_scores(reference, steady[500:], steady_predictions[500:])
        assert {column["name"]: column["score"] for column in summary["columns"]} == pytest.approx(expected, rel=1e-12)
        ordered = [column["score"] for column in summary["columns"]]
        assert ordered == sorted(ordered, reverse=True), "worst first"
        assert summary["alarm"] is False and not any(column["alarm"] for column in summary["columns"])
        gauges = metrics(metrics_port)
        assert gauges["pipeline_input_drift_psi"] == {column["name"]: column["score"] for column in summary["columns"]}
        assert gauges["pipeline_input_drift_alarm"] == {"x": 0, "sex": 0, "y": 0, "prediction": 0}

        moved, moved_predictions = inputs(500, seed=2, shift=3.0)
        writer.add(moved, moved_predictions)
        writer.flush()
        wait_until(lambda: (inputs_of(page) or {}).get("rows") == 1500, 30, "1,500 rows of the inputs")
        summary = inputs_of(page)
        assert summary is not None and summary["alarm"] is True
        columns = {column["name"]: column for column in summary["columns"]}
        assert columns["x"]["alarm"] and columns["prediction"]["alarm"]
        assert not columns["sex"]["alarm"] and not columns["y"]["alarm"]
        assert [column["name"] for column in summary["columns"]][:2] in (["x", "prediction"], ["prediction", "x"])
        data, predictions = np.vstack([steady, moved]), np.hstack([steady_predictions, moved_predictions])
        first_alarm = next(
            end
            for end in range(600, 1501, 100)
            if direct_scores(reference, data[end - 500 : end], predictions[end - 500 : end])["x"] > 0.2
        )
        assert columns["x"]["alarm_since_row"] == first_alarm
        gauges = metrics(metrics_port)
        assert gauges["pipeline_input_drift_alarm"] == {"x": 1, "sex": 0, "y": 0, "prediction": 1}
        assert gauges["pipeline_input_drift_psi"]["x"] == columns["x"]["score"] > 0.2
        log = services.log("plot")
        assert f"input drift alarm raised for x at row {first_alarm:,} of the inputs" in log
        assert log.count("input drift alarm raised") == 2
        assert services.processes["plot"].poll() is None
    finally:
        services.stop_all()
        print(services.log("plot")[-3000:])
