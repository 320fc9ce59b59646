"""Fixtures of the fault tests: a module that answers as told, a warehouse to load into."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from analytics_hub import warehouse
from faults.bad_upstream import BadUpstream


@pytest.fixture(scope="module")
def bad_upstream_server() -> Iterator[BadUpstream]:
    with BadUpstream() as upstream:
        yield upstream


@pytest.fixture
def module_server(bad_upstream_server: BadUpstream) -> BadUpstream:
    """The policy module, played by ``BadUpstream``: no routes, no requests logged yet."""
    bad_upstream_server.reset()
    return bad_upstream_server


@pytest.fixture
def landing(new_database: Callable[[str], str]) -> Iterator[psycopg.Connection[Any]]:
    """A fresh warehouse database with its landing tables (on the session's cluster)."""
    with psycopg.connect(new_database("faults"), autocommit=True) as conn:
        warehouse.ensure_landing_tables(conn)
        yield conn
