from pipeline.topology import DELIVERY_LIMIT, declarations, queue_arguments


def test_quorum_queues_dead_letter_into_their_dead_queue_with_a_delivery_limit() -> None:
    arguments = queue_arguments("features", "quorum")
    assert arguments["x-dead-letter-routing-key"] == "features.dead"
    assert arguments["x-delivery-limit"] == DELIVERY_LIMIT
    assert arguments["x-queue-type"] == "quorum"


def test_classic_queues_dead_letter_too() -> None:
    arguments = queue_arguments("y_true", "classic")
    assert arguments["x-dead-letter-routing-key"] == "y_true.dead"
    assert "x-delivery-limit" not in arguments


def test_each_queue_comes_after_its_dead_letter_queue() -> None:
    names = [name for name, _arguments in declarations(["y_true", "y_pred"], "quorum")]
    assert names == ["y_true.dead", "y_true", "y_pred.dead", "y_pred"]
