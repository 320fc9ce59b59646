"""Each mart's contract holds on both warehouses, and its tests catch what they declare.

dbt builds the project on a PostgreSQL database and on TimescaleDB (the WebAssembly build,
behind tests/tooling/pglite_server) from the same landing rows: a few cost records and a
budget, typed in by hand. Every mart must come out with exactly its contract's columns and
types, on both. A copy of the project whose contract and SQL disagree must fail to build,
whatever the materialization (fact, table, aggregate: a continuous aggregate on
TimescaleDB, whose DDL carries no columns), and a rollup whose contract gained a column is
rebuilt with it, a fact's is added to its table. A fact's column rules are constraints of its contract, held by its table
(and every partition) on both: a landed row that breaks one fails the fact's build, naming
the constraint, and the fact keeps its rows. Then the marts are tampered with (PostgreSQL:
a continuous aggregate cannot be written to) and `dbt test` must name the tests that catch
it; the database itself refuses a fact's row that breaks a rule of its contract.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from analytics_hub import warehouse
from analytics_hub.quality.mart_suites import HELD_CONSTRAINTS, load_marts
from hub_dev.dbt import DbtRunner
from hub_dev.postgres import PrivatePostgres
from hub_dev.timescale_wasm import PgliteTimescale

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).resolve().parents[2]
HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)

LANDING = (
    """
insert into landing.costops__cost_records
    (event_id, event_time, ingested_at, event_type, environment, cost_record_id,
     record_version, account_id, asset_id, model_id, usage_start, usage_end, input_tokens,
     output_tokens, cost, cost_unit, cost_usd, _window_start, _window_end)
select 'cost-ev-' || i, %(hour)s, %(hour)s, 'cost.recorded', 'production', 'cost-' || i, 1,
       'acct-1', 'asset-1', 'gpt', %(hour)s + i * interval '10 minutes',
       %(hour)s + i * interval '10 minutes' + interval '5 minutes', 100 * i, 50 * i,
       1.25 * i, 'USD', 1.25 * i, %(hour)s, %(hour)s + interval '1 hour'
from generate_series(1, 3) as i
""",
    """
insert into landing.costops__budgets
    (budget_id, account_id, period, "limit", currency, limit_usd, alert_threshold_percent,
     updated_at, _window_start, _window_end)
values ('budget-1', 'acct-1', 'monthly', 100, 'USD', 100, 80, %(hour)s, %(hour)s,
        %(hour)s + interval '1 hour')
""",
)


class Target:
    """One warehouse that dbt builds, reached by libpq DSN."""

    def __init__(self, name: str, dsn: str, root: Path, threads: int):
        self.name, self.dsn, self.root = name, dsn, root
        self.threads = threads

    def dbt(self, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
        runner = DbtRunner(
            self.dsn,
            project_dir=project,
            target_path=self.root / self.name / project.name / "target",
            log_path=self.root / self.name / project.name / "logs",
            env={"HUB_DBT_THREADS": str(self.threads), "HUB_WAREHOUSE_KIND": None},
        )
        return runner.run(*args, check=False)

    def build(self, project: Path, *args: str) -> None:
        result = self.dbt(project, "run", *args)
        assert result.returncode == 0, f"{self.name}: dbt run {args}\n{result.stdout[-6000:]}"

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cursor = conn.execute(sql, params)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    def columns(self, relation: str) -> dict[str, str]:
        """The relation's columns and their types, as information_schema spells them."""
        found = self.rows(
            "select column_name, data_type, numeric_precision, numeric_scale"
            " from information_schema.columns where table_schema = 'analytics'"
            " and table_name = %(relation)s order by ordinal_position",
            {"relation": relation},
        )
        return {
            name: f"{data_type}({precision},{scale})"
            if data_type == "numeric" and precision is not None
            else data_type
            for name, data_type, precision, scale in found
        }


def copy_project(root: Path, name: str) -> Path:
    copy = root / name
    shutil.copytree(
        PROJECT / "dbt_project",
        copy,
        ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", ".user.yml"),
    )
    return copy


def edit_contract(project: Path, model: str, edit: Any) -> None:
    """Apply ``edit`` to the YAML entry of ``model`` in the project's marts."""
    for path in (project / "models" / "marts").glob("*/_*__models.yml"):
        declared = yaml.safe_load(path.read_text())
        for entry in declared["models"]:
            if entry["name"] == model:
                edit(entry)
                path.write_text(yaml.safe_dump(declared, sort_keys=False))
                return
    raise AssertionError(f"no YAML entry for {model}")


@pytest.fixture(scope="module")
def warehouses(
    private_pg: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Target]]:
    root = tmp_path_factory.mktemp("contracts")
    private_pg.create_database("warehouse_contracts")
    with PgliteTimescale() as pglite:
        # PGlite serves one connection at a time: dbt gets one thread there
        targets = [
            Target("postgres", private_pg.dsn("warehouse_contracts"), root, threads=2),
            Target("timescaledb", pglite.dsn, root, threads=1),
        ]
        for target in targets:
            with psycopg.connect(target.dsn, autocommit=True) as conn:
                warehouse.ensure_landing_tables(conn)
                for statement in LANDING:
                    conn.execute(statement, {"hour": HOUR})  # type: ignore[arg-type]
            target.build(PROJECT / "dbt_project")
        yield targets


def test_every_mart_is_built_with_its_contracts_columns_and_types(
    warehouses: list[Target],
) -> None:
    target = warehouses[0].root / "postgres" / "dbt_project" / "target" / "manifest.json"
    marts = load_marts(target)
    assert marts
    for target in warehouses:
        for name, mart in marts.items():
            built = list(target.columns(name).items())
            assert built == list(mart.columns.items()), (target.name, name)


def test_a_model_and_its_contract_that_disagree_fail_the_build(
    warehouses: list[Target], tmp_path: Path
) -> None:
    project = copy_project(tmp_path, "disagreeing")

    def without(column: str) -> Any:
        def edit(entry: dict[str, Any]) -> None:
            entry["columns"] = [c for c in entry["columns"] if c["name"] != column]

        return edit

    def retyped(column: str, data_type: str) -> Any:
        def edit(entry: dict[str, Any]) -> None:
            for declared in entry["columns"]:
                if declared["name"] == column:
                    declared["data_type"] = data_type

        return edit

    broken = {  # none downstream of another: each is built, and fails
        "fct_cost_records": without("usage_end"),  # a fact
        "dim_extensions": without("installs"),  # a table
        "agg_registry_events_daily": retyped("events", "text"),  # an aggregate
    }
    for model, edit in broken.items():
        edit_contract(project, model, edit)

    for target in warehouses:
        result = target.dbt(project, "run", "--select", *broken)

        assert result.returncode != 0, f"{target.name}: built against its contract"
        for model in broken:
            assert re.search(
                rf"in model {model} \(.*?\)\s+This model has an enforced contract that failed",
                result.stdout,
            ), (target.name, model, result.stdout[-6000:])
        # nothing was replaced: the marts keep the contract they were built to
        assert "usage_end" in target.columns("fct_cost_records")
        assert "installs" in target.columns("dim_extensions")
        assert target.columns("agg_registry_events_daily")["events"] == "bigint"


def test_a_column_added_to_a_rollup_and_its_contract_is_built(
    warehouses: list[Target], tmp_path: Path
) -> None:
    project = copy_project(tmp_path, "added")
    rollup = project / "macros" / "rollups" / "costs.sql"
    sql = rollup.read_text()
    assert "    count(*) as cost_records,\n" in sql
    rollup.write_text(
        sql.replace(
            "    count(*) as cost_records,\n",
            "    count(*) as cost_records,\n    min(usage_start) as first_usage_start,\n",
        )
    )

    def add(entry: dict[str, Any]) -> None:
        names = [c["name"] for c in entry["columns"]]
        entry["columns"].insert(
            names.index("cost_records") + 1,
            {
                "name": "first_usage_start",
                "data_type": "timestamp with time zone",
                "description": "The bucket's earliest usage_start, UTC.",
            },
        )

    edit_contract(project, "agg_costs_hourly", add)
    # a bucket older than any fact row, as retention leaves them: the rollup outlives it
    postgres = warehouses[0]
    postgres.rows(
        "insert into analytics.agg_costs_hourly (bucket, account_id, asset_id, model_id,"
        " cost_records, cost_usd, input_tokens, output_tokens, _loaded_at)"
        " values (%(old)s, 'acct-old', 'asset-1', 'gpt', 2, 9.5, 10, 5, %(old)s)",
        {"old": HOUR - timedelta(days=400)},
    )

    for target in warehouses:
        target.build(project, "--select", "agg_costs_hourly")

        columns = target.columns("agg_costs_hourly")
        assert columns["first_usage_start"] == "timestamp with time zone", target.name
        ((earliest,),) = target.rows(
            "select min(first_usage_start) from analytics.agg_costs_hourly"
        )
        assert earliest == HOUR + timedelta(minutes=10), target.name
    assert postgres.rows(
        "select cost_usd, cost_records, first_usage_start from analytics.agg_costs_hourly"
        " where account_id = 'acct-old'"
    ) == [(Decimal("9.5"), 2, None)]


def test_the_mart_tests_catch_what_their_contract_rules_out(warehouses: list[Target]) -> None:
    postgres = warehouses[0]
    marts = ("agg_costs_hourly", "agg_budget_burn_monthly", "fct_cost_records")
    passed = postgres.dbt(PROJECT / "dbt_project", "test", "--select", *marts)
    assert passed.returncode == 0, passed.stdout[-6000:]

    # a fact's rule is its table's constraint: no test needed, nothing can break it
    with pytest.raises(psycopg.errors.CheckViolation, match="cost_unit_values"):
        postgres.rows(
            "update analytics.fct_cost_records set cost_unit = 'doubloons'"
            " where cost_record_id = 'cost-2'"
        )
    postgres.rows(
        """
        update analytics.agg_costs_hourly set cost_usd = cost_usd + 0.01, cost_records = 0;
        update analytics.agg_budget_burn_monthly set spend_usd = spend_usd + 1;
        insert into analytics.fct_cost_records
            select * from analytics.fct_cost_records where cost_record_id = 'cost-2';
        """
    )
    failed = postgres.dbt(PROJECT / "dbt_project", "test", "--select", *marts)

    assert failed.returncode != 0
    failures = {
        line.split(" FAIL ", 1)[1].split()[1]
        for line in failed.stdout.splitlines()
        if " FAIL " in line
    }
    expected = {
        "reconciles_with_fact_agg_costs_hourly",  # totals off and the bucket miscounted
        "accepted_range_agg_costs_hourly_cost_records",  # no bucket without records
        "reconciles_with_fact_agg_budget_burn_monthly",  # spend off its fact
        "unique_fct_cost_records_cost_record_id",  # the fact's key, twice
    }
    missed = {prefix for prefix in expected if not any(f.startswith(prefix) for f in failures)}
    assert not missed, (missed, failures, failed.stdout[-6000:])


# A landed cost record that breaks a rule of fct_cost_records' contract, and the error that
# names the rule: the row is one the lake would have dead-lettered, typed in by hand.
BROKEN = {
    "cost_usd_range": ("'USD'", "-1.25", 'violates check constraint "cost_usd_range"'),
    "cost_unit not null": ("null", "1.25", 'null value in column "cost_unit"'),
}
BROKEN_ROW = """
insert into landing.costops__cost_records
    (event_id, event_time, ingested_at, event_type, environment, cost_record_id,
     record_version, account_id, asset_id, model_id, usage_start, usage_end, input_tokens,
     output_tokens, cost, cost_unit, cost_usd, _window_start, _window_end)
values ('cost-ev-broken', %(hour)s, %(hour)s, 'cost.recorded', 'production', 'cost-broken', 1,
        'acct-1', 'asset-1', 'gpt', %(hour)s + interval '40 minutes',
        %(hour)s + interval '45 minutes', 1, 1, 1.25, {unit}, {usd}, %(hour)s,
        %(hour)s + interval '1 hour')
"""


def held(target: Target, relation: str, mart: Any) -> set[str]:
    """What ``relation`` holds of the mart's contract constraints, as the mart gate reads it."""
    table = dataclasses.replace(mart, name=relation).table
    return {row[1] for row in target.rows(HELD_CONSTRAINTS, {"tables": [table]})}


def test_each_fact_holds_its_contracts_constraints_and_refuses_a_row_that_breaks_one(
    warehouses: list[Target],
) -> None:
    manifest = warehouses[0].root / "postgres" / "dbt_project" / "target" / "manifest.json"
    facts = {name: mart for name, mart in load_marts(manifest).items() if name.startswith("fct_")}
    assert len(facts) == 9
    for target in warehouses:
        for name, mart in facts.items():
            declared = {constraint.held_as for constraint in mart.constraints}
            assert declared and declared <= held(target, name, mart), (target.name, name)
    postgres = warehouses[0]
    partitions = postgres.rows(
        "select parent.relname, part.relname from pg_inherits"
        " join pg_class as parent on parent.oid = inhparent"
        " join pg_class as part on part.oid = inhrelid"
        " where parent.relname like 'fct\\_%' and parent.relkind = 'p'"
    )
    assert {fact for fact, _ in partitions} == {"fct_cost_records"}  # the one with rows
    for fact, partition in partitions:
        declared = {constraint.held_as for constraint in facts[fact].constraints}
        assert declared <= held(postgres, partition, facts[fact]), partition

    for target in warehouses:
        before = target.rows(
            "select cost_record_id, cost_usd from analytics.fct_cost_records order by 1"
        )
        for rule, (unit, usd, error) in BROKEN.items():
            target.rows(BROKEN_ROW.format(unit=unit, usd=usd), {"hour": HOUR})
            try:
                result = target.dbt(PROJECT / "dbt_project", "run", "--select", "fct_cost_records")
            finally:
                target.rows(
                    "delete from landing.costops__cost_records where event_id = 'cost-ev-broken'"
                )
            assert result.returncode != 0, (target.name, rule)
            assert error in result.stdout, (target.name, rule, result.stdout[-6000:])
            after = target.rows(
                "select cost_record_id, cost_usd from analytics.fct_cost_records order by 1"
            )
            assert after == before, (target.name, rule)


# Last in the file: the fact keeps the column it gains.
def test_a_column_added_to_a_fact_and_its_contract_reaches_its_table(
    warehouses: list[Target], tmp_path: Path
) -> None:
    project = copy_project(tmp_path, "fact_added")
    model = project / "models" / "marts" / "finance" / "fct_cost_records.sql"
    sql = model.read_text()
    assert "        latest.usage_end,\n" in sql
    model.write_text(
        sql.replace(
            "        latest.usage_end,\n",
            "        latest.usage_end,\n"
            "        latest.usage_end - latest.usage_start as usage_span,\n",
        )
    )

    def add(entry: dict[str, Any]) -> None:
        names = [c["name"] for c in entry["columns"]]
        entry["columns"].insert(
            names.index("usage_end") + 1,
            {"name": "usage_span", "data_type": "interval", "description": "Usage billed."},
        )

    edit_contract(project, "fct_cost_records", add)
    new_record = BROKEN_ROW.format(unit="'USD'", usd="1.25").replace("-broken", "-added")

    for target in warehouses:
        target.rows(new_record, {"hour": HOUR})
        target.build(project, "--select", "fct_cost_records")

        assert "usage_span" in target.columns("fct_cost_records"), target.name
        spans = dict(
            target.rows("select cost_record_id, usage_span from analytics.fct_cost_records")
        )
        # the new row has it; the rows built before the column was added stay null
        assert spans.pop("cost-added") == timedelta(minutes=5), target.name
        assert spans and set(spans.values()) == {None}, (target.name, spans)
