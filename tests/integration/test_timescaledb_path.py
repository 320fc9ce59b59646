"""The TimescaleDB path against the plain PostgreSQL path, on the same lake windows.

The same simulated windows of every module (chaos on), pulled through the lake gate
(``Pipeline``), are loaded into a private PostgreSQL
database and into a real TimescaleDB (the WebAssembly build, behind the project's wire
server in tests/tooling/pglite_server), and dbt builds both. On TimescaleDB the facts must
be hypertables by day with their indexes and policies, the rollups continuous aggregates;
on PostgreSQL, day-partitioned tables and plain tables. Every fact and rollup must hold the
same rows on both (`_loaded_at` aside), after the first build, after retention and
compression ran (TimescaleDB: its policy jobs via `CALL run_job`; PostgreSQL: partition
drops), and after a late re-pull into a compressed chunk built incrementally.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from asset_states import ASSET_FACTS, deliver_asset_state, facts_off_their_asset_state

from analytics_hub import warehouse
from analytics_hub.pipeline import Pipeline
from analytics_hub.settings import load_gate_settings, load_settings
from analytics_hub.windows import Window
from hub_dev.dbt import DbtRunner
from hub_dev.local_hub import simulator_endpoints
from hub_dev.postgres import PrivatePostgres
from hub_dev.timescale_wasm import PgliteTimescale
from simulators import SimulatorConfig, SimulatorProcess

pytestmark = pytest.mark.integration

CONFIG = SimulatorConfig(seed=21, chaos=0.3, stall_seconds=0.0, fault_rate=0.0)
# Retention and compression act on times relative to now, so the windows are too. They stay
# out of the simulator's quiet night hours (00:00-06:00 UTC), whose registry windows may
# be empty: the late asset state test needs an asset landed in COMPRESSED.
HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
if HOUR.hour < 9:
    HOUR = HOUR.replace(hour=0) - timedelta(hours=1)
EXPIRED = Window(HOUR - timedelta(days=9), HOUR - timedelta(days=9, hours=-1))  # > 7 days
COMPRESSED = Window(HOUR - timedelta(days=4), HOUR - timedelta(days=4, hours=-1))  # > 2 days
RECENT = Window(HOUR - timedelta(hours=3), HOUR - timedelta(hours=2))
FACTS = ["fct_requests", "fct_violations", "fct_evaluations", "fct_security_events"]
FACTS += ["fct_cost_records"]


class Target:
    """One warehouse (database) that dbt builds, reached by libpq DSN."""

    def __init__(self, name: str, dsn: str, root: Path, threads: int):
        self.name, self.dsn, self.root = name, dsn, root
        self.runner = DbtRunner(
            dsn,
            target_path=root / name / "target",
            log_path=root / name / "logs",
            # detected, whatever the environment forces
            env={"HUB_DBT_THREADS": str(threads), "HUB_WAREHOUSE_KIND": None},
        )

    def dbt(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = self.runner.run(*args, env=env, check=False)
        assert result.returncode == 0, f"{self.name}: dbt {args}\n{result.stdout[-6000:]}"
        return result.stdout

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn) as conn:
            conn.execute("set timezone to 'UTC'")
            return conn.execute(sql).fetchall()  # type: ignore[arg-type]

    def relation_rows(self, relation: str) -> list[tuple[Any, ...]]:
        """Every row of analytics.<relation> but `_loaded_at` (the load time), as text, sorted."""
        columns = [
            name
            for (name,) in self.rows(
                "select column_name from information_schema.columns where table_schema ="
                f" 'analytics' and table_name = '{relation}' order by ordinal_position"
            )
            if name != "_loaded_at"
        ]
        assert columns, f"{self.name}: analytics.{relation} not found"
        # as text, in UTC: 'infinity' (dim_assets.valid_to) has no Python value
        listed = ", ".join(f"{column}::text" for column in columns)
        return self.rows(f"select {listed} from analytics.{relation} order by {listed}")


def marts(target: Target, materialized: str | None = None) -> list[str]:
    """The mart and report models of the build's manifest (of one materialization, if
    given)."""
    manifest = json.loads((target.root / target.name / "target" / "manifest.json").read_text())
    return sorted(
        node["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
        and node["fqn"][1] in ("marts", "reports")
        and materialized in (None, node["config"]["materialized"])
    )


def load(hub: Pipeline, targets: list[Target], windows: list[Window]) -> None:
    for target in targets:
        with psycopg.connect(target.dsn, autocommit=True) as conn:
            hub.load(conn, windows)


def assert_same_marts(postgres: Target, timescale: Target) -> None:
    names = marts(postgres)
    assert names == marts(timescale)
    assert {*FACTS, "agg_model_latency_hourly", "rpt_costops_usage_hourly"} <= set(names)
    for relation in names:
        expected = postgres.relation_rows(relation)
        assert expected, f"{relation} is empty: nothing compared"
        assert timescale.relation_rows(relation) == expected, relation


@pytest.fixture(scope="module")
def warehouses(
    private_pg: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Target, Target, Pipeline]]:
    root = tmp_path_factory.mktemp("two-warehouses")
    hub = Pipeline.from_settings(
        load_settings(lake_url=str(root / "lake")),
        load_gate_settings(work_dir=str(root / "work")),
        pseudonym_key=b"k",
    )
    with SimulatorProcess(CONFIG) as sim:  # landed only: loaded below, into both warehouses
        hub.run(simulator_endpoints(sim.url), [EXPIRED, COMPRESSED, RECENT])
    private_pg.create_database("warehouse_paths")
    with PgliteTimescale() as pglite:
        # PGlite serves one connection at a time: dbt gets one thread there
        postgres = Target("postgres", private_pg.dsn("warehouse_paths"), root, threads=2)
        timescale = Target("timescaledb", pglite.dsn, root, threads=1)
        load(hub, [postgres, timescale], [EXPIRED, COMPRESSED])
        for target in (postgres, timescale):
            target.dbt("build")
        yield postgres, timescale, hub


def test_warehouse_kind_is_detected_and_can_be_forced(
    warehouses: tuple[Target, Target, Pipeline],
) -> None:
    postgres, timescale, _ = warehouses
    assert "warehouse_kind: postgres" in postgres.dbt("run-operation", "warehouse_info")
    assert "warehouse_kind: timescaledb" in timescale.dbt("run-operation", "warehouse_info")
    forced = timescale.dbt(
        "run-operation", "warehouse_info", env={"HUB_WAREHOUSE_KIND": "postgres"}
    )
    assert "warehouse_kind: postgres" in forced


def test_facts_are_hypertables_by_day_with_the_seed_indexes(
    warehouses: tuple[Target, Target, Pipeline],
) -> None:
    _, timescale, _ = warehouses
    hypertables = dict(
        timescale.rows(
            "select d.hypertable_name, d.time_interval from timescaledb_information.dimensions d"
            " where d.hypertable_schema = 'analytics'"
        )
    )
    assert {fact: timedelta(days=1) for fact in FACTS}.items() <= hypertables.items()
    indexes = {
        definition.split(" USING ")[1]
        for (definition,) in timescale.rows(
            "select indexdef from pg_indexes where schemaname = 'analytics'"
            " and tablename = 'fct_requests'"
        )
    }
    assert {
        "btree (event_time DESC)",
        "btree (asset_id, event_time DESC)",
        "btree (asset_id, model_id, event_time DESC)",
    } <= indexes
    policies = set(
        timescale.rows(
            "select hypertable_name, proc_name from timescaledb_information.jobs"
            " where hypertable_schema = 'analytics'"
        )
    )
    assert {("fct_requests", "policy_retention"), ("fct_requests", "policy_compression")} <= (
        policies
    )
    assert ("agg_costs_hourly", "policy_refresh_continuous_aggregate") in policies


def test_rollups_are_continuous_aggregates_on_timescaledb_and_tables_on_postgres(
    warehouses: tuple[Target, Target, Pipeline],
) -> None:
    postgres, timescale, _ = warehouses
    aggregates = {
        name
        for (name,) in timescale.rows(
            "select view_name from timescaledb_information.continuous_aggregates"
        )
    }
    assert aggregates == set(marts(timescale, "aggregate"))
    # each with an index on `_loaded_at` (its tests' filter), on its materialization
    indexed = {
        name
        for (name,) in timescale.rows(
            "select a.view_name from timescaledb_information.continuous_aggregates as a"
            " join pg_indexes as i on i.schemaname = a.materialization_hypertable_schema"
            " and i.tablename = a.materialization_hypertable_name"
            " where i.indexdef like '%(_loaded_at)'"
        )
    }
    assert indexed == aggregates
    kinds = dict(
        postgres.rows(
            "select relname, relkind::text from pg_class join pg_namespace n"
            " on n.oid = relnamespace where nspname = 'analytics'"
        )
    )
    assert {kinds[name] for name in marts(postgres, "aggregate")} == {"r"}
    assert {kinds[fact] for fact in FACTS} == {"p"}  # partitioned by day


def test_both_paths_give_the_same_facts_and_rollups(
    warehouses: tuple[Target, Target, Pipeline],
) -> None:
    postgres, timescale, _ = warehouses
    assert_same_marts(postgres, timescale)


def test_retention_compression_and_a_late_repull_keep_both_paths_equal(
    warehouses: tuple[Target, Target, Pipeline],
) -> None:
    postgres, timescale, hub = warehouses
    expired_day = EXPIRED.start.date()
    before = postgres.rows(
        "select bucket, requests from analytics.agg_model_latency_daily"
        f" where bucket = '{expired_day} 00:00:00+00' order by 1, 2"
    )
    assert before, "the expired window must have made a daily bucket"

    for target in (postgres, timescale):
        target.dbt("run-operation", "apply_retention")

    # raw telemetry past 7 days is gone on both; the rollups keep it
    for target in (postgres, timescale):
        assert target.rows(
            f"select count(*) from analytics.fct_requests where event_time < '{EXPIRED.end}'"
        ) == [(0,)]
    assert postgres.rows(
        f"select count(*) from pg_class where relname = 'fct_requests_p{expired_day:%Y%m%d}'"
    ) == [(0,)]
    compressed = timescale.rows(
        "select count(*) from timescaledb_information.chunks"
        " where hypertable_name = 'fct_requests' and is_compressed"
    )
    assert compressed[0][0] >= 1, "the compression job compressed no chunk"

    # a late re-pull into the compressed chunk, and a new window, merged incrementally
    load(hub, [postgres, timescale], [COMPRESSED, RECENT])
    for target in (postgres, timescale):
        target.dbt("build")
    assert_same_marts(postgres, timescale)
    for target in (postgres, timescale):
        assert (
            target.rows(
                "select bucket, requests from analytics.agg_model_latency_daily"
                f" where bucket = '{expired_day} 00:00:00+00' order by 1, 2"
            )
            == before
        ), target.name


def test_an_asset_state_delivered_late_reaches_compressed_facts_on_both_paths(
    warehouses: tuple[Target, Target, Pipeline],
) -> None:
    """A registry state delivered after its facts were merged (and, on TimescaleDB,
    compressed) updates them alike on both paths (`refresh_asset_columns`)."""
    postgres, timescale, _ = warehouses
    for target in (postgres, timescale):  # compresses the chunks past 2 days, if not yet
        target.dbt("run-operation", "apply_retention")
    # the last request of the compressed window's busiest asset: a state from its time on
    # covers it, whatever states the registry sent after it
    asset, renamed_at = postgres.rows(
        "select asset_id, max(event_time) from analytics.fct_requests"
        f" where event_time >= '{COMPRESSED.start}' and event_time < '{COMPRESSED.end}'"
        " and asset_name is not null and asset_id in"
        f" (select asset_id from {warehouse.landing_table('registry', 'assets')})"
        " group by 1 order by count(*) desc, 1 limit 1"
    )[0]
    for target in (postgres, timescale):
        deliver_asset_state(target.dsn, asset, renamed_at, asset_name="renamed-late")
        target.dbt("build", "--select", "dim_assets", *ASSET_FACTS)
        assert facts_off_their_asset_state(target.dsn) == dict.fromkeys(ASSET_FACTS, 0)
        renamed = target.rows(
            "select count(*) from analytics.fct_requests where asset_name = 'renamed-late'"
            f" and asset_id = '{asset}' and event_time = '{renamed_at.isoformat()}'"
        )
        assert renamed[0][0] > 0, target.name
    assert (
        timescale.rows(
            "select count(*) from timescaledb_information.chunks"
            " where hypertable_name = 'fct_requests' and is_compressed"
        )[0][0]
        >= 1
    ), "no compressed chunk left to update"
    assert_same_marts(postgres, timescale)
