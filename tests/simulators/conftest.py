from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from simulators import SimulatorConfig, create_app


@pytest.fixture
def make_client() -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def build(**overrides: Any) -> TestClient:
        client = TestClient(create_app(SimulatorConfig(**overrides)))
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()
