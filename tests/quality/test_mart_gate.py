"""The mart gate against a tiny marts schema in a real PostgreSQL, built by hand (no dbt).

The marts' tables are made from their contracts and the suites from their tests, both read
from the dbt project's manifest (``dbt parse``). The tables have none of the contract's
constraints (a fact's column rules), as a fact created before its contract declared them:
the gate checks those rules over the rows. The rollups are filled from their facts
with the dbt macros' own aggregation, so a clean set reconciles; each test then breaks one
thing and names the expectation it must trip.
A later build is simulated by adding fact rows with the `_loaded_at` their loads gave them
and filling the rollups again: what the gate checks follows those stamps, from each mart's
watermark, whatever the clock says.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from analytics_hub.quality.mart_gate import (
    WATERMARKS,
    MartGateResult,
    MartsBlockedError,
    validate_marts,
)
from analytics_hub.quality.mart_suites import load_marts
from analytics_hub.quality.store import QualityStore, open_store
from analytics_hub.quality.summary import validation_summary
from analytics_hub.settings import load_gate_settings, load_settings, quality_url

pytestmark = pytest.mark.integration

DAGS = Path(__file__).resolve().parents[2] / "dags"
CHECKED = (
    "fct_requests",
    "agg_model_latency_hourly",
    "fct_cost_records",
    "agg_costs_hourly",
    "agg_budget_burn_monthly",
)
BUCKET = "date_bin(interval '1 hour', {}, timestamptz '2000-01-03 00:00:00+00')"

FACT_ROWS = """
insert into analytics.fct_requests
    (event_id, event_time, ingested_at, environment, request_id, model_id, asset_id, region,
     service, latency_ms, ttft_ms, input_tokens, output_tokens, status, error_code,
     response_bytes)
select 'obs-' || i, now() - interval '5 minutes', now(), 'production', 'req-' || i, 'gpt',
       'asset-1', 'eu', 'chat', 100.0 * i, 10.0, 10 * i, 5 * i,
       case when i = 3 then 'error' else 'ok' end, null, 1000
from generate_series(1, 3) as i;

insert into analytics.fct_cost_records
    (cost_record_id, record_version, event_id, event_time, ingested_at, account_id, asset_id,
     model_id, usage_start, usage_end, input_tokens, output_tokens, cost, cost_unit, cost_usd)
select 'cost-' || i, 1, 'cost-ev-' || i, now(), now(), 'acct-1', 'asset-1', 'gpt',
       now() - interval '10 minutes', now(), 100, 50, 1.25 * i, 'USD', 1.25 * i
from generate_series(1, 3) as i;

-- an old, bad row before the first run's range: history is not re-validated
insert into analytics.fct_cost_records
    (cost_record_id, record_version, event_id, event_time, ingested_at, account_id, asset_id,
     model_id, usage_start, usage_end, input_tokens, output_tokens, cost, cost_unit, cost_usd,
     _loaded_at)
values ('cost-old', 1, 'cost-ev-old', now() - interval '30 days', now() - interval '30 days',
        'acct-1', 'asset-1', 'gpt', now() - interval '30 days', now() - interval '30 days',
        1, 1, -5, 'USD', -5, now() - interval '30 days');
"""

ROLLUPS = f"""
delete from analytics.agg_model_latency_hourly;
insert into analytics.agg_model_latency_hourly
select {BUCKET.format("event_time")}, model_id, asset_id, environment, count(*),
       count(*) filter (where status = 'error'),
       round(count(*) filter (where status = 'error')::numeric / count(*), 6),
       percentile_cont(0.5) within group (order by latency_ms),
       percentile_cont(0.95) within group (order by latency_ms),
       percentile_cont(0.99) within group (order by latency_ms),
       sum(latency_ms::numeric), sum(input_tokens), sum(output_tokens), sum(response_bytes),
       max(_loaded_at)
from analytics.fct_requests group by 1, 2, 3, 4;

delete from analytics.agg_costs_hourly;
insert into analytics.agg_costs_hourly
select {BUCKET.format("usage_start")}, account_id, asset_id, model_id, count(*), sum(cost_usd),
       sum(input_tokens), sum(output_tokens),
       round(sum(cost_usd) * 1000 / nullif(sum(input_tokens + output_tokens), 0), 6),
       max(_loaded_at)
from analytics.fct_cost_records group by 1, 2, 3, 4;

delete from analytics.agg_budget_burn_monthly;
insert into analytics.agg_budget_burn_monthly
with month as (
    select date_trunc('month', now() at time zone 'UTC') at time zone 'UTC' as period_start
),
spend as (
    select sum(cost_usd) as usd from analytics.fct_cost_records, month
    where account_id = 'acct-1' and usage_start >= month.period_start
        and usage_start < month.period_start + interval '1 month'
)
select 'budget-1', 'acct-1', period_start, period_start + interval '1 month', 100, 'USD', 100,
       80, now(), usd, now(), 100 - usd, usd, false, false
from month, spend;
"""


def _create_table(manifest: Path, name: str) -> str:
    """The mart's table as its contract declares it (what dbt builds)."""
    columns = ",\n".join(
        f"{column} {data_type}" + (" not null default now()" if column == "_loaded_at" else "")
        for column, data_type in load_marts(manifest)[name].columns.items()
    )
    return f"create table analytics.{name} (\n{columns}\n);"


@pytest.fixture
def marts(
    new_database: Callable[[str], str], dbt_manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A warehouse with the checked marts, clean: the rollups reconcile with their facts.

    The gate finds their manifest where the DAGs' settings say (HUB_DBT_PROJECT_DIR).
    """
    monkeypatch.setenv("HUB_DBT_PROJECT_DIR", str(dbt_manifest.parent.parent))
    dsn = new_database("marts")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create schema analytics")
        for name in CHECKED:
            conn.execute(_create_table(dbt_manifest, name))
        conn.execute(FACT_ROWS)
        conn.execute(ROLLUPS)
    return dsn


@pytest.fixture
def store(tmp_path: Path) -> QualityStore:
    settings = load_settings(lake_url=str(tmp_path / "lake"))
    return open_store(quality_url(settings, load_gate_settings()), settings, str(tmp_path))


def _execute(dsn: str, statement: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement)


def test_clean_marts_pass_and_land_in_the_history(marts: str, store: QualityStore) -> None:
    result = validate_marts(marts, store=store, settings=load_gate_settings(), marts=CHECKED)

    assert result.status == "passed", result.summary()
    assert {m.mart: m.rows for m in result.marts} == {
        "fct_requests": 3,
        "agg_model_latency_hourly": 1,
        "fct_cost_records": 3,  # not the old negative one
        "agg_costs_hourly": 1,
        "agg_budget_burn_monthly": 1,
    }
    history = store.history().to_table().to_pylist()
    assert {(r["module"], r["entity"]) for r in history} == {
        ("observatory", "fct_requests"),
        ("observatory", "agg_model_latency_hourly"),
        ("costops", "fct_cost_records"),
        ("costops", "agg_costs_hourly"),
        ("costops", "agg_budget_burn_monthly"),
    }
    assert {r["gate"] for r in history} == {"mart"}
    assert all(r["success"] for r in history), [r for r in history if not r["success"]]
    names = {r["expectation"] for r in history if r["entity"] == "agg_costs_hourly"}
    assert "reconcile:agg_costs_hourly.cost_usd=fct_cost_records.sum(cost_usd)" in names
    assert {"type:cost_usd", "unique_key", "range:cost_usd"} <= names
    assert (store.gx_dir / "docs" / "index.html").is_file()


def test_a_warning_is_recorded_and_the_marts_go_on(
    marts: str, store: QualityStore, tmp_path: Path
) -> None:
    started = datetime.now(UTC)
    _execute(marts, "update analytics.agg_model_latency_hourly set latency_p99_ms = 900000")

    result = validate_marts(marts, store=store, settings=load_gate_settings(), marts=CHECKED)

    assert result.status == "warned"
    (latency,) = [m for m in result.marts if m.mart == "agg_model_latency_hourly"]
    assert [f.expectation for f in latency.warned] == ["plausible:latency_p99_ms"]
    assert latency.warned[0].sample[0]["latency_p99_ms"] == 900000.0
    rows = store.history().to_table().to_pylist()
    assert {(r["expectation"], r["action"]) for r in rows if not r["success"]} == {
        ("plausible:latency_p99_ms", "warned")
    }
    # what the main job reports, per module, from the history
    settings = load_settings(lake_url=str(tmp_path / "lake"))
    summary = validation_summary(quality_url(settings, load_gate_settings()), settings, started)
    assert {(s.module, s.gate): dict(s.runs) for s in summary} == {
        ("costops", "mart"): {"passed": 3},
        ("observatory", "mart"): {"passed": 1, "warned": 1},
    }
    (observatory,) = [s for s in summary if s.module == "observatory"]
    assert dict(observatory.failed) == {
        "agg_model_latency_hourly: plausible:latency_p99_ms (warned)": 1
    }


def test_blocking_failures_raise_naming_the_expectation_and_rows(
    marts: str, store: QualityStore
) -> None:
    _execute(
        marts,
        "update analytics.fct_cost_records set cost_usd = -1.5 where cost_record_id = 'cost-2';"
        + ROLLUPS
        + "update analytics.agg_costs_hourly set cost_usd = cost_usd + 0.01;"
        + "delete from analytics.agg_model_latency_hourly;"  # a bucket the rollup missed
        + "update analytics.agg_budget_burn_monthly set spend_usd = spend_usd + 1;"
        + "alter table analytics.fct_requests alter column latency_ms type text;",
    )

    with pytest.raises(MartsBlockedError) as blocked:
        validate_marts(marts, store=store, settings=load_gate_settings(), marts=CHECKED)

    message = str(blocked.value)
    # a value outside the contract, with the keys of the rows that hold it
    assert "fct_cost_records: check:cost_usd_range (observed 1)" in message
    assert "{'cost_record_id': 'cost-2', 'cost_usd': '-1.500000'}" in message
    # mart totals against fact totals, with the buckets that differ
    assert "reconcile:agg_costs_hourly.cost_usd=fct_cost_records.sum(cost_usd)" in message
    assert "'mart_total': '3.510000', 'fact_total': '3.500000'" in message
    assert "reconcile:agg_model_latency_hourly.requests=fct_requests.count(*)" in message
    assert "'mart_total': None, 'fact_total': 3" in message
    assert "reconcile:agg_budget_burn_monthly.spend_usd=fct_cost_records.sum(cost_usd)" in message
    assert "'budget_id': 'budget-1'" in message
    # schema drift
    assert "fct_requests: type:latency_ms (observed TEXT)" in message
    # tokens reconcile with severity warn: recorded, not blocking
    assert "input_tokens=" not in message
    rows = store.history().to_table().to_pylist()
    actions = {(r["entity"], r["expectation"], r["action"]) for r in rows if not r["success"]}
    assert {
        ("fct_cost_records", "check:cost_usd_range", "blocked"),
        (
            "agg_costs_hourly",
            "reconcile:agg_costs_hourly.cost_usd=fct_cost_records.sum(cost_usd)",
            "blocked",
        ),
        (
            "agg_model_latency_hourly",
            "reconcile:agg_model_latency_hourly.input_tokens=fct_requests.sum(input_tokens)",
            "warned",
        ),
    } <= actions
    statuses = {r["entity"]: r["window_status"] for r in rows}
    assert statuses["fct_cost_records"] == statuses["agg_costs_hourly"] == "blocked"


def test_a_rule_the_table_enforces_is_not_checked_again_and_one_it_lacks_is(
    marts: str, store: QualityStore
) -> None:
    """A fact's column rules are constraints of its contract, which dbt makes part of the
    table it creates; these tables were made without them, as a fact created before its
    contract declared them is. The gate reads from the catalog which ones the table holds."""
    _execute(
        marts,
        """
        delete from analytics.fct_cost_records where cost_record_id = 'cost-old';
        alter table analytics.fct_cost_records
            alter column cost_record_id set not null,
            add constraint cost_usd_range check (cost_usd >= 0),
            add constraint cost_range check (cost >= 0) not valid;
        """,
    )

    result = validate_marts(
        marts, store=store, settings=load_gate_settings(), marts=("fct_cost_records",)
    )

    assert result.status == "passed", result.summary()
    checked = {r["expectation"] for r in store.history().to_table().to_pylist()}
    assert not {"not_null:cost_record_id", "check:cost_usd_range"} & checked
    # not held: a NOT VALID check (older rows may break it), constraints the table lacks
    assert {"check:cost_range", "check:record_version_range", "not_null:usage_start"} <= checked
    assert "unique_key" in checked


# --- the range: what the builds added since each mart's watermark ------------------------

COSTS = ("fct_cost_records", "agg_costs_hourly", "agg_budget_burn_monthly")

ADD_COSTS = """
insert into analytics.fct_cost_records
    (cost_record_id, record_version, event_id, event_time, ingested_at, account_id, asset_id,
     model_id, usage_start, usage_end, input_tokens, output_tokens, cost, cost_unit, cost_usd,
     _loaded_at)
select %(prefix)s || i, 1, %(prefix)s || '-ev-' || i, now(), now(), 'acct-1', 'asset-1', 'gpt',
       now() - interval '10 minutes', now(), 100, 50, cost, 'USD', cost,
       now() - %(loaded_ago)s::interval
from unnest(%(costs)s::numeric[]) with ordinality as t(cost, i)
"""


def _gate(dsn: str, store: QualityStore, marts: tuple[str, ...] = COSTS) -> MartGateResult:
    return validate_marts(dsn, store=store, settings=load_gate_settings(), marts=marts)


def _build(dsn: str, prefix: str, *costs: float, loaded_ago: str = "0 seconds") -> datetime:
    """A build of cost records loaded ``loaded_ago``: the fact's new rows, then the rollups.

    Returns their ``_loaded_at``.
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(ADD_COSTS, {"prefix": prefix, "costs": list(costs), "loaded_ago": loaded_ago})
        conn.execute(ROLLUPS)
        row = conn.execute(
            "select max(_loaded_at) from analytics.fct_cost_records where cost_record_id like %s",
            (f"{prefix}%",),
        ).fetchone()
    assert row is not None and row[0] is not None
    return row[0]  # type: ignore[no-any-return]


def _watermarks(dsn: str) -> dict[str, datetime | None]:
    with psycopg.connect(dsn) as conn:
        return dict(conn.execute(f"select mart, loaded_through from {WATERMARKS}").fetchall())


def _newest(dsn: str, table: str) -> datetime:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"select max(_loaded_at) from analytics.{table}").fetchone()
    assert row is not None and row[0] is not None
    return row[0]  # type: ignore[no-any-return]


def _checked(result: MartGateResult, mart: str) -> dict[str, object]:
    return dict(result.summary()["checked"][mart])


def test_a_build_run_hours_after_its_loads_is_checked_and_a_bad_row_blocks(
    marts: str, store: QualityStore
) -> None:
    # the last checked build's loads, 8 h ago
    _execute(
        marts, "update analytics.fct_cost_records set _loaded_at = _loaded_at - interval '8 h';"
    )
    _execute(marts, ROLLUPS)
    assert _gate(marts, store).status == "passed"
    checked_through = _newest(marts, "fct_cost_records")
    # an outage: the next loads landed 5 h ago, the build runs only now
    late = _build(marts, "late-", 4.0, -2.0, loaded_ago="5 hours")

    with pytest.raises(MartsBlockedError) as blocked:
        _gate(marts, store)

    message = str(blocked.value)
    assert "fct_cost_records: check:cost_usd_range (observed 1)" in message
    assert "{'cost_record_id': 'late-2', 'cost_usd': '-2.000000'}" in message
    costs = _checked(blocked.value.result, "fct_cost_records")
    assert (costs["after"], costs["through"], costs["rows"]) == (
        checked_through.astimezone(UTC).isoformat(),
        late.astimezone(UTC).isoformat(),
        2,
    )
    assert f"fct_cost_records _loaded_at in ({costs['after']}, {costs['through']}]" in message


def test_rows_checked_once_are_not_checked_again(marts: str, store: QualityStore) -> None:
    first = _gate(marts, store)
    assert {m.mart: m.rows for m in first.marts} == {
        "fct_cost_records": 3,
        "agg_costs_hourly": 1,
        "agg_budget_burn_monthly": 1,  # rebuilt whole at every build: all of it, every run
    }
    first_through = _newest(marts, "fct_cost_records")

    added = _build(marts, "next-", 2.0, 3.0)
    second = _gate(marts, store)

    assert second.status == "passed", second.summary()
    assert {m.mart: m.rows for m in second.marts} == {
        "fct_cost_records": 2,  # the new rows only
        "agg_costs_hourly": 1,  # the bucket they recomputed
        "agg_budget_burn_monthly": 1,
    }
    assert (
        _checked(second, "fct_cost_records")["after"] == first_through.astimezone(UTC).isoformat()
    )
    assert _watermarks(marts)["fct_cost_records"] == added

    third = _gate(marts, store)  # no build since
    assert {m.mart: m.rows for m in third.marts}["fct_cost_records"] == 0
    assert {m.mart: m.rows for m in third.marts}["agg_costs_hourly"] == 0
    assert third.marts[0].loaded.empty


def test_a_blocked_mart_keeps_its_watermark_and_is_checked_again(
    marts: str, store: QualityStore
) -> None:
    _gate(marts, store)
    before = _watermarks(marts)
    checked_through = before["fct_cost_records"]
    assert checked_through is not None
    bad = _build(marts, "bad-", 2.0, -1.0)

    for _ in range(2):  # blocked, and blocked again: nothing moved past the bad rows
        with pytest.raises(MartsBlockedError) as blocked:
            _gate(marts, store)
        result = blocked.value.result
        assert {m.mart: m.status for m in result.marts} == {
            "fct_cost_records": "blocked",
            "agg_costs_hourly": "passed",
            "agg_budget_burn_monthly": "passed",
        }
        costs = _checked(result, "fct_cost_records")
        assert costs["after"] == checked_through.astimezone(UTC).isoformat()
        assert costs["rows"] == 2
        after_run = _watermarks(marts)
        assert after_run["fct_cost_records"] == checked_through
        assert after_run["agg_costs_hourly"] == bad  # the rollup passed: it moves on

    _execute(
        marts,
        "update analytics.fct_cost_records set cost_usd = 1, cost = 1 where cost_record_id = 'bad-2';"
        + ROLLUPS,
    )
    fixed = _gate(marts, store)

    assert fixed.status == "passed", fixed.summary()
    assert {m.mart: m.rows for m in fixed.marts}["fct_cost_records"] == 2
    assert _watermarks(marts)["fct_cost_records"] == bad


def test_the_range_shows_in_the_result_and_the_history(marts: str, store: QualityStore) -> None:
    newest = _newest(marts, "fct_cost_records")
    hours = load_gate_settings().mart_window_hours

    first = _gate(marts, store)

    # no watermark yet: the first range looks back HUB_QUALITY_MART_WINDOW_HOURS from the
    # newest stamp, not from the clock
    assert _checked(first, "fct_cost_records") == {
        "after": (newest - timedelta(hours=hours)).astimezone(UTC).isoformat(),
        "through": newest.astimezone(UTC).isoformat(),
        "first": True,
        "rows": 3,
        "status": "passed",
    }
    added = _build(marts, "next-", 1.0)
    second = _gate(marts, store)
    assert _checked(second, "fct_cost_records") == {
        "after": newest.astimezone(UTC).isoformat(),
        "through": added.astimezone(UTC).isoformat(),
        "first": False,
        "rows": 1,
        "status": "passed",
    }
    history = store.history().to_table().to_pylist()
    ranges = {
        (r["run_id"], r["window_start"], r["window_end"])
        for r in history
        if r["entity"] == "fct_cost_records"
    }
    assert ranges == {
        (first.run_id, newest - timedelta(hours=hours), newest),
        (second.run_id, newest, added),
    }


def test_a_mart_first_seen_empty_is_checked_whole_next_time(
    marts: str, store: QualityStore
) -> None:
    _execute(marts, "delete from analytics.fct_cost_records;")
    empty = _gate(marts, store, marts=("fct_cost_records",))
    assert _checked(empty, "fct_cost_records") == {
        "after": None,
        "through": None,
        "first": True,
        "rows": 0,
        "status": "passed",
    }
    assert _watermarks(marts) == {"fct_cost_records": None}

    # its first rows, loaded long before the build: all of them are checked
    _build(marts, "old-", 1.0, -1.0, loaded_ago="30 days")
    with pytest.raises(MartsBlockedError) as blocked:
        _gate(marts, store, marts=("fct_cost_records",))
    assert "{'cost_record_id': 'old-2', 'cost_usd': '-1.000000'}" in str(blocked.value)
    assert _checked(blocked.value.result, "fct_cost_records")["after"] is None


def test_a_second_run_waits_for_the_first_and_starts_from_its_watermark(
    marts: str, store: QualityStore
) -> None:
    _gate(marts, store, marts=("fct_cost_records",))
    added = _build(marts, "next-", 1.0)
    pool = ThreadPoolExecutor(1)
    with psycopg.connect(marts, autocommit=True) as first_run:
        # a run in flight holds the gate's lock
        first_run.execute(
            "select pg_advisory_lock(hashtextextended('analytics_hub.quality.mart_gate', 0))"
        )
        try:
            second = pool.submit(_gate, marts, store, ("fct_cost_records",))
            deadline = time.monotonic() + 60
            while not _waits_for_advisory_lock(first_run):
                assert not second.done(), "the second run did not wait for the first"
                assert time.monotonic() < deadline, "the second run never asked for the lock"
                time.sleep(0.2)
            # the first run lets the new rows through, then ends
            first_run.execute(
                f"update {WATERMARKS} set loaded_through = %s where mart = 'fct_cost_records'",
                (added,),
            )
        finally:
            first_run.execute("select pg_advisory_unlock_all()")
    result = second.result(timeout=300)
    pool.shutdown()

    costs = _checked(result, "fct_cost_records")
    assert costs["after"] == added.astimezone(UTC).isoformat()
    assert costs["rows"] == 0  # checked by the first run: not again


def _waits_for_advisory_lock(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "select count(*) from pg_locks where locktype = 'advisory' and not granted"
        " and database = (select oid from pg_database where datname = current_database())"
    ).fetchone()
    return bool(row and row[0])


def test_the_transform_dag_ends_in_the_gate_without_importing_gx_at_parse() -> None:
    script = (
        "import json, runpy, sys\n"
        f"dag = runpy.run_path('{DAGS}/transform.py')['transform']\n"
        "gate = dag.get_task('validate_marts')\n"
        "print(json.dumps({\n"
        "    'gx': sorted(m for m in sys.modules if m.split('.')[0] == 'great_expectations'),\n"
        "    'outlets': [a.name for a in gate.outlets],\n"
        "    'leaves': sorted(t.task_id for t in dag.tasks if not t.downstream_task_ids),\n"
        "    'upstream': len(gate.upstream_task_ids),\n"
        "    'timeouts': sorted({str(t.execution_timeout) for t in dag.tasks}),\n"
        "}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    assert parsed["gx"] == []
    assert parsed["outlets"] == ["warehouse.marts.validated"]
    assert parsed["leaves"] == ["validate_marts"]  # every dbt task is upstream of it
    assert parsed["upstream"] > 0
    assert parsed["timeouts"] == ["1:00:00"]  # every dbt task and the gate
