"""One generated world, all six modules, through the DAGs (layer b).

The conformance server serves one world (made by the generators of layer a from a random
seed, printed; ``CONFORMANCE_DAG_SEED`` fixes it), and Airflow runs, for its window, every ``ingest_<module>`` DAG (land and the
lake gate) and ``load_warehouse``, then ``dbt build`` of the project, with
``airflow dags test`` against a private PostgreSQL (Airflow's metadata and a warehouse
database). Then every entity's lake equals the expectation exactly (rows, dead letters,
manifest), and so do the marts: requests and latency per model, cost per account at the
latest record version, each violation once, evaluations and compliance per policy,
threats per level, revenue and usage per extension, and the registry's asset states.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from analytics_hub.lake import Lake
from analytics_hub.settings import load_settings
from conformance.checks import CATEGORIES, Findings, compare_lake, describe
from conformance.contract import ENTITIES, SERVICES
from conformance.harness import connections
from conformance.marts import expected_marts
from conformance.server import ConformanceServer
from conformance.worlds import World, big_world
from hub_dev.airflow_env import (
    airflow_env,
    dags_test,
    dags_test_many,
    failure_excerpt,
    migrate_once,
    serialize_dags,
)
from hub_dev.dbt import DbtRunner
from hub_dev.main_job import per_entity
from hub_dev.postgres import PrivatePostgres

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

START, END = datetime(2026, 11, 24, 6, tzinfo=UTC), datetime(2026, 11, 24, 7, tzinfo=UTC)
CI_DAG_SEED = 2240966460
CONF = {"window_start": "2026-11-24T06:00:00Z", "window_end": "2026-11-24T07:00:00Z"}

MART_QUERIES = {
    "requests by model": "select model_id, count(*), sum(latency_ms) from analytics.fct_requests group by 1",
    "costs by account": "select account_id, count(*), sum(cost_usd) from analytics.fct_cost_records group by 1",
    "violations": "select violation_id from analytics.fct_violations order by 1",
    "evaluations by policy and result": "select policy_id, result, count(*) from analytics.fct_evaluations group by 1, 2",
    "compliance by policy": "select policy_id, sum(evaluations), sum(compliant) from analytics.agg_compliance_hourly group by 1",
    "security events by threat level": "select threat_level, count(*) from analytics.fct_security_events group by 1",
    "revenue by extension": "select extension_id, sum(amount_usd) from analytics.fct_marketplace_revenue group by 1",
    "usage by extension": "select extension_id, count(*), sum(invocations) from analytics.fct_marketplace_usage group by 1",
    "registry events": "select count(*) from analytics.fct_registry_events",
    "audit entries": "select count(*) from analytics.fct_policy_audit",
    "asset states": "select asset_id, valid_from, asset_name, category, owner from analytics.dim_assets",
}


def _shape(name: str, rows: list[tuple[Any, ...]]) -> Any:
    """Query rows in the shape of ``expected_marts``."""
    if name == "violations":
        return [r[0] for r in rows]
    if name in ("registry events", "audit entries"):
        return rows[0][0]
    if name == "asset states":
        return {(r[0], r[1].astimezone(UTC), *r[2:]) for r in rows}
    if name == "evaluations by policy and result":
        return {(r[0], r[1]): r[2] for r in rows}
    if name == "compliance by policy":
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}
    if name in ("security events by threat level",):
        return {r[0]: r[1] for r in rows}
    if name == "revenue by extension":
        return {r[0]: r[1] for r in rows}
    if name == "requests by model":
        return {r[0]: (r[1], float(r[2])) for r in rows}
    return {r[0]: (r[1], r[2]) for r in rows}


def _same(name: str, expected: Any, actual: Any) -> bool:
    if name == "requests by model":
        return expected.keys() == actual.keys() and all(
            expected[k][0] == actual[k][0] and abs(expected[k][1] - actual[k][1]) < 1e-6
            for k in expected
        )
    if name == "asset states":
        return {(a, t.isoformat(), *rest) for a, t, *rest in expected} == {
            (a, t.isoformat(), *rest) for a, t, *rest in actual
        }
    return bool(expected == actual)


@pytest.fixture
def workdir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="conformance-dags-"))
    root.chmod(0o755)  # the cluster's unprivileged account reads Airflow's home through it
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


class Run:
    """Airflow's runs of one world's window, and what they left in the lake and warehouse."""

    def __init__(self, pg: PrivatePostgres, server: ConformanceServer, root: Path, world: World):
        self.key = "conformance-" + secrets.token_hex(8)
        self.lake_url = str(root / "lake")
        database = f"conformance_{secrets.token_hex(4)}"
        pg.create_database(database)
        self.dsn = pg.dsn(database)
        warehouse = {
            "conn_type": "postgres",
            "host": pg.host,
            "port": pg.port,
            "login": pg.user,
            "password": "trust",
            "schema": database,
        }
        env = airflow_env(pg, home=root / "airflow") | {
            "HUB_LAKE_URL": self.lake_url,
            "HUB_PSEUDONYM_KEY": self.key,
            "HUB_HTTP_MAX_BACKOFF_SECONDS": "1",
            "AIRFLOW_CONN_HUB_WAREHOUSE": json.dumps(warehouse),
            **connections(server),
        }
        self.seconds: dict[str, float] = {}
        started = time.monotonic()
        migrate_once(pg, env)
        serialize_dags(env)
        self.seconds["airflow setup"] = round(time.monotonic() - started)
        self.failures: dict[str, str] = {}
        started = time.monotonic()
        with server.serving(world):
            runs = [(f"ingest_{m}", CONF) for m in SERVICES]
            for (dag_id, _), result in zip(
                runs, dags_test_many(env, runs, processes=2), strict=True
            ):
                if result.returncode != 0:
                    self.failures[dag_id] = failure_excerpt(result)
        self.seconds["ingest"] = round(time.monotonic() - started)
        started = time.monotonic()
        result = dags_test(env, "load_warehouse", CONF)
        self.seconds["load_warehouse"] = round(time.monotonic() - started)
        if result.returncode != 0:
            self.failures["load_warehouse"] = failure_excerpt(result)
        # The marts are the dbt project's, built by a bare `dbt build` of it rather than
        # by the transform DAG: what reading a module gets right or wrong is decided before
        # dbt, and the DAG runs the same project model by model, a dbt process each.
        started = time.monotonic()
        # its own target/, not the project's: cosmos renders the DAGs of tests running
        # beside this one from the manifest there
        dbt = DbtRunner(self.dsn, target_path=root / "target", log_path=root / "logs")
        build = dbt.run("build", check=False)
        self.seconds["dbt build"] = round(time.monotonic() - started)
        if build.returncode != 0:
            self.failures["dbt build"] = build.stdout[-6000:]

    def manifest(self, module: str, name: str) -> dict[str, Any] | None:
        """The entity's published manifests, their counts summed over its windows (a
        15-minute module lands the hour as four) and balanced if each is; None if none."""
        lake = Lake.from_settings(load_settings(lake_url=self.lake_url))
        found = [m for m in lake.manifests() if (m["module"], m["entity"]) == (module, name)]
        if not found:
            return None
        (total,) = per_entity(found)
        return total | {"balanced": all(m["balanced"] for m in found)}

    def marts(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        with psycopg.connect(self.dsn) as conn:
            for name, query in MART_QUERIES.items():
                try:
                    out[name] = _shape(name, conn.execute(query).fetchall())
                except psycopg.Error as error:
                    conn.rollback()
                    out[name] = f"query failed: {error}"
        return out


def test_the_dags_land_load_and_build_what_the_contract_says(
    private_pg: PrivatePostgres, conformance_server: ConformanceServer, workdir: Path
) -> None:
    # CI builds one fixed world (a red CI names a hub change); elsewhere, a new one each run
    fixed = CI_DAG_SEED if os.environ.get("CI") else secrets.randbelow(2**32)
    seed = int(os.environ.get("CONFORMANCE_DAG_SEED") or fixed)
    world = big_world(seed, START, END)
    print(f"CONFORMANCE_DAG_SEED={seed}: {describe(world)}")
    run = Run(private_pg, conformance_server, workdir, world)

    lake = Findings()
    for ent in ENTITIES:
        manifest = run.manifest(ent.module, ent.name)
        if manifest is None:
            lake.add("manifest", f"{ent.id}: no manifest for the window")
        compare_lake(ent, world, run.lake_url, run.key, lake, manifest)
    expected, actual = expected_marts(world, run.key), run.marts()
    sections = [f"{dag} failed:\n{text}" for dag, text in run.failures.items()]
    sections += [lake.text(c) for c in CATEGORIES if c != "ingest" and lake.by_category[c]]
    sections += [
        f"mart {name}:\n  expected {expected[name]!r}\n  built    {actual[name]!r}"
        for name in MART_QUERIES
        if not _same(name, expected[name], actual[name])
    ]
    print(f"stage seconds: {run.seconds}")
    # one run costs minutes: every difference is reported at once
    assert not sections, f"CONFORMANCE_DAG_SEED={seed}\n\n" + "\n\n".join(sections)
