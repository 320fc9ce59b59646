"""The private PostgreSQL cluster answers over TCP on 127.0.0.1 and over its unix socket."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from hub_dev.postgres import PrivatePostgres

pytestmark = pytest.mark.integration


def test_sql_over_tcp(private_pg: PrivatePostgres) -> None:
    assert private_pg.dsn().startswith(f"postgresql://postgres@127.0.0.1:{private_pg.port}/")
    with psycopg.connect(
        host="127.0.0.1", port=private_pg.port, user="postgres", dbname="postgres"
    ) as conn:
        conn.execute("create temp table t (id int primary key, v text)")
        conn.execute("insert into t values (1, 'a'), (2, 'b')")
        row = conn.execute("select count(*), string_agg(v, ',' order by id) from t").fetchone()
        assert row == (2, "a,b")
        addr = conn.execute("select inet_server_addr()::text").fetchone()
        assert addr == ("127.0.0.1/32",)


def test_settings_for_tests(private_pg: PrivatePostgres) -> None:
    with psycopg.connect(private_pg.dsn()) as conn:
        settings = dict(
            conn.execute(
                "select name, setting from pg_settings where name in "
                "('fsync', 'synchronous_commit', 'listen_addresses', 'server_encoding')"
            ).fetchall()
        )
    assert settings == {
        "fsync": "off",
        "synchronous_commit": "off",
        "listen_addresses": "127.0.0.1",
        "server_encoding": "UTF8",
    }


def test_unix_socket_in_data_dir(private_pg: PrivatePostgres) -> None:
    assert (private_pg.socket_dir / f".s.PGSQL.{private_pg.port}").exists()
    with psycopg.connect(
        host=str(private_pg.socket_dir), port=private_pg.port, user="postgres"
    ) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_create_database_is_idempotent(
    private_pg: PrivatePostgres, new_database: Callable[[str], str]
) -> None:
    dsn = new_database("idem")
    name = dsn.rsplit("/", 1)[-1]
    private_pg.create_database(name)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select current_database()").fetchone() == (name,)


def test_sqlalchemy_url_uses_psycopg3(private_pg: PrivatePostgres) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    engine = sqlalchemy.create_engine(private_pg.sqlalchemy_url())
    try:
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("select 41 + 1")).scalar_one() == 42
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()


@pytest.fixture
def cluster_dir() -> Path:
    root = Path(tempfile.mkdtemp(prefix="hub-pg-cli-"))
    root.chmod(0o755)
    return root / "pg"


def _stack(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub_dev", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=120,
        check=False,
    )


def test_cli_up_reuses_and_down_stops(cluster_dir: Path) -> None:
    try:
        first = _stack("up", data_dir=cluster_dir)
        assert first.returncode == 0, first.stderr
        assert "postgres started" in first.stdout
        second = _stack("up", data_dir=cluster_dir)
        assert "already running" in second.stdout
        assert _dsn_line(first.stdout) == _dsn_line(second.stdout)
        with psycopg.connect(_dsn_line(first.stdout)) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        assert _stack("status", data_dir=cluster_dir).returncode == 0
    finally:
        down = _stack("down", data_dir=cluster_dir)
    assert down.returncode == 0, down.stderr
    assert _stack("status", data_dir=cluster_dir).returncode == 1
    assert not PrivatePostgres(cluster_dir).is_running()


def _dsn_line(stdout: str) -> str:
    return next(line.split()[-1] for line in stdout.splitlines() if "dsn:" in line)
