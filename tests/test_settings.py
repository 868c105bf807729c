import pytest

from features import load_label_delay
from pipeline.settings import SettingsError, env_amqp_url, env_choice, env_float, env_int, load_common


def test_defaults_apply_when_variables_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AMQP_URL", "LOGS_DIR", "QUEUE_TYPE", "LOG_LEVEL", "HEALTH_FILE"):
        monkeypatch.delenv(name, raising=False)
    common = load_common()
    assert common.amqp_url.startswith("amqp://")
    assert (common.queue_type, common.log_level, common.logs_dir) == ("quorum", "INFO", "logs")


def test_values_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_FLOAT", "0.25")
    monkeypatch.setenv("X_INT", "7")
    monkeypatch.setenv("X_CHOICE", "Classic")
    assert env_float("X_FLOAT", 1.0) == 0.25
    assert env_int("X_INT", 0) == 7
    assert env_choice("X_CHOICE", "quorum", ("quorum", "classic")) == "classic"


@pytest.mark.parametrize(
    ("read", "value"),
    [
        (lambda: env_float("X_VAR", 1.0), "soon"),
        (lambda: env_float("X_VAR", 1.0), "-1"),
        (lambda: env_float("X_VAR", 1.0), "inf"),
        (lambda: env_int("X_VAR", 0), "1.5"),
        (lambda: env_int("X_VAR", 0, minimum=1), "0"),
        (lambda: env_choice("X_VAR", "quorum", ("quorum", "classic")), "stream"),
        (lambda: env_amqp_url("X_VAR", "amqp://localhost"), "http://localhost"),
        (lambda: env_amqp_url("X_VAR", "amqp://localhost"), "amqp://a:5672/%2F,amqp://,amqp://c:5672/%2F"),
    ],
)
def test_a_bad_value_names_its_variable(monkeypatch: pytest.MonkeyPatch, read, value: str) -> None:
    monkeypatch.setenv("X_VAR", value)
    with pytest.raises(SettingsError, match="X_VAR"):
        read()


def test_several_urls_separated_by_commas_are_the_nodes_of_a_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    nodes = "amqp://u:p@rabbit1:5672/%2F, amqp://u:p@rabbit2:5672/%2F,amqp://u:p@rabbit3:5672/%2F"
    monkeypatch.setenv("AMQP_URL", nodes)
    assert load_common().amqp_urls == [f"amqp://u:p@rabbit{node}:5672/%2F" for node in (1, 2, 3)]
    monkeypatch.setenv("AMQP_URL", "amqp://u:p@single:5672/%2F")
    assert load_common().amqp_urls == ["amqp://u:p@single:5672/%2F"]


@pytest.mark.parametrize(
    ("value", "queue_type", "expected"),
    [("", "quorum", 0.0), ("3600", "quorum", 3600.0), ("0", "classic", 0.0)],
)
def test_a_label_delay_is_read_in_seconds(value: str, queue_type: str, expected: float) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEATURES_LABEL_DELAY", value)
        assert load_label_delay(queue_type) == expected


@pytest.mark.parametrize(
    ("value", "queue_type"), [("soon", "quorum"), ("-5", "quorum"), ("2592001", "quorum"), ("60", "classic")]
)
def test_a_label_delay_features_cannot_keep_names_its_variable(value: str, queue_type: str) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEATURES_LABEL_DELAY", value)
        with pytest.raises(SettingsError, match="FEATURES_LABEL_DELAY"):
            load_label_delay(queue_type)
