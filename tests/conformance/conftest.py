"""Fixtures of the conformance suite: the server of the six modules, and the hub pointed at it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from conformance.checks import environment
from conformance.harness import connections
from conformance.server import ConformanceServer
from hub_dev.airflow_env import warehouse_connection_env
from hub_dev.postgres import PrivatePostgres


@pytest.fixture(scope="session")
def conformance_server() -> Iterator[ConformanceServer]:
    with ConformanceServer() as server:
        yield server


@pytest.fixture(scope="session")
def pseudonym_key() -> str:
    return "conformance-" + secrets.token_hex(8)


@pytest.fixture(scope="session")
def hub(
    conformance_server: ConformanceServer, pseudonym_key: str, private_pg: PrivatePostgres
) -> Iterator[ConformanceServer]:
    """The server, with the hub's settings and Airflow connections pointing at it (and a
    warehouse, where the land task holds the window's lease)."""
    with environment(
        HUB_PSEUDONYM_KEY=pseudonym_key,
        HUB_HTTP_MAX_BACKOFF_SECONDS="1",
        **connections(conformance_server),
        **warehouse_connection_env(private_pg, "conformance_leases"),
    ):
        yield conformance_server
