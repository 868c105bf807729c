"""What the Compose test modules share: each defines a module-scoped ``stack`` fixture and uses this one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture
def stack_logs_on_failure(
    request: pytest.FixtureRequest, stack: Any, test_failed: Callable[[], bool]
) -> Iterator[None]:
    """Steps run in order on one stack: skip the rest once one failed, and print the containers' logs for it."""
    if request.session.testsfailed:
        pytest.skip("an earlier step failed")
    yield
    if test_failed():
        print(f"----- container logs -----\n{stack.logs()}")
