import os
from pathlib import Path

import pytest

from features import load_label_delay
from pipeline.health import is_fresh
from pipeline.settings import (
    SettingsError,
    env_amqp_url,
    env_choice,
    env_float,
    env_int,
    env_prefetch,
    load_common,
    writable_health_file,
)


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
        (lambda: env_amqp_url("X_VAR", "amqp://localhost"), "amqp://a:99999/%2F"),
        (lambda: env_amqp_url("X_VAR", "amqp://localhost"), "amqp://a:0/%2F"),
        (lambda: env_amqp_url("X_VAR", "amqp://localhost"), "amqp://a:port/%2F"),
        (lambda: env_amqp_url("X_VAR", "amqp://localhost"), "amqp://a/%2F?heartbeat=70000"),
        (lambda: env_amqp_url("X_VAR", "amqp://localhost"), "amqp://a/%2F?heartbeat=soon"),
        (lambda: env_amqp_url("X_VAR", "amqp://localhost"), "amqp://a/%2F?hearbeat=30"),
        (lambda: env_amqp_url("X_VAR", "amqp://localhost"), "amqp://a/%2F?frame_max=10"),
        (lambda: env_amqp_url("X_VAR", "amqp://localhost"), "amqps://a/%2F?ssl_options={"),
        (
            lambda: env_amqp_url("X_VAR", "amqp://localhost"),
            "amqps://a/%2F?ssl_options=%7B%27ca_certs%27%3A%27%2Fnope%27%7D",
        ),
        (lambda: env_int("X_VAR", 0, maximum=10), "11"),
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


def test_a_url_pika_accepts_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "amqp://u:p@a:65535/%2F?heartbeat=65535&blocked_connection_timeout=60,amqps://u:p@b/%2F"
    monkeypatch.setenv("AMQP_URL", url)
    assert load_common().amqp_url == url


def test_a_bad_url_among_several_is_named_by_its_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_URL", "amqp://a:5672/%2F,amqp://b:99999/%2F")
    with pytest.raises(SettingsError, match=r"AMQP_URL \(URL 2 of 2\): the port must be from 1 to 65535"):
        load_common()


@pytest.mark.parametrize(("value", "expected"), [("", 500), ("1", 1), ("65535", 65535)])
def test_a_prefetch_is_from_1_to_65535(monkeypatch: pytest.MonkeyPatch, value: str, expected: int) -> None:
    monkeypatch.setenv("PREFETCH", value)
    assert env_prefetch() == expected


@pytest.mark.parametrize("value", ["0", "65536", "70000"])
def test_a_prefetch_beyond_amqp_s_16_bits_names_its_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("PREFETCH", value)
    with pytest.raises(SettingsError, match="PREFETCH"):
        env_prefetch()


def test_a_health_file_is_created_and_reads_unhealthy_until_touched(tmp_path: Path) -> None:
    path = tmp_path / "healthy"
    assert writable_health_file("HEALTH_FILE", str(path)) == str(path)
    assert path.exists()
    assert not is_fresh(str(path), 30), "healthy before the service is ready"


@pytest.mark.parametrize("where", ["missing/healthy", "folder"])
def test_a_health_file_that_cannot_be_written_names_its_variable(tmp_path: Path, where: str) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(SettingsError, match=r"^HEALTH_FILE: cannot write the file"):
        writable_health_file("HEALTH_FILE", str(tmp_path / where))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_health_file_in_a_read_only_folder_names_its_variable(tmp_path: Path) -> None:
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o500)
    with pytest.raises(SettingsError, match=r"^HEALTH_FILE"):
        writable_health_file("HEALTH_FILE", str(folder / "healthy"))


@pytest.mark.broker
@pytest.mark.parametrize(
    ("service", "variable", "value"),
    [
        ("model", "PREFETCH", "70000"),
        ("metric", "PREFETCH", "70000"),
        ("features", "AMQP_URL", "amqp://guest:guest@127.0.0.1:99999/%2F"),
        ("metric", "AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F,amqp://guest:guest@127.0.0.1:99999/%2F"),
        ("model", "AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F?heartbeat=70000"),
        ("features", "HEALTH_FILE", "/nonexistent/healthy"),
        ("model", "HEALTH_FILE", "/proc/healthy"),
        ("plot", "HEALTH_FILE", "/"),
    ],
)
def test_a_setting_that_would_fail_later_stops_the_service_at_start_naming_it(
    make_services, broker_url: str, service: str, variable: str, value: str
) -> None:
    """Values that pass a first look but fail once connected (or once ready) are refused at start: one line, exit 2."""
    services = make_services(broker_url, **{variable: value})
    services.start(service)
    assert services.wait(service, timeout=60) == 2, services.log(service)[-2000:]
    output = services.log(service).strip().splitlines()
    assert len(output) == 1 and variable in output[0], output
