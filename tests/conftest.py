from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
import train

from tests.helpers.queues import delete_queues
from tests.helpers.rabbit import RabbitNode
from tests.helpers.services import Services
from tests.helpers.stream import Stream


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture
def test_failed(request: pytest.FixtureRequest) -> Callable[[], bool]:
    """Ask, in a fixture's teardown, whether the test failed."""
    return lambda: request.node.stash.get(FAILED, False)


@pytest.fixture(scope="session")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    """One private RabbitMQ node shared by the tests that do not restart it."""
    node = RabbitNode(tmp_path_factory.mktemp("rabbit"))
    node.start()
    yield node
    node.stop()


@pytest.fixture
def broker_url(rabbit: RabbitNode) -> str:
    """The shared node, with the pipeline's queues deleted so each test starts empty."""
    delete_queues(rabbit.url)
    return rabbit.url


@pytest.fixture
def own_rabbit(tmp_path: Path) -> Iterator[RabbitNode]:
    """A node of the test's own, not started yet: for tests that stop, kill or start the broker."""
    node = RabbitNode(tmp_path / "rabbit")
    node.base.mkdir()
    yield node
    node.kill()


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.skops"
    train.train(path)
    return path


@pytest.fixture
def logs_dir(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    return path


@pytest.fixture
def make_services(
    test_failed: Callable[[], bool], tmp_path: Path, logs_dir: Path, model_path: Path
) -> Iterator[Callable[..., Services]]:
    """Build a Services runner against a broker URL; every process is killed at the end, logs shown on failure."""
    created: list[Services] = []

    def make(url: str, **environment: str) -> Services:
        base = {
            "AMQP_URL": url,
            "LOGS_DIR": str(logs_dir),
            "MODEL_PATH": str(model_path),
            "PLOT_INTERVAL": "0.2",
            "LOG_LEVEL": "INFO",
        }
        services = Services(tmp_path, base | environment)
        created.append(services)
        return services

    yield make
    for services in created:
        services.stop_all()
        if test_failed():
            for name in services.processes:
                print(f"----- {name} -----\n{services.log(name)[-4000:]}")


@pytest.fixture
def stream(make_services: Callable[..., Services], broker_url: str, logs_dir: Path) -> Stream:
    """features (with a ledger), model and metric on the shared node, not started yet."""
    return Stream(make_services(broker_url), broker_url, logs_dir)
