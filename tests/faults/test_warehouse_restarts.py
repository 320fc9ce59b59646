"""PostgreSQL restarted in immediate mode (a crash) under a load and under a dbt build.

The cluster is this module's own (restarting the session's would cut other tests' open
connections), on a fixed port so that it comes back where the hub looks for it, with
``synchronous_commit`` on: an immediate shutdown must not take commits with it, or the
rows that "were there before" would not be.

Each crash comes at a point the test holds the other side at, not at a guessed moment:

- the load's COPY stalls at its 1,500th row (a row trigger sleeps there), so the crash
  comes with half the window copied;
- a build's merge of new rows into ``fct_violations``, then the next build's update of
  ``agg_violations_hourly``, waits on a lock the test holds on that table, so the crash
  comes inside that statement.

dbt builds only the models under test (``+fct_violations agg_violations_hourly``: the
policy staging view, dim_assets and what it reads, the fact and its hourly aggregate): a
whole ``dbt build`` would take minutes on its own.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from analytics_hub import warehouse
from analytics_hub.connectors import Endpoint, ModuleClient
from analytics_hub.lake import Lake
from analytics_hub.windows import Window
from faults.bad_upstream import BadUpstream, listing
from faults.support import (
    PATH,
    POLICY,
    VIOLATIONS,
    WINDOW,
    keys,
    local_settings,
    pages,
    pipeline,
    violation,
    violations,
    wait_for,
)
from hub_dev.dbt import DbtRunner
from hub_dev.net import free_port
from hub_dev.postgres import PrivatePostgres

pytestmark = pytest.mark.integration

MODELS = ("--select", "+fct_violations", "agg_violations_hourly")
LANDING = warehouse.landing_table(POLICY.name, VIOLATIONS.name)
STALL_AT = 1_500


@pytest.fixture(scope="module")
def pg() -> Iterator[PrivatePostgres]:
    # Not tmp_path: the server's own account must be able to enter the directory.
    root = Path(tempfile.mkdtemp(prefix="hub-pg-faults-"))
    root.chmod(0o755)
    cluster = PrivatePostgres(
        root / "data", port=free_port(), settings={"synchronous_commit": "on"}
    )
    try:
        with cluster:
            yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def crash_and_restart(pg: PrivatePostgres) -> None:
    """An immediate shutdown (SIGQUIT to the postmaster: no checkpoint, every session cut),
    then a start, which recovers from the WAL."""
    pid = pg.running_pid()
    assert pid is not None
    os.kill(pid, signal.SIGQUIT)
    wait_for(lambda: not pg.is_running(), "the postmaster to exit", timeout=30)
    pg.start()


def database(pg: PrivatePostgres, name: str) -> str:
    pg.create_database(name)
    dsn = pg.dsn(name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        warehouse.ensure_landing_tables(conn)
    return dsn


class Landed:
    """A local lake and a pipeline that publishes what the module serves, window by window."""

    def __init__(self, upstream: BadUpstream, tmp_path: Path) -> None:
        self.settings = local_settings(tmp_path)
        self.hub = pipeline(self.settings, tmp_path / "work")
        self.upstream = upstream

    @property
    def lake(self) -> Lake:
        return self.hub.lake

    def publish(self, records: list[dict[str, Any]], window: Window = WINDOW) -> None:
        self.upstream.route(PATH, listing(pages(records, 500)))
        endpoint = Endpoint(self.upstream.url, self.upstream.token or "")
        with ModuleClient(POLICY, endpoint, self.settings) as client:
            assert self.hub.land(client, VIOLATIONS, window).status == "passed"

    def load(self, dsn: str, window: Window = WINDOW) -> warehouse.LoadResult:
        with psycopg.connect(dsn, autocommit=True) as conn:
            return warehouse.load_window(conn, self.lake, POLICY.name, VIOLATIONS.name, window)


def loaded_keys(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute(f"select event_id from {LANDING}").fetchall()]


# --- a load ---------------------------------------------------------------------------------


def test_a_crash_mid_copy_leaves_the_old_rows_and_the_retry_loads_once(
    pg: PrivatePostgres, module_server: BadUpstream, tmp_path: Path
) -> None:
    dsn = database(pg, "faults_load")
    landed = Landed(module_server, tmp_path)
    old, new = violations(500, "a"), violations(3_000, "b")
    landed.publish(old)
    assert landed.load(dsn).rows == len(old)
    landed.publish(new)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            f"""
            create sequence copied;
            create function stall_midway() returns trigger language plpgsql as $$
            begin
                if nextval('copied') = {STALL_AT} then perform pg_sleep(600); end if;
                return new;
            end $$;
            create trigger stall_midway before insert on {LANDING}
                for each row execute function stall_midway();
            """
        )

    failures: list[BaseException] = []

    def load() -> None:
        try:
            landed.load(dsn)
        except BaseException as exc:  # asserted on by the test
            failures.append(exc)

    loading = threading.Thread(target=load)
    loading.start()
    with psycopg.connect(dsn, autocommit=True) as watching:

        def copy_stalled() -> bool:
            row = watching.execute(
                "select p.tuples_processed from pg_stat_progress_copy as p"
                " join pg_stat_activity as a using (pid)"
                " where a.wait_event = 'PgSleep' and a.query ilike 'copy %'"
            ).fetchone()
            return row is not None and row[0] == STALL_AT - 1

        wait_for(copy_stalled, "the COPY to stall midway")
    crash_and_restart(pg)
    loading.join(timeout=60)

    (failure,) = failures
    assert isinstance(failure, psycopg.OperationalError)
    before = loaded_keys(dsn)
    assert len(before) == len(set(before)) == len(old) and set(before) == keys(old)

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"drop trigger stall_midway on {LANDING}")
    retried = landed.load(dsn)
    assert (retried.rows, retried.replaced) == (len(new), len(old))
    after = loaded_keys(dsn)
    assert len(after) == len(set(after)) == len(new) and set(after) == keys(new)


# --- a dbt build ----------------------------------------------------------------------------


def fact_rows(dsn: str) -> list[tuple[str, str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select violation_id, event_id from analytics.fct_violations order by 1"
        ).fetchall()
    return [(str(v), str(e)) for v, e in rows]


def hourly_violations(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select sum(violations) from analytics.agg_violations_hourly").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def crash_inside(
    pg: PrivatePostgres, dbt: DbtRunner, dsn: str, relation: str
) -> tuple[str, int, str]:
    """Start a build, let it block on ``relation`` (the test holds it in SHARE mode, which
    every write waits for) and crash the server then; returns the statement that was
    waiting, and dbt's exit code and output."""
    with psycopg.connect(dsn) as holding:
        holding.execute(f"lock table {relation} in share mode")
        build = dbt.start("build", *MODELS)
        try:
            with psycopg.connect(dsn, autocommit=True) as watching:

                def waiting() -> str | None:
                    row = watching.execute(
                        "select a.query from pg_locks as l join pg_stat_activity as a using (pid)"
                        " where not l.granted and l.relation = %s::regclass",
                        (relation,),
                    ).fetchone()
                    return None if row is None else str(row[0])

                wait_for(
                    lambda: waiting() is not None,
                    f"the build to wait on {relation}",
                    timeout=300,  # dbt's own start takes a while on a busy machine
                )
                statement = waiting() or ""
            crash_and_restart(pg)
            holding.close()  # its session died with the server
        finally:
            output, _ = build.communicate(timeout=600)
    return statement, build.returncode, output


def test_a_crash_mid_build_changes_nothing_and_the_rebuild_counts_each_once(
    pg: PrivatePostgres, module_server: BadUpstream, tmp_path: Path
) -> None:
    dsn = database(pg, "faults_dbt")
    dbt = DbtRunner(
        dsn, target_path=tmp_path / "dbt" / "target", log_path=tmp_path / "dbt" / "logs"
    )
    landed = Landed(module_server, tmp_path)
    first = WINDOW
    second = Window(WINDOW.end, WINDOW.end + (WINDOW.end - WINDOW.start))
    early = violations(200, "w1", first)
    # the second hour: new violations, and 20 of the first hour's delivered again under
    # new event ids, which the fact counts once (exactly-once by violation_id)
    again = [violation(n, "w1", second) | {"event_id": f"pol-again-{n}"} for n in range(20)]
    late = violations(200, "w2", second) + again
    expected = {r["data"]["violation_id"] for r in early + late}
    landed.publish(early, first)
    landed.load(dsn, first)
    dbt.run("build", *MODELS)
    built_first = fact_rows(dsn)
    assert len(built_first) == len(early) == hourly_violations(dsn)

    landed.publish(late, second)
    landed.load(dsn, second)

    # 1. inside the fact's merge of the second hour's rows
    statement, code, output = crash_inside(pg, dbt, dsn, "analytics.fct_violations")
    assert "delete from" in statement and "insert into" in statement, statement
    assert code != 0, output[-3000:]
    assert fact_rows(dsn) == built_first, "the interrupted merge left the fact as it was"
    assert hourly_violations(dsn) == len(early)

    # 2. the rebuild merges the fact, and the crash comes inside the aggregate's update
    statement, code, output = crash_inside(pg, dbt, dsn, "analytics.agg_violations_hourly")
    assert "delete from" in statement and "insert into" in statement, statement
    assert code != 0, output[-3000:]
    merged = fact_rows(dsn)
    assert {v for v, _ in merged} == expected and len(merged) == len(expected)
    assert hourly_violations(dsn) == len(early), "the interrupted update left the aggregate"

    dbt.run("build", *MODELS)

    rebuilt = fact_rows(dsn)
    assert rebuilt == merged and len(expected) == 400
    assert len({e for _, e in rebuilt}) == len(rebuilt)
    assert not any(e.startswith("pol-again-") for _, e in rebuilt), "first deliveries count"
    assert hourly_violations(dsn) == len(expected)
    with psycopg.connect(dsn) as conn:
        assert conn.execute(
            "select to_regclass('analytics.fct_violations__new_rows')"
        ).fetchone() == (None,), "the build's table of new rows was cleaned up"

    # A clean build of the same landing tables gives the same fact and aggregate.
    dbt.run("build", "--full-refresh", "--select", "fct_violations", "agg_violations_hourly")
    assert fact_rows(dsn) == rebuilt
    assert hourly_violations(dsn) == len(expected)
