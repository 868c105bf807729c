"""The late-labels scenario both brokers run (Debian's 3.10 in make test, the pinned 4.0 in make e2e): labels held by
the broker in y_true.delayed, features SIGKILLed during the delay and started again."""

from __future__ import annotations

import time

from pipeline.topology import FEATURES, Y_PRED, Y_TRUE, Y_TRUE_DELAYED, dead_letter_queue
from tests.helpers.csv_log import CsvWatch
from tests.helpers.ledger import ledger_ids, ledger_published_at
from tests.helpers.queues import queue_depths, take_ids
from tests.helpers.stream import Stream
from tests.helpers.waiting import wait_until

DEAD_LETTER_QUEUES = [dead_letter_queue(queue) for queue in (FEATURES, Y_TRUE, Y_PRED)]


def late_labels_survive_a_killed_features(stream: Stream, delay: float, rows_before_kill: int = 500) -> None:
    """Labels ``delay`` seconds late; features killed after ``rows_before_kill`` confirmed rows, then 300 more. Every
    confirmed row once, none written before its label was due, nothing of a confirmed row dead-lettered."""
    late = {"FEATURES_INTERVAL": "0.01", "FEATURES_LABEL_DELAY": str(delay)}
    watch = CsvWatch(stream.csv)  # from the start: a row written early is seen early, however slow the machine
    stream.start(**late)

    def confirmed_enough() -> bool:
        watch.look()
        return len(ledger_ids(stream.ledger)) >= rows_before_kill

    wait_until(confirmed_enough, 60, f"{rows_before_kill} confirmed rows", poll=0.02)
    stream.services.kill("features")
    held = queue_depths(stream.url)[Y_TRUE_DELAYED]
    # Which labels must still be held depends on the clock, not on how fast the rows came: those not due when the
    # depth was read (the clock read after it, so a label coming due meanwhile is not counted).
    due_by, published = time.time() - delay, ledger_published_at(stream.ledger)
    not_due = [row_id for row_id in ledger_ids(stream.ledger) if published[row_id] > due_by]
    assert held >= len(not_due), f"the broker holds {held} late labels, {len(not_due)} of them not due yet"
    features = stream.services.start("features", FEATURES_LIMIT="300", FEATURES_LEDGER=str(stream.ledger), **late)

    def features_done() -> bool:
        watch.look()  # rows keep coming meanwhile: each seen as soon as it is written
        return features.poll() is not None

    wait_until(features_done, 60, "features to publish 300 rows and exit", poll=0.02)
    assert features.returncode == 0

    confirmed = ledger_ids(stream.ledger)
    wait_until(lambda: watch.look() >= len(confirmed), 60 + 2 * delay, f"{len(confirmed)} rows", poll=0.02)
    published = ledger_published_at(stream.ledger)
    early = [row_id for row_id, seen in watch.seen.items() if seen < published[row_id] + delay]
    assert not early, f"{len(early)} rows written before their label was due"
    stream.finish()
    unconfirmed = set(published) - set(confirmed)  # cut by the SIGKILL: one of their halves may be alone
    for queue in DEAD_LETTER_QUEUES:
        stray = set(take_ids(stream.url, queue)) - unconfirmed
        assert not stray, f"{len(stray)} halves of confirmed rows in {queue}"
