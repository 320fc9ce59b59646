"""Session fixtures for services the tests start themselves: no Docker, no system services.

- ``private_pg``: a PostgreSQL cluster from the installed server binaries, in a temp dir,
  on a free port of 127.0.0.1 (durability off for speed).
- ``new_database``: a factory that creates a fresh, uniquely named database in it.
- ``s3_server``: moto in server mode on a free port, with one empty bucket.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hub_dev.postgres import PrivatePostgres
from hub_dev.s3 import MotoS3Server

# The longest files, first: ``make test`` hands files to two workers in collection order,
# and a long file handed out last runs alone while the other worker has nothing left.
LONGEST_FIRST = ("tests/integration/", "tests/conformance/test_through_dags.py")

# What starts a service (PostgreSQL, S3, simulators, a module server, Airflow) or runs dbt:
# marked `integration`, which `make test-unit` leaves out. A unit test that reaches for a
# service over the network fails there (pytest-socket), so one missing here shows.
INTEGRATION = (
    "tests/integration/",
    "tests/conformance/",
    "tests/faults/",
    "tests/hub_dev/",
    "tests/analytics_hub/test_connectors.py",
    "tests/simulators/test_http.py",
    "tests/quality/test_mart_suites.py",
    "tests/test_image.py",
)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """``make test-unit`` does not import what it would deselect (Airflow, the stack)."""
    if config.getoption("markexpr") != "not integration":
        return None
    relative = collection_path.relative_to(config.rootpath).as_posix()
    return (relative + "/" if collection_path.is_dir() else relative).startswith(INTEGRATION)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(INTEGRATION):
            item.add_marker(pytest.mark.integration)
    items.sort(key=lambda item: not item.nodeid.startswith(LONGEST_FIRST))  # stable


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    # Not pytest's tmp_path: that lives in a 0700 directory the unprivileged account that
    # runs PostgreSQL under root cannot enter. A short path also keeps the socket path legal.
    root = Path(tempfile.mkdtemp(prefix="hub-pg-"))
    root.chmod(0o755)
    pg = PrivatePostgres(root / "data")
    try:
        with pg:
            yield pg
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def new_database(private_pg: PrivatePostgres) -> Callable[[str], str]:
    """Create a fresh database named after ``prefix``; return its libpq DSN."""

    def create(prefix: str = "test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        private_pg.create_database(name)
        return private_pg.dsn(name)

    return create


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoS3Server]:
    with MotoS3Server() as server:
        yield server


@pytest.fixture
def s3_lake_env(s3_server: MotoS3Server, monkeypatch: pytest.MonkeyPatch) -> MotoS3Server:
    """Point the hub's settings (``HUB_LAKE_URL``, ``HUB_S3_*``) and AWS clients at moto."""
    for name, value in {**s3_server.env(), **s3_server.hub_env()}.items():
        monkeypatch.setenv(name, value)
    return s3_server
