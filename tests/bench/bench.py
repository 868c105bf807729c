"""make bench: drain, wire limit, input drift's cost, latency and plot figures on this machine, printed as a table.

Every figure is the median of BENCH_REPEAT runs, with min and max. Sizes come from the environment so that CI can run
a small version: BENCH_ROWS (drain, wire limit and model alone with input drift on and off, alternated; default
50,000), BENCH_LATENCY_ROWS (default 2,000 at 200 rows/s), BENCH_PLOT_ROWS (comma-separated CSV sizes, default
1,000,000 and 10,000,000), BENCH_BACKLOG_ROWS (rows queued for the memory figures, default 1,000,000),
BENCH_WAITING_HALVES (halves left waiting on disk for the drain beside them, default 1,000,000), BENCH_AB_REF (a git
revision: its drain alternated with this checkout's on the same broker, e.g. BENCH_AB_REF=HEAD~3; unset: skipped).
Nothing here asserts a speed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pika

from pipeline.messages import encode, new_id
from pipeline.status import read_status
from pipeline.topology import Y_PRED
from tests.bench import wire_limit
from tests.helpers import REPO
from tests.helpers.queues import delete_queues, queue_depths
from tests.helpers.rabbit import RabbitCluster, RabbitNode
from tests.helpers.services import Services, stop_gracefully
from tests.helpers.waiting import wait_until

ROWS = int(os.environ.get("BENCH_ROWS") or 50_000)
REPEAT = int(os.environ.get("BENCH_REPEAT") or 3)
LATENCY_ROWS = int(os.environ.get("BENCH_LATENCY_ROWS") or 2_000)
BACKLOG_ROWS = int(os.environ.get("BENCH_BACKLOG_ROWS") or 1_000_000)
PLOT_ROWS = [int(size) for size in (os.environ.get("BENCH_PLOT_ROWS") or "1000000,10000000").split(",")]
WAITING_HALVES = int(os.environ.get("BENCH_WAITING_HALVES") or 1_000_000)
AB_REF = os.environ.get("BENCH_AB_REF", "")
LATENCY_INTERVAL = 0.005  # 200 rows/s
IDLE_SECONDS = 10.0


class RowCounter:
    """Counts the rows appended to the CSV since this counter was made, reading only what is new at each look."""

    def __init__(self, path: Path) -> None:
        self.path, self.rows, self._offset = path, 0, 0
        if path.exists():
            self._offset = path.stat().st_size
        else:
            self.rows = -1  # the header is no row

    def count(self) -> int:
        if self.path.exists():
            with self.path.open("rb") as file:
                file.seek(self._offset)
                data = file.read()
            self.rows += data.count(b"\n")
            self._offset += len(data)
        return max(self.rows, 0)


class Bench:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.node = RabbitNode(folder / "rabbit")
        self.node.base.mkdir()
        self.model_path = folder / "model.skops"
        train = [sys.executable, str(REPO / "model" / "src" / "train.py")]
        environment = os.environ | {"DATASET_PATH": "", "MODEL_PATH": str(self.model_path)}
        subprocess.run(train, env=environment, check=True, capture_output=True)

    def services(self, logs: Path, code: Path = REPO, keep: bool = False, **environment: str) -> Services:
        """Services run from ``code`` (this checkout, or another version's) on a fresh ``logs`` (or ``keep`` it)."""
        if logs.exists() and not keep:
            shutil.rmtree(logs)
        logs.mkdir(exist_ok=True)
        base = {"AMQP_URL": self.node.url, "LOGS_DIR": str(logs), "MODEL_PATH": str(self.model_path)}
        if code != REPO:
            base["PYTHONPATH"] = str(code / "common")  # before the editable install of this checkout's package
        return Services(self.folder, base | environment, code)

    def drain(
        self, cluster: RabbitCluster | None = None, code: Path = REPO, logs: Path | None = None
    ) -> tuple[float, float]:
        """Rows/s of model and metric, from their start, through ROWS rows queued beforehand (on ``cluster`` if
        given, the services connected to all three nodes, else on the single node), and metric's peak memory.
        ``code``: the checkout to run; ``logs``: a folder to keep (with halves already waiting), else a fresh one."""
        url, admin_url = (cluster.url, cluster.nodes[0].url) if cluster else (self.node.url, self.node.url)
        delete_queues(admin_url)
        services = self.services(logs or self.folder / "drain", code, keep=logs is not None, AMQP_URL=url)
        logs = Path(services.environment["LOGS_DIR"])
        services.start("features", FEATURES_INTERVAL="0", FEATURES_LIMIT=str(ROWS))
        assert services.wait("features", timeout=600) == 0
        wait_until(lambda: queue_depths(admin_url)["y_true"] == ROWS, 60, f"{ROWS} rows queued")
        counter = RowCounter(logs / "metric_log.csv")
        started = time.perf_counter()
        services.start("model")
        metric = services.start("metric", METRIC_ORPHAN_TIMEOUT="86400")
        wait_until(lambda: counter.count() >= ROWS, 900, f"{ROWS} rows in the CSV", poll=0.01)
        elapsed = time.perf_counter() - started
        memory = peak_resident_mb(metric.pid)
        stop_gracefully(services, "model", "metric")
        return ROWS / elapsed, memory

    def model_rate(self, input_drift: str) -> tuple[float, float]:
        """Rows/s of model alone (INPUT_DRIFT ``on`` or ``off``) through ROWS rows queued beforehand, from its first
        prediction (its start-up, loading scikit-learn, is not counted) until y_pred holds them all; and the CPU
        time model spent per row meanwhile (µs), which a busy machine disturbs far less than the rate."""
        delete_queues(self.node.url)
        services = self.services(self.folder / "model-rate")
        services.start("features", FEATURES_INTERVAL="0", FEATURES_LIMIT=str(ROWS))
        assert services.wait("features", timeout=600) == 0
        model = services.start("model", INPUT_DRIFT=input_drift)
        predicted = lambda: queue_depths(self.node.url).get(Y_PRED, 0)  # noqa: E731  # no queue before model declares it
        first = wait_until(predicted, 120, "a first prediction", poll=0.01)
        started, cpu_before = time.perf_counter(), cpu_seconds(model.pid)
        wait_until(lambda: predicted() >= ROWS, 600, f"{ROWS} predictions", poll=0.01)
        elapsed, cpu = time.perf_counter() - started, cpu_seconds(model.pid) - cpu_before
        stop_gracefully(services, "model")
        return (ROWS - first) / elapsed, 1e6 * cpu / (ROWS - first)

    def input_drift_ab(self) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """model's rows/s and CPU per row with input drift and without, REPEAT pairs on the same node, the order
        swapped from one pair to the next (on-off, off-on, …) so that neither side always runs first."""
        with_it, without = [], []
        for pair in range(REPEAT):
            if pair % 2:
                without.append(self.model_rate("off"))
                with_it.append(self.model_rate("on"))
            else:
                with_it.append(self.model_rate("on"))
                without.append(self.model_rate("off"))
        return with_it, without

    def plot_inputs(self) -> dict[str, Any]:
        """plot's side of input drift, in-process: reading and judging the counts of ROWS rows (wine's 12 features and
        the predictions, three replicas), and a refresh that finds 50 new blocks."""
        folder = self.folder / "plot-inputs"
        probe = subprocess.run(
            [sys.executable, "-c", INPUTS_PROBE, str(folder), str(ROWS), str(REPEAT)],
            capture_output=True,
            text=True,
            check=True,
            env=os.environ | {"PYTHONPATH": f"{REPO / 'plot' / 'src'}:{REPO}"},
        )
        return json.loads(probe.stdout)

    def cluster_drains(self) -> list[float]:
        """The drain on three nodes of the same server on this machine, REPEAT times (the single node idles)."""
        cluster = RabbitCluster(self.folder / "cluster")
        cluster.start()
        try:
            return [self.drain(cluster)[0] for _ in range(REPEAT)]
        finally:
            cluster.stop()

    def ab_drains(self, ref: str) -> tuple[list[float], list[float]]:
        """The drain of this checkout and of git revision ``ref``, REPEAT pairs on the same node, the order swapped
        from one pair to the next."""
        code = self.folder / "ab-ref"
        code.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(code)], input=archive, check=True)
        ours, theirs = [], []
        for pair in range(REPEAT):
            if pair % 2:
                theirs.append(self.drain(code=code)[0])
                ours.append(self.drain()[0])
            else:
                ours.append(self.drain()[0])
                theirs.append(self.drain(code=code)[0])
        return ours, theirs

    def waiting_drains(self) -> dict[str, Any]:
        """WAITING_HALVES halves left waiting on disk (y_pred halves whose y_true never comes), metric's peak memory
        while it takes them, then the drain beside them alternated with the drain with none waiting."""
        logs = self.folder / "waiting"
        services = self.services(logs)
        delete_queues(self.node.url)
        metric = services.start("metric", METRIC_ORPHAN_TIMEOUT="86400", METRIC_MAX_WAITING=str(2 * WAITING_HALVES))
        wait_until(lambda: services.is_ready("metric"), 60, "metric to be ready")
        publish_lonely_halves(self.node.url, WAITING_HALVES)
        waiting = lambda: (read_status(logs) or {}).get("waiting", {}).get("y_pred", 0)  # noqa: E731
        wait_until(lambda: waiting() >= WAITING_HALVES, 1800, f"{WAITING_HALVES} halves waiting", poll=0.5)
        taking = peak_resident_mb(metric.pid)
        stop_gracefully(services, "metric")
        disk = sum(path.stat().st_size for path in logs.glob("metric_waiting.sqlite*"))
        none, beside = [], []
        for _ in range(REPEAT):
            none.append(self.drain())
            beside.append(self.drain(logs=logs))
        return {"taking MB": taking, "disk MB": disk / 1e6, "none": none, "beside": beside}

    def backlog(self) -> dict[str, float]:
        """Peak resident memory of metric and model through BACKLOG_ROWS queued rows: metric first alone (every model
        down, so y_true halves can only wait), then with a model until every row is in the CSV."""
        delete_queues(self.node.url)
        logs = self.folder / "backlog"
        services = self.services(logs)
        services.start("features", FEATURES_INTERVAL="0", FEATURES_LIMIT=str(BACKLOG_ROWS))
        assert services.wait("features", timeout=3600) == 0
        figures: dict[str, float] = {}
        metric = services.start("metric")

        def metric_waits() -> bool:
            paused = "pausing y_true" in services.log("metric")
            return paused or (services.is_ready("metric") and queue_depths(self.node.url)["y_true"] == 0)

        wait_until(metric_waits, 600, "metric to pause y_true or to take it all", poll=0.5)
        figures["metric alone MB"] = peak_resident_mb(metric.pid)
        counter = RowCounter(logs / "metric_log.csv")
        started = time.perf_counter()
        model = services.start("model")
        wait_until(lambda: counter.count() >= BACKLOG_ROWS, 3600, f"{BACKLOG_ROWS} rows in the CSV", poll=0.5)
        figures["drain s"] = time.perf_counter() - started
        figures["metric MB"], figures["model MB"] = peak_resident_mb(metric.pid), peak_resident_mb(model.pid)
        stop_gracefully(services, "model", "metric")
        return figures

    def wire_limit(self) -> float:
        return wire_limit.measure(self.node.url, ROWS)

    def latency(self) -> tuple[float, float]:
        """p50 and p99 in ms from features publishing a row to its line in the CSV, at 200 rows/s."""
        delete_queues(self.node.url)
        logs, ledger = self.folder / "latency", self.folder / "latency.ledger"
        ledger.unlink(missing_ok=True)
        services = self.services(logs)
        services.start("model")
        services.start("metric")
        wait_until(lambda: services.is_ready("model") and services.is_ready("metric"), 60, "model and metric")
        services.start(
            "features",
            FEATURES_INTERVAL=str(LATENCY_INTERVAL),
            FEATURES_LIMIT=str(LATENCY_ROWS),
            FEATURES_LEDGER=str(ledger),
        )
        seen = watch_rows(logs / "metric_log.csv", LATENCY_ROWS)
        assert services.wait("features", timeout=60) == 0
        stop_gracefully(services, "model", "metric")
        published = {}
        for line in ledger.read_text().splitlines():
            if line.startswith("published "):
                _state, row_id, moment = line.split()
                published[row_id] = float(moment)
        delays = sorted(1000 * (seen[row_id] - published[row_id]) for row_id in seen)
        return percentile(delays, 50), percentile(delays, 99)

    def plot(self, rows: int) -> dict[str, Any]:
        """Refresh times and memory of the plot on a CSV of ``rows`` rows, and its CPU use while nothing changes."""
        logs = self.folder / f"plot-{rows}"
        logs.mkdir(exist_ok=True)
        write_csv(logs / "metric_log.csv", rows)
        probe = subprocess.run(
            [sys.executable, "-c", PLOT_PROBE, str(logs), str(REPEAT)],
            capture_output=True,
            text=True,
            check=True,
            env=os.environ | {"PYTHONPATH": f"{REPO / 'plot' / 'src'}:{REPO}"},
        )
        figures = json.loads(probe.stdout)
        figures["idle CPU %"] = idle_cpu(self.services(logs / "idle", PLOT_INTERVAL="2"), logs)
        return figures


INPUTS_PROBE = """
import json, sys, time
from pathlib import Path
import numpy as np, pandas as pd
from input_drift import InputDrift
from pipeline import profile
from pipeline.input_counts import BLOCK_ROWS, CountsWriter
from tests.helpers import REPO

folder, rows, repeat = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
frame = pd.read_csv(REPO / "data" / "wine.csv")
data = frame.drop(columns=["alcohol"]).to_numpy(float)
reference = profile.make(data, data[:, 0], list(frame.columns[1:]), "wine", "0" * 64)  # a stand-in prediction
rng = np.random.default_rng(1)
writers = [CountsWriter(folder, reference, replica=str(index)) for index in range(3)]

def write(count):
    for start in range(0, count, BLOCK_ROWS):
        picked = data[rng.integers(0, len(data), BLOCK_ROWS)]
        writers[start // BLOCK_ROWS % 3].add(picked, picked[:, 0])
    for writer in writers:
        writer.flush()

write(rows)
started = time.perf_counter()
drift = InputDrift(folder)
drift.refresh()
first = time.perf_counter() - started
refreshes = []
for _ in range(max(repeat, 5)):
    write(50 * BLOCK_ROWS)
    started = time.perf_counter()
    drift.refresh()
    drift.summary()
    refreshes.append(1000 * (time.perf_counter() - started))
print(json.dumps({"first rows/s": rows / first, "50 blocks ms": refreshes}))
"""

PLOT_PROBE = """
import json, sys, threading, time, urllib.request
from pathlib import Path
from page import PageServer
from plot import Plotter

def rss_mb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024

def poll_every_second(port, polls, stop):  # what the page does in a browser: the summary, then changed pictures
    seen = {}
    while not stop.wait(1.0):
        started = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/summary.json", timeout=10) as response:
            pictures = json.loads(response.read())["pictures"]
        for name, url in pictures.items():
            if url and seen.get(name) != url:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{url}", timeout=10).read()
                seen[name] = url
        polls.append(time.perf_counter() - started)

logs, repeat = Path(sys.argv[1]), int(sys.argv[2])
plotter = Plotter(logs)
server = PageServer(("127.0.0.1", 0), plotter, logs, stalled_after=15.0)
threading.Thread(target=server.serve_forever, daemon=True).start()
polls, stop = [], threading.Event()
threading.Thread(target=poll_every_second, args=(server.server_address[1], polls, stop), daemon=True).start()
started = time.perf_counter()
while plotter.refresh():  # the first read, then both pictures
    pass
first = time.perf_counter() - started
new_row, nothing_new, block_done, over_time = [], [], [], []
for index in range(max(repeat, 10)):  # a refresh every half second, as with PLOT_INTERVAL=0.5, beside the client
    with open(logs / "metric_log.csv", "ab") as file:
        file.write(b"extra%d,1.0,2.5,1.5\\n" % index)
    started = time.perf_counter()
    assert plotter.refresh()
    new_row.append(time.perf_counter() - started)
    started = time.perf_counter()
    assert not plotter.refresh()
    nothing_new.append(time.perf_counter() - started)
    time.sleep(0.5)
timeline = plotter._stats.timeline
for index in range(repeat):  # rows that complete the open block: the distribution, then the error over time
    missing = timeline.block_size - (timeline.rows - (timeline.ends[-1] if timeline.ends else 0))
    with open(logs / "metric_log.csv", "ab") as file:
        file.write(b"".join(b"block%d-%d,1.0,2.5,1.5\\n" % (index, row) for row in range(missing)))
    drawn = timeline.ends[-1] if timeline.ends else 0
    started = time.perf_counter()
    assert plotter.refresh()
    block_done.append(time.perf_counter() - started)
    assert timeline.ends[-1] > drawn
    started = time.perf_counter()
    assert plotter.refresh()
    over_time.append(time.perf_counter() - started)
stop.set()
print(json.dumps({
    "first refresh s": first,
    "refresh on a new row ms": [1000 * value for value in new_row],
    "refresh with nothing new ms": [1000 * value for value in nothing_new],
    "refresh completing a block ms": [1000 * value for value in block_done],
    "refresh drawing the error over time ms": [1000 * value for value in over_time],
    "block rows": timeline.block_size,
    "page polls ms": [1000 * value for value in polls] or [0.0],
    "resident MB": rss_mb("VmRSS:"),
    "peak resident MB": rss_mb("VmHWM:"),
}))
"""


def idle_cpu(services: Services, logs: Path) -> float:
    """CPU % of the plot service over IDLE_SECONDS once it has drawn the CSV in ``logs``."""
    services.environment["LOGS_DIR"] = str(logs)
    pictures = [logs / "error_distribution.png", logs / "error_over_time.png"]
    for picture in pictures:
        picture.unlink(missing_ok=True)
    process = services.start("plot")
    wait_until(lambda: all(picture.exists() for picture in pictures), 600, "the first pictures", poll=0.1)
    before, started = cpu_seconds(process.pid), time.monotonic()
    time.sleep(IDLE_SECONDS)  # the measurement window itself
    used = cpu_seconds(process.pid) - before
    stop_gracefully(services, "plot")
    return 100 * used / (time.monotonic() - started)


def publish_lonely_halves(url: str, count: int) -> None:
    """``count`` y_pred halves, stamped now, whose y_true never comes (unconfirmed: metric counts what arrives)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    properties = pika.BasicProperties(delivery_mode=2, timestamp=int(time.time()))
    for _ in range(count):
        channel.basic_publish("", Y_PRED, encode(new_id(), 100.0), properties)
    connection.close()


def peak_resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for process {pid}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def watch_rows(path: Path, rows: int) -> dict[str, float]:
    """When each row's line appeared in the CSV, by polling every millisecond."""
    seen: dict[str, float] = {}
    offset, partial = 0, b""
    deadline = time.monotonic() + 60 + rows * LATENCY_INTERVAL
    while len(seen) < rows and time.monotonic() < deadline:
        if path.exists():
            with path.open("rb") as file:
                file.seek(offset)
                data = file.read()
            offset += len(data)
            now = time.time()
            lines = (partial + data).split(b"\n")
            partial = lines.pop()
            for line in lines:
                row_id = line.split(b",", 1)[0].decode()
                if row_id != "id":
                    seen.setdefault(row_id, now)
        time.sleep(0.001)
    assert len(seen) >= rows, f"only {len(seen)} of {rows} rows arrived"
    return seen


def write_csv(path: Path, rows: int) -> None:
    if path.exists() and path.stat().st_size > 0:
        return
    rng = random.Random(1)
    with path.open("wb") as file:
        file.write(b"id,y_true,y_pred,absolute_error\n")
        for start in range(0, rows, 100_000):
            lines = []
            for index in range(start, min(rows, start + 100_000)):
                y_true, y_pred = float(rng.randrange(25, 346)), rng.uniform(25.0, 320.0)
                lines.append(f"row{index},{y_true!r},{y_pred!r},{abs(y_true - y_pred)!r}\n")
            file.write("".join(lines).encode())


def percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(len(values) * share / 100))]


def spread(values: list[float], unit: str, digits: int = 0) -> str:
    median = statistics.median(values)
    return f"{median:,.{digits}f} {unit} ({min(values):,.{digits}f} to {max(values):,.{digits}f})"


def ratios_of(values: list[float], others: list[float]) -> list[float]:
    return [value / other for value, other in zip(values, others, strict=True)]


def repeat(measure: Callable[[], tuple[float, float]]) -> list[tuple[float, float]]:
    return [measure() for _ in range(REPEAT)]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        bench = Bench(Path(folder))
        bench.node.start()
        try:
            table = run(bench)
        finally:
            bench.node.stop()
    print("\n| part | figure: median (min to max) |\n|---|---|")
    for part, figure in table:
        print(f"| {part} | {figure} |")
    return 0


def run(bench: Bench) -> list[tuple[str, str]]:
    drains, limits = [], []
    for _ in range(REPEAT):  # each drain next to its wire limit, so that their ratio shares the machine's state
        drains.append(bench.drain()[0])
        limits.append(bench.wire_limit())
    ratios = ratios_of(drains, limits)
    table = [(f"drain of {ROWS:,} queued rows", spread(drains, "rows/s"))]
    table += [("wire limit (bare relay, same broker)", spread(limits, "rows/s"))]
    table += [("drain / wire limit", spread(ratios, "", 2))]
    with_it, without = bench.input_drift_ab()
    rates_on, rates_off = [rate for rate, _ in with_it], [rate for rate, _ in without]
    cpu_on, cpu_off = [cpu for _, cpu in with_it], [cpu for _, cpu in without]
    table += [
        (f"model alone, {ROWS:,} queued rows, input drift on (alternated with the next)", spread(rates_on, "rows/s")),
        (f"model alone, {ROWS:,} queued rows, INPUT_DRIFT=off", spread(rates_off, "rows/s")),
        ("model: input drift on / off, rows/s (pair by pair)", spread(ratios_of(rates_on, rates_off), "", 2)),
        ("model: CPU per row, input drift on", spread(cpu_on, "µs", 1)),
        ("model: CPU per row, INPUT_DRIFT=off", spread(cpu_off, "µs", 1)),
        ("model: input drift on / off, CPU per row (pair by pair)", spread(ratios_of(cpu_on, cpu_off), "", 2)),
    ]
    inputs = bench.plot_inputs()
    table += [
        (f"plot: first read and judgement of {ROWS:,} rows' input counts", f"{inputs['first rows/s']:,.0f} rows/s"),
        ("plot: a refresh that finds 50 new blocks of input counts", spread(inputs["50 blocks ms"], "ms", 2)),
    ]
    cluster_drains = bench.cluster_drains()
    table += [(f"drain of {ROWS:,} queued rows, three-node cluster", spread(cluster_drains, "rows/s"))]
    cluster_ratio = statistics.median(cluster_drains) / statistics.median(drains)
    table += [("three-node cluster / single node (medians)", f"{cluster_ratio:.2f}")]
    waiting = bench.waiting_drains()
    none, beside = [rate for rate, _ in waiting["none"]], [rate for rate, _ in waiting["beside"]]
    table += [
        (f"metric taking {WAITING_HALVES:,} halves that wait: peak memory", f"{waiting['taking MB']:.0f} MB"),
        (f"{WAITING_HALVES:,} halves waiting: metric_waiting.sqlite on disk", f"{waiting['disk MB']:.0f} MB"),
        (f"drain of {ROWS:,} queued rows, none waiting (alternated with the next)", spread(none, "rows/s")),
        (f"drain of {ROWS:,} queued rows beside {WAITING_HALVES:,} waiting", spread(beside, "rows/s")),
        ("drain beside them / drain with none (pair by pair)", spread(ratios_of(beside, none), "", 2)),
        (
            f"metric draining beside {WAITING_HALVES:,} waiting: peak memory",
            spread([memory for _, memory in waiting["beside"]], "MB"),
        ),
    ]
    if AB_REF:
        ours, theirs = bench.ab_drains(AB_REF)
        table += [
            (f"drain of {ROWS:,} queued rows, this checkout (alternated with the next)", spread(ours, "rows/s")),
            (f"drain of {ROWS:,} queued rows, {AB_REF}", spread(theirs, "rows/s")),
            (f"this checkout / {AB_REF} (pair by pair)", spread(ratios_of(ours, theirs), "", 2)),
        ]
    latencies = repeat(bench.latency)
    table += [(f"latency p50 at 200 rows/s ({LATENCY_ROWS:,} rows)", spread([p50 for p50, _ in latencies], "ms", 1))]
    table += [(f"latency p99 at 200 rows/s ({LATENCY_ROWS:,} rows)", spread([p99 for _, p99 in latencies], "ms", 1))]
    memory = bench.backlog()
    table += [
        (f"metric, {BACKLOG_ROWS:,} rows queued, every model down: peak memory", f"{memory['metric alone MB']:.0f} MB"),
        (f"metric and model draining {BACKLOG_ROWS:,} queued rows", f"{BACKLOG_ROWS / memory['drain s']:,.0f} rows/s"),
        (f"metric, {BACKLOG_ROWS:,} queued rows drained: peak memory", f"{memory['metric MB']:.0f} MB"),
        (f"model, {BACKLOG_ROWS:,} queued rows drained: peak memory", f"{memory['model MB']:.0f} MB"),
    ]
    for rows in PLOT_ROWS:
        figures = bench.plot(rows)
        table += [
            (f"plot, {rows:,}-row CSV: first read and draw", f"{figures['first refresh s']:.1f} s"),
            (
                f"plot, {rows:,}-row CSV: refresh on a new row, the page polled every second",
                spread(figures["refresh on a new row ms"], "ms", 1),
            ),
            (
                f"plot, {rows:,}-row CSV: the page's poll (summary.json and a changed picture)",
                spread(figures["page polls ms"], "ms", 1),
            ),
            (f"plot, {rows:,}-row CSV: refresh, nothing new", spread(figures["refresh with nothing new ms"], "ms", 2)),
            (
                f"plot, {rows:,}-row CSV: refresh reading a block of {figures['block rows']:,} new rows",
                spread(figures["refresh completing a block ms"], "ms", 1),
            ),
            (
                f"plot, {rows:,}-row CSV: the next refresh (error over time)",
                spread(figures["refresh drawing the error over time ms"], "ms", 1),
            ),
            (
                f"plot, {rows:,}-row CSV: resident memory",
                f"{figures['resident MB']:.0f} MB (peak {figures['peak resident MB']:.0f} MB)",
            ),
            (f"plot, {rows:,}-row CSV: CPU while nothing changes", f"{figures['idle CPU %']:.2f} %"),
        ]
    return table


if __name__ == "__main__":
    sys.exit(main())
