"""Effectively-once under crashes: the pipeline at full speed while a seeded driver SIGKILLs services and the broker.

Three model replicas, features at full speed with a ledger of published and confirmed ids, metric, plot, and one
poison row that kills any model predicting it. Every killed or crashed process is started again after a short
delay, as a restart policy would. After the kill phase features is stopped, the rest drain, and the CSV is checked
against the ledger. CHAOS_SEED replays a run; CHAOS_SECONDS sets the length of the kill phase. CHAOS_CLUSTER=3 runs
the broker as a three-node cluster and kills nodes instead: one at a time, each started again a few seconds later,
and once two together (no majority) for 10 s. CHAOS_LABEL_DELAY=N makes every label come N seconds after its row
(FEATURES_LABEL_DELAY): the broker holds them in y_true.delayed through its own kills.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from pathlib import Path

import joblib
import matplotlib.image
import pytest
import train

from pipeline.messages import encode, new_id
from pipeline.topology import FEATURES, dead_letter_queue
from tests.chaos.poison_model import POISON_VALUE, DiesOnPoison
from tests.helpers import REPO
from tests.helpers.csv_log import csv_lines
from tests.helpers.ledger import ledger_ids
from tests.helpers.ports import port_open
from tests.helpers.queues import pipeline_queues_empty, publish_raw, queue_depths
from tests.helpers.rabbit import RabbitCluster, RabbitNode
from tests.helpers.services import Services, stop_gracefully
from tests.helpers.waiting import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]

SEED = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1_000_000))
KILL_PHASE = float(os.environ.get("CHAOS_SECONDS") or 90)
SERVICE_KILLS = {"features": 3, "model": 3, "metric": 3, "plot": 3}
BROKER_KILLS = 2
QUORUM_SETTLE = 15  # seconds new quorum queues need before a broker SIGKILL is survived (rabbitmq-server#10070)
REPLICAS = [f"model-{index}" for index in range(3)]
MIN_ROWS = 20_000
TICK = 0.05  # the driver's clock
PICTURE_EVERY = 0.5
POISON_AT = 10  # second of the run at which the poison row is published
BROKER_CHECK_EVERY = 1.0  # seconds between the driver's looks at the broker's port
BROKER_DEAF_LIMIT = 30.0  # seconds a running broker may refuse connections before the driver restarts it
CLUSTER = os.environ.get("CHAOS_CLUSTER", "") == "3"
NODE_KILLS = 4  # with CHAOS_CLUSTER=3: single nodes killed, one at a time
MAJORITY_DOWN = 10.0  # seconds two of the three nodes stay down, once
LABEL_DELAY = os.environ.get("CHAOS_LABEL_DELAY") or "0"


def kill_schedule(rng: random.Random) -> list[tuple[float, str]]:
    """(second of the run, target) for every kill, sorted; broker kills after the queues settled, 25 s apart."""
    events = [(rng.uniform(3, KILL_PHASE), name) for name, count in SERVICE_KILLS.items() for _ in range(count)]
    first = rng.uniform(QUORUM_SETTLE + 5, KILL_PHASE / 2)
    if CLUSTER:  # node kills 12 s apart, so one node is down at a time, and one stretch with two down
        starts = sorted(rng.sample(range(int(QUORUM_SETTLE) + 5, int(KILL_PHASE) - 5, 12), NODE_KILLS + 1))
        events += [(float(start), "node") for start in starts[:-1]] + [(float(starts[-1]), "majority")]
    else:
        events += [(first, "rabbitmq"), (rng.uniform(first + 25, KILL_PHASE), "rabbitmq")]
    return sorted(events)


class Chaos:
    """One run: the broker and the services as processes, the driver's schedule, and what the run leaves behind."""

    def __init__(self, folder: Path, rng: random.Random) -> None:
        self.rng = rng
        self.started = time.monotonic()
        self.logs, self.ledger = folder / "logs", folder / "ledger"
        self.csv, self.picture = self.logs / "metric_log.csv", self.logs / "error_distribution.png"
        self.logs.mkdir()
        self.node = RabbitNode(folder / "rabbit")
        self.node.base.mkdir()
        self.cluster = RabbitCluster(folder / "cluster") if CLUSTER else None
        self.node_restarts: dict[str, float] = {}  # cluster node name -> when to start it again
        model_path = folder / "poison-model.joblib"
        joblib.dump(DiesOnPoison(train.train(folder / "model.joblib")), model_path)
        self.services = Services(
            folder,
            {
                "AMQP_URL": self.cluster.url if self.cluster else self.node.url,
                "LOGS_DIR": str(self.logs),
                "MODEL_PATH": str(model_path),
                "PYTHONPATH": str(REPO),
                "PLOT_INTERVAL": "0.5",
                "FEATURES_INTERVAL": "0",
                "FEATURES_LEDGER": str(self.ledger),
                "FEATURES_LABEL_DELAY": LABEL_DELAY,
            },
        )
        self.kills: Counter[str] = Counter()
        self.crashes: Counter[str] = Counter()
        self.restarts: dict[str, float] = {}  # process name -> when to start it again
        self.stopped: set[str] = set()  # stopped on purpose: not to be started again
        self.pictures = self.bad_pictures = 0
        self._next_picture = self._next_broker_check = 0.0
        self._broker_deaf_since: float | None = None
        self.drain_state = "not draining yet"

    def now(self) -> float:
        return time.monotonic() - self.started

    def admin_url(self) -> str:
        """A URL of a broker node that is up, for the driver's own looks at the queues."""
        if self.cluster is None:
            return self.node.url
        return next(node.url for node in self.cluster.nodes if node.running and port_open(node.port))

    def stop_brokers(self) -> None:
        for node in self.cluster.nodes if self.cluster else [self.node]:
            node.kill()

    def broker_logs(self) -> str:
        nodes = self.cluster.nodes if self.cluster else [self.node]
        return "\n".join(f"----- {node.name} -----\n{node.log_tail()}" for node in nodes)

    def start_all(self) -> None:
        """Start the broker and every service; the run's clock starts when all have declared their queues."""
        if self.cluster:
            self.cluster.start()
        else:
            self.node.start()
        for name in ("metric", "plot", *REPLICAS, "features"):
            self.start(name)
        for name in ("metric", *REPLICAS, "features"):
            wait_until(lambda n=name: self.services.is_ready(n), 60, f"{name} to be ready", poll=0.1)
        self.started = time.monotonic()

    def start(self, name: str) -> None:
        self.services.start(name, service=name.split("-", maxsplit=1)[0])

    def alive(self, name: str) -> bool:
        return self.services.processes[name].poll() is None

    def run_schedule(self, events: list[tuple[float, str]]) -> None:
        """Fire each kill when due (later if its target is down), poison the model once, and tend the processes."""
        poisoned = False
        while events or self.restarts or self.node_restarts:
            if events and events[0][0] <= self.now():
                _when, target = events.pop(0)
                if not self.kill(target):
                    events.insert(0, (self.now() + 1.0, target))
            if not poisoned and self.now() > POISON_AT:
                publish_raw(self.admin_url(), [(FEATURES, encode(new_id(), [POISON_VALUE] * 10))])
                poisoned = True
            self.tend()
            time.sleep(TICK)

    def kill(self, target: str) -> bool:
        """SIGKILL the target (a random replica for "model"); False if it is down already."""
        if target == "rabbitmq":
            self.node.kill()
            self.kills[target] += 1
            self.node.start()
            return True
        if target in ("node", "majority"):
            return self.kill_nodes(target)
        name = self.rng.choice(REPLICAS) if target == "model" else target
        if not self.alive(name) or name in self.restarts:
            return False
        self.services.kill(name)
        self.kills[target] += 1
        self.restarts[name] = self.now() + self.rng.uniform(0.2, 2.0)
        return True

    def kill_nodes(self, target: str) -> bool:
        """SIGKILL one random node ("node") or two ("majority") of a whole cluster; False while one is still down."""
        assert self.cluster is not None
        if self.node_restarts or not all(node.running and port_open(node.port) for node in self.cluster.nodes):
            return False
        victims = self.rng.sample(self.cluster.nodes, 1 if target == "node" else 2)
        back = self.now() + (self.rng.uniform(2, 8) if target == "node" else MAJORITY_DOWN)
        for node in victims:
            node.kill()
            self.node_restarts[node.name] = back
        self.kills[target] += 1
        return True

    def tend_nodes(self) -> None:
        """Start again the cluster's nodes that are due, and any that exited on its own."""
        assert self.cluster is not None
        for node in self.cluster.nodes:
            due = self.node_restarts.get(node.name)
            if due is None and not node.running:
                print(f"\nnode {node.name} exited on its own at {self.now():.0f} s; its log ends:\n{node.log_tail()}")
                self.crashes["rabbitmq"] += 1
                due = self.now()
            if due is not None and due <= self.now():
                self.node_restarts.pop(node.name, None)
                node.launch()

    def tend(self) -> None:
        """Start again what is due, notice crashes (the broker's too), sample the picture."""
        if self.cluster:
            self.tend_nodes()
        else:
            self.tend_broker()
        for name, process in self.services.processes.items():
            if process.poll() is not None and name not in self.restarts and name not in self.stopped:
                self.crashes[name.split("-")[0]] += 1
                self.restarts[name] = self.now() + 1.0
        for name, due in list(self.restarts.items()):
            if due <= self.now():
                del self.restarts[name]
                self.start(name)
        if self.now() >= self._next_picture and self.picture.exists():
            self._next_picture = self.now() + PICTURE_EVERY
            self.pictures += 1
            try:
                matplotlib.image.imread(self.picture)
            except (OSError, SyntaxError, ValueError):
                self.bad_pictures += 1

    def tend_broker(self) -> None:
        """Restart a broker that exited on its own, or that has refused connections for BROKER_DEAF_LIMIT seconds."""
        if self.now() < self._next_broker_check:
            return
        self._next_broker_check = self.now() + BROKER_CHECK_EVERY
        if self.node.running and port_open(self.node.port):
            self._broker_deaf_since = None
            return
        if self._broker_deaf_since is None:
            self._broker_deaf_since = self.now()
        if self.node.running and self.now() - self._broker_deaf_since < BROKER_DEAF_LIMIT:
            return
        what = f"refused connections for {BROKER_DEAF_LIMIT:g} s" if self.node.running else "exited on its own"
        print(f"\nthe broker {what} at {self.now():.0f} s; its log ends:\n{self.node.log_tail()}")
        self.crashes["rabbitmq"] += 1
        self.node.kill()
        self.node.start()
        self._broker_deaf_since = None

    def drain(self) -> None:
        """Stop features for good, then wait until every confirmed row is written and the queues are empty."""
        self.wait_until_ready("features")
        self.stopped.add("features")
        stop_gracefully(self.services, "features")
        confirmed = set(ledger_ids(self.ledger))

        def settled() -> bool:
            self.tend()
            missing = confirmed - {line.split(",", 1)[0] for line in csv_lines(self.csv)[1:]}
            # the poison row may still be out, crashing the replica it reaches; it settles in features.dead
            depths = queue_depths(self.admin_url())
            self.drain_state = f"{len(missing)} of {len(confirmed)} confirmed rows not in the CSV; queues {depths}"
            return not missing and pipeline_queues_empty(depths) and depths[dead_letter_queue(FEATURES)] >= 1

        wait_until(settled, 240, "every confirmed row, empty queues and the poison row in features.dead", poll=0.2)
        for name in ("metric", "plot", *REPLICAS):
            self.wait_until_ready(name)
        self.stopped.update(["metric", "plot", *REPLICAS])
        stop_gracefully(self.services, "metric", *REPLICAS, "plot")

    def wait_until_ready(self, name: str) -> None:
        """Wait, still tending, until ``name`` runs and handles signals (a SIGTERM during start-up kills it)."""

        def ready() -> bool:
            self.tend()
            return name not in self.restarts and self.alive(name) and self.services.is_ready(name)

        wait_until(ready, 60, f"{name} to be ready", poll=0.2)

    def figures(self) -> dict[str, int]:
        lines = csv_lines(self.csv)
        ids = [line.split(",", 1)[0] for line in lines[1:]]
        confirmed = set(ledger_ids(self.ledger))
        return {
            "rows": len(ids),
            "confirmed": len(confirmed),
            "lost": len(confirmed - set(ids)),
            "duplicated": len(ids) - len(set(ids)),
            "unexpected": len(set(ids) - set(ledger_ids(self.ledger, "published"))),
            "malformed": malformed(lines),
            "pictures sampled": self.pictures,
            "bad pictures": self.bad_pictures,
            "dead-lettered features": queue_depths(self.admin_url())[dead_letter_queue(FEATURES)],
        }


def malformed(lines: list[str]) -> int:
    """Lines that are not a whole row with its error right, counting a missing or repeated header."""
    bad = int(not lines or lines[0] != "id,y_true,y_pred,absolute_error")
    for line in lines[1:]:
        fields = line.rsplit(",", 3)
        try:
            y_true, y_pred, error = (float(field) for field in fields[1:])
            bad += len(fields) != 4 or error != abs(y_true - y_pred)
        except ValueError:
            bad += 1
    return bad


def test_no_row_is_lost_or_duplicated_whatever_is_killed(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    events = kill_schedule(rng)
    late = f", labels {LABEL_DELAY} s late" if float(LABEL_DELAY) else ""
    where = " on a three-node cluster" if CLUSTER else ""
    print(f"\nchaos seed {SEED}{where}{late}: {len(events)} kills over {KILL_PHASE:g} s")
    chaos = Chaos(tmp_path, rng)
    try:
        chaos.start_all()
        chaos.run_schedule(events)
        chaos.drain()
        figures = chaos.figures()
    except BaseException:
        print(f"at {chaos.now():.0f} s: {chaos.drain_state}")
        for name in chaos.services.processes:
            print(f"----- {name} -----\n{chaos.services.log(name)[-3000:]}")
        print(chaos.broker_logs())
        raise
    finally:
        chaos.services.stop_all()
        chaos.stop_brokers()

    print(f"chaos seed {SEED}: {chaos.now():.0f} s")
    print("kills: " + ", ".join(f"{name} {count}" for name, count in sorted(chaos.kills.items())))
    print("crashes restarted: " + (", ".join(f"{n} {c}" for n, c in sorted(chaos.crashes.items())) or "none"))
    print("figures: " + ", ".join(f"{name} {value}" for name, value in figures.items()))

    assert figures["confirmed"] >= MIN_ROWS
    assert all(chaos.kills[name] >= count for name, count in SERVICE_KILLS.items())
    if CLUSTER:
        assert chaos.kills["node"] >= NODE_KILLS and chaos.kills["majority"] >= 1
    else:
        assert chaos.kills["rabbitmq"] >= BROKER_KILLS
    assert (figures["lost"], figures["duplicated"], figures["unexpected"], figures["malformed"]) == (0, 0, 0, 0)
    assert figures["pictures sampled"] >= 100 and figures["bad pictures"] == 0
    assert figures["dead-lettered features"] == 1, "the poison row, and only it, ends in features.dead"
    assert chaos.crashes["model"] >= 1, "the poison row crashed a model"
