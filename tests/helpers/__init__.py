"""Real parts for the tests, one module for each thing they start or read: waiting, ports, rabbit (private RabbitMQ
nodes and clusters), queues (the pipeline's queues on a broker), services (the service processes and model's
scripts), csv_log and ledger (what metric and features wrote), stream (a whole run), plot_page (plot serving its
page), examples (the data, profiles and estimators the tests feed in); and REPO, the checkout they all run from."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
