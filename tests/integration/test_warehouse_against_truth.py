"""Lake → landing tables (COPY) → dbt, on PostgreSQL, checked against the simulators' truth.

Two adjacent windows of every module, with chaos on (malformed, duplicated and late
records), are pulled through the lake gate (``Pipeline``), loaded and built incrementally;
the facts and aggregates must equal the ground truth. Then one window is re-pulled and
re-loaded and dbt built again: nothing may change. The other warehouses of these tests load
a copy of that lake, whose windows the gate has approved already, rather than pulling them
again.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
import pytest
import yaml
from asset_states import ASSET_FACTS, deliver_asset_state, facts_off_their_asset_state
from warehouse_house import Warehouse

from analytics_hub import warehouse
from analytics_hub.lake import Zone
from analytics_hub.settings import load_settings
from analytics_hub.sources import MODULES
from analytics_hub.windows import Window
from hub_dev.postgres import PrivatePostgres
from simulators import SimulatorConfig, SimulatorProcess, compute_records, compute_truth

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 23, 10, tzinfo=UTC)
WINDOWS = [
    Window(START, START + timedelta(hours=1)),
    Window(START + timedelta(hours=1), START + timedelta(hours=2)),
]
CONFIG = SimulatorConfig(seed=8, chaos=0.3, stall_seconds=0.0, fault_rate=0.0)
# dbt's vars that make a data test check every row, not only the newest loads' rows.
EVERYTHING = '{tested_rows: "true"}'


def truth(module: str, entity: str) -> dict[str, Any]:
    return compute_truth(CONFIG, module, entity, WINDOWS[0].start, WINDOWS[-1].end)


def truth_records(module: str, entity: str) -> list[dict[str, Any]]:
    """The valid records behind `truth(module, entity)`, with their canonical values."""
    return compute_records(CONFIG, module, entity, WINDOWS[0].start, WINDOWS[-1].end)


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_of(moment: datetime) -> datetime:
    return hour_of(moment).replace(hour=0)


def month_of(moment: datetime) -> datetime:
    return day_of(moment).replace(day=1)


def grouped(
    records: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any], *measures: str
) -> dict[Any, tuple[Any, ...]]:
    """Per key: the number of records and the sum of each measure (None where no record of
    the group has it: an optional measure, summed as SQL does)."""
    groups: dict[Any, tuple[Any, ...]] = {}
    for record in records:
        count, *sums = groups.get(key(record), (0, *(None for _ in measures)))
        groups[key(record)] = (
            count + 1,
            *(
                total if record[m] is None else (total or 0) + record[m]
                for total, m in zip(sums, measures, strict=True)
            ),
        )
    return groups


@pytest.fixture(scope="module")
def built(
    private_pg: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Warehouse]:
    root = tmp_path_factory.mktemp("warehouse")
    with SimulatorProcess(CONFIG) as sim:
        house = Warehouse(private_pg, root, sim)
        house.ingest_and_load(WINDOWS[:1])
        house.dbt_build()  # the first window builds the tables…
        house.ingest_and_load(WINDOWS[1:])
        house.dbt_build()  # …the second is merged incrementally
        yield house


def test_requests_and_latency_aggregates_equal_the_truth(built: Warehouse) -> None:
    expected = truth("observatory", "metrics")
    assert built.one("select count(*) from analytics.fct_requests") == expected["valid"]
    agg = built.query(
        "select sum(requests) as requests, sum(errors) as errors, sum(latency_ms_sum) as latency,"
        " sum(input_tokens) as input_tokens, sum(output_tokens) as output_tokens"
        " from analytics.agg_model_latency_hourly"
    )[0]
    assert agg["requests"] == expected["valid"]
    assert agg["errors"] == expected["counts"]["status"].get("error", 0)
    assert float(agg["latency"]) == pytest.approx(float(expected["sums"]["latency_ms"]), rel=1e-12)
    assert agg["input_tokens"] == int(expected["sums"]["input_tokens"])
    assert agg["output_tokens"] == int(expected["sums"]["output_tokens"])


def test_latency_percentiles_are_percentile_cont_of_the_bucket(built: Warehouse) -> None:
    group = built.query(
        "select * from analytics.agg_model_latency_hourly order by requests desc limit 1"
    )[0]
    latencies = [
        row["latency_ms"]
        for row in built.query(
            "select latency_ms from analytics.fct_requests"
            f" where date_bin('1 hour', event_time, timestamptz '1970-01-01Z')"
            f" = '{group['bucket'].isoformat()}'"
            f" and model_id = '{group['model_id']}' and asset_id = '{group['asset_id']}'"
            f" and environment = '{group['environment']}'"
        )
    ]
    series = pl.Series(latencies)
    assert len(latencies) == group["requests"]
    for q, column in [(0.5, "latency_p50_ms"), (0.95, "latency_p95_ms"), (0.99, "latency_p99_ms")]:
        assert group[column] == pytest.approx(series.quantile(q, interpolation="linear"))


def test_each_violation_and_security_event_is_counted_exactly_once(built: Warehouse) -> None:
    violations = truth("policy", "violations")
    assert built.one("select count(*) from analytics.fct_violations") == violations["valid"]
    by_type = {
        row["violation_type"]: row["n"]
        for row in built.query(
            "select violation_type, sum(violations) as n from analytics.agg_violations_hourly"
            " group by 1"
        )
    }
    # every violation counted, those without a type (optional) under none
    assert sum(by_type.values()) == violations["valid"]
    assert labelled(by_type) == violations["counts"]["violation_type"]
    threats = truth("sentinel", "security-events")
    assert built.one("select count(*) from analytics.fct_security_events") == threats["valid"]
    by_level = {
        row["threat_level"]: row["n"]
        for row in built.query(
            "select threat_level, sum(security_events) as n from analytics.agg_threats_hourly"
            " group by 1"
        )
    }
    assert sum(by_level.values()) == threats["valid"]
    assert labelled(by_level) == threats["counts"]["threat_level"]


def labelled(counts: dict[Any, Any]) -> dict[Any, Any]:
    """The counts of the records that carry the (optional) field, as the truth counts them."""
    return {value: n for value, n in counts.items() if value is not None}


def test_compliance_counts_equal_the_truth(built: Warehouse) -> None:
    evaluations = truth("policy", "evaluations")
    agg = built.query(
        "select sum(evaluations) as evaluations, sum(compliant) as compliant"
        " from analytics.agg_compliance_hourly"
    )[0]
    assert agg["evaluations"] == evaluations["valid"]
    assert agg["compliant"] == evaluations["counts"]["result"]["compliant"]


def rate(compliant: int, evaluations: int) -> Decimal | None:
    """compliant / evaluations to 6 decimals, half away from zero (PostgreSQL's round)."""
    if not evaluations:
        return None
    return (Decimal(compliant) / Decimal(evaluations)).quantize(
        Decimal("0.000001"), rounding=ROUND_HALF_UP
    )


def test_the_policy_compliance_report_equals_the_truth_hour_by_hour(built: Warehouse) -> None:
    evaluations = truth_records("policy", "evaluations")
    violations = truth_records("policy", "violations")
    hours = sorted({hour_of(r["event_time"]) for r in [*evaluations, *violations]})
    assert len(hours) >= 2
    expected = {}
    for hour in hours:
        evaluated = [r for r in evaluations if hour_of(r["event_time"]) == hour]
        before = [r for r in evaluations if hour_of(r["event_time"]) == hour - timedelta(hours=1)]
        violated = [r for r in violations if hour_of(r["event_time"]) == hour]
        compliant = sum(r["result"] == "compliant" for r in evaluated)
        now = rate(compliant, len(evaluated))
        previous = rate(sum(r["result"] == "compliant" for r in before), len(before))
        expected[hour] = {
            "evaluations": len(evaluated),
            "compliant": compliant,
            "non_compliant": sum(r["result"] == "non_compliant" for r in evaluated),
            "violations": len(violated),
            "compliance_rate": now,
            "previous_compliance_rate": previous,
            "compliance_rate_trend": None if now is None or previous is None else now - previous,
            "by_type": Counter(r["violation_type"] for r in violated),
            "by_severity": Counter(r["violation_severity"] for r in violated),
        }
    reported = {}
    for row in built.query(
        "select hour, evaluations, compliant, non_compliant, violations, compliance_rate,"
        " previous_compliance_rate, compliance_rate_trend, violations_by_type,"
        " violations_by_severity from analytics.rpt_policy_compliance_hourly"
    ):
        by_type, by_severity = row.pop("violations_by_type"), row.pop("violations_by_severity")
        row["by_type"] = Counter({k["violation_type"]: k["violations"] for k in by_type})
        row["by_severity"] = Counter(
            {k["violation_severity"]: k["violations"] for k in by_severity}
        )
        reported[row.pop("hour")] = row
    assert sorted(reported) == hours
    for hour in hours:
        assert reported[hour] == expected[hour], hour
    # the first hour has no hour before it: its trend is absent, not zero
    assert reported[hours[0]]["compliance_rate_trend"] is None


def attributed_usage() -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """The usage report's rows as docs/feeds.md states the rule, from the simulator's records:
    ``(hour, account_id, asset_id) -> (requests, input_tokens, output_tokens)``."""
    usage: dict[tuple[Any, Any], list[Any]] = {}
    for r in truth_records("observatory", "metrics"):
        totals = usage.setdefault((hour_of(r["event_time"]), r["asset_id"]), [0, None, None])
        totals[0] += 1
        for i, name in ((1, "input_tokens"), (2, "output_tokens")):
            if r[name] is not None:
                totals[i] = (totals[i] or 0) + r[name]
    latest: dict[str, dict[str, Any]] = {}
    for r in truth_records("costops", "cost-data"):
        kept = latest.get(r["cost_record_id"])
        if kept is None or r["record_version"] > kept["record_version"]:
            latest[r["cost_record_id"]] = r
    tokens: dict[tuple[Any, Any], dict[str, int]] = {}
    for r in latest.values():
        if r["asset_id"] is None or r["account_id"] is None:
            continue
        end = r["usage_end"] - timedelta(microseconds=1) if r["usage_end"] else r["usage_start"]
        hour, last = hour_of(r["usage_start"]), hour_of(max(end, r["usage_start"]))
        while hour <= last:
            accounts = tokens.setdefault((hour, r["asset_id"]), {})
            accounts[r["account_id"]] = (
                accounts.get(r["account_id"], 0)
                + (r["input_tokens"] or 0)
                + (r["output_tokens"] or 0)
            )
            hour += timedelta(hours=1)
    rows: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for (hour, asset), totals in usage.items():
        accounts = tokens.get((hour, asset))
        if not accounts:
            rows[(hour, None, asset)] = tuple(totals)
            continue
        weights = {a: (t if sum(accounts.values()) > 0 else 1) for a, t in accounts.items()}
        whole, running = sum(weights.values()), 0
        for account in sorted(weights, key=lambda a: a.encode()):
            before, running = running, running + weights[account]
            rows[(hour, account, asset)] = tuple(
                None if total is None else total * running // whole - total * before // whole
                for total in totals
            )
    return rows


def test_the_usage_report_attributes_every_request_to_accounts_as_the_rule_says(
    built: Warehouse,
) -> None:
    expected = attributed_usage()
    reported = {
        (row["hour"], row["account_id"], row["asset_id"]): (
            row["requests"],
            row["input_tokens"],
            row["output_tokens"],
        )
        for row in built.query(
            "select hour, account_id, asset_id, requests, input_tokens, output_tokens"
            " from analytics.rpt_costops_usage_hourly"
        )
    }
    assert reported == expected
    # some usage is split between accounts, some is unattributed, and none is lost
    assert any(account is None for _, account, _ in reported)
    assert len({(h, a) for h, _, a in reported}) < len(reported)
    assert sum(r[0] for r in reported.values()) == truth("observatory", "metrics")["valid"]


def test_costs_keep_the_latest_version_and_sum_to_the_cent(built: Warehouse) -> None:
    lake_rows = pl.from_arrow(built.lake.read(Zone.NORMALIZED, "costops", "cost_records"))
    assert isinstance(lake_rows, pl.DataFrame)
    latest = lake_rows.sort("record_version").group_by("cost_record_id").last()
    assert built.one("select count(*) from analytics.fct_cost_records") == latest.height
    total = built.one("select sum(cost_usd) from analytics.agg_costs_hourly")
    assert total.quantize(Decimal("0.01")) == Decimal(str(latest["cost_usd"].sum())).quantize(
        Decimal("0.01")
    )
    assert lake_rows.height > latest.height, "the window should hold corrected versions"


def test_a_late_record_lands_in_its_true_bucket(built: Warehouse) -> None:
    late_ids = truth("sentinel", "security-events")["late"]
    assert late_ids
    row = built.query(
        "select event_time, ingested_at from analytics.fct_security_events"
        f" where event_id = '{late_ids[0]}'"
    )[0]
    assert row["event_time"] < row["ingested_at"] - timedelta(hours=2)
    bucket = row["event_time"].replace(minute=0, second=0, microsecond=0)
    assert (
        built.one(
            "select count(*) from analytics.agg_threats_hourly"
            f" where bucket = '{bucket.isoformat()}'"
        )
        >= 1
    )


def test_marketplace_usage_per_extension_and_period_equals_the_truth(built: Warehouse) -> None:
    expected = truth("marketplace", "usage")
    usage = truth_records("marketplace", "usage")
    assert expected["duplicates"], "the windows should hold redelivered reports"
    assert expected["late"], "late reports should land in the hour they report"
    assert built.one("select count(*) from analytics.fct_marketplace_usage") == expected["valid"]
    for table, bucket in [("hourly", hour_of), ("daily", day_of)]:
        actual = {
            (row["bucket"], row["extension_id"]): (
                row["usage_reports"],
                row["invocations"],
                row["active_tenant_hours"],
            )
            for row in built.query(f"select * from analytics.agg_marketplace_usage_{table}")
        }
        assert actual == grouped(
            usage,
            lambda r, bucket=bucket: (bucket(r["period_start"]), r["extension_id"]),
            "invocations",
            "active_tenants",
        ), table
    totals = built.query(
        "select sum(invocations) as invocations, sum(active_tenant_hours) as tenants"
        " from analytics.agg_marketplace_usage_daily"
    )[0]
    assert totals["invocations"] == Decimal(expected["sums"]["invocations"])
    assert totals["tenants"] == Decimal(expected["sums"]["active_tenants"])


def test_extension_states_form_the_extension_dimension(built: Warehouse) -> None:
    expected = truth("marketplace", "extensions")
    rows = built.query(
        "select extension_id, category, valid_to = 'infinity' as is_current,"
        " valid_to = coalesce(lead(valid_from) over (partition by extension_id"
        " order by valid_from), 'infinity') as is_contiguous"
        " from analytics.dim_extensions"
    )
    assert len(rows) == expected["valid"]
    categories = Counter(r["category"] for r in rows)
    assert dict(sorted(categories.items())) == expected["counts"]["category"]
    assert all(r["is_contiguous"] for r in rows)
    assert sum(r["is_current"] for r in rows) == len({r["extension_id"] for r in rows})


def test_marketplace_revenue_in_usd_per_extension_equals_the_truth(built: Warehouse) -> None:
    expected = truth("marketplace", "revenue")
    revenue = truth_records("marketplace", "revenue")
    assert {r["currency"] for r in revenue} == {"USD", "EUR", "GBP"}
    assert expected["late"], "late records should land in the hour they report"
    assert built.one("select count(*) from analytics.fct_marketplace_revenue") == expected["valid"]
    for table, bucket in [("hourly", hour_of), ("daily", day_of)]:
        actual = {
            (row["bucket"], row["extension_id"]): (row["revenue_records"], row["revenue_usd"])
            for row in built.query(f"select * from analytics.agg_marketplace_revenue_{table}")
        }
        assert actual == grouped(
            revenue,
            lambda r, bucket=bucket: (bucket(r["period_start"]), r["extension_id"]),
            "amount_usd",
        ), table
    total = built.one("select sum(revenue_usd) from analytics.agg_marketplace_revenue_daily")
    assert total == Decimal(expected["sums"]["amount_usd"])


def test_registry_events_are_counted_once_per_type_and_day(built: Warehouse) -> None:
    expected = truth("registry", "events")
    assert expected["duplicates"], "the windows should hold redelivered events"
    assert built.one("select count(*) from analytics.fct_registry_events") == expected["valid"]
    actual = {
        (row["bucket"], row["event_type"]): row["events"]
        for row in built.query("select * from analytics.agg_registry_events_daily")
    }
    per_day = grouped(
        truth_records("registry", "events"), lambda r: (day_of(r["event_time"]), r["event_type"])
    )
    assert actual == {key: count for key, (count,) in per_day.items()}
    by_type: Counter[str] = Counter()
    for (_, event_type), events in actual.items():
        by_type[event_type] += events
    assert dict(sorted(by_type.items())) == expected["counts"]["event_type"]


def test_policy_audit_entries_are_counted_once(built: Warehouse) -> None:
    expected = truth("policy", "audit-trail")
    assert built.one("select count(*) from analytics.fct_policy_audit") == expected["valid"]
    by_type = {
        row["event_type"]: row["n"]
        for row in built.query(
            "select event_type, count(*) as n from analytics.fct_policy_audit group by 1"
        )
    }
    assert by_type == expected["counts"]["event_type"]


def test_budget_burn_is_the_truths_spend_over_the_limit_in_force(built: Warehouse) -> None:
    latest: dict[str, dict[str, Any]] = {}
    for record in truth_records("costops", "cost-data"):
        kept = latest.get(record["cost_record_id"])
        if kept is None or record["record_version"] > kept["record_version"]:
            latest[record["cost_record_id"]] = record
    spend = {
        key: total
        for key, (_, total) in grouped(
            list(latest.values()),
            lambda r: (r["account_id"], month_of(r["usage_start"])),
            "cost_usd",
        ).items()
    }
    states = sorted(truth_records("costops", "budgets"), key=lambda r: r["updated_at"])
    budgets = {state["budget_id"]: state["account_id"] for state in states}
    months = {(budgets[s["budget_id"]], month_of(s["updated_at"])) for s in states} | set(spend)
    expected = {}
    for budget_id, account_id in budgets.items():
        for account, month in months:
            end = (month + timedelta(days=32)).replace(day=1)
            in_force = [s for s in states if s["budget_id"] == budget_id and s["updated_at"] < end]
            if account != account_id or not in_force:
                continue
            budget = in_force[-1]
            spent = spend.get((account, month), Decimal(0))
            limit, threshold = budget["limit_usd"], budget["alert_threshold_percent"]
            expected[(budget_id, month)] = {
                "account_id": account_id,
                "limit_usd": limit,
                "alert_threshold_percent": threshold,
                "spend_usd": spent,
                "burn_percent": (spent * 100 / limit).quantize(Decimal("0.0001"), ROUND_HALF_UP),
                "is_alert": spent * 100 >= threshold * limit,
                "is_over_budget": spent > limit,
            }
    assert expected, "the windows should set budgets"
    actual = {
        (row["budget_id"], row["period_start"]): {
            name: row[name] for name in next(iter(expected.values()))
        }
        for row in built.query("select * from analytics.agg_budget_burn_monthly")
    }
    assert actual == expected


FACTS = [
    "fct_requests",
    "fct_violations",
    "fct_evaluations",
    "fct_security_events",
    "fct_cost_records",
    "fct_registry_events",
    "fct_marketplace_usage",
    "fct_marketplace_revenue",
    "fct_policy_audit",
]
ROLLUPS = [
    "agg_model_latency_hourly",
    "agg_costs_hourly",
    "agg_violations_hourly",
    "agg_compliance_hourly",
    "agg_threats_hourly",
    "agg_marketplace_usage_hourly",
    "agg_marketplace_revenue_hourly",
    "agg_registry_events_daily",
    "agg_budget_burn_monthly",
]
REPORTS = ["rpt_policy_compliance_hourly", "rpt_costops_usage_hourly"]


def _marts_without_load_times(house: Warehouse) -> dict[str, list[dict[str, Any]]]:
    return {
        table: [
            {k: v for k, v in row.items() if k != "_loaded_at"}
            for row in house.query(f"select * from analytics.{table} order by 1, 2, 3, 4")
        ]
        for table in ROLLUPS + FACTS + REPORTS
    }


@pytest.mark.parametrize(
    "merge",
    [
        pytest.param("1000000", id="rows inserted into their partitions"),
        pytest.param("0", id="day partitions rebuilt"),
    ],
)
def test_rerunning_a_window_changes_nothing(built: Warehouse, merge: str) -> None:
    """A re-pulled window merged either way PostgreSQL can (var ``fact_rebuild_share``)."""
    before = _marts_without_load_times(built)
    built.ingest_and_load(WINDOWS[:1])
    built.dbt_build("--vars", f"{{fact_rebuild_share: {merge}}}")
    after = _marts_without_load_times(built)
    assert {t: len(rows) for t, rows in after.items()} == {t: len(r) for t, r in before.items()}
    changed = [
        (table, old, new)
        for table in before
        for old, new in zip(before[table], after[table], strict=True)
        if old != new
    ]
    assert not changed, f"{len(changed)} rows changed, e.g. {changed[:2]}"
    for fact in FACTS:
        key = "cost_record_id" if fact == "fct_cost_records" else "event_id"
        assert built.one(f"select count(*) - count(distinct {key}) from analytics.{fact}") == 0


def _partition_spans(house: Warehouse) -> list[dict[str, Any]]:
    """Every fact partition: its fact, name, and span (upper - lower bound)."""
    return house.query(
        "select parent.relname as fact, part.relname as partition,"
        " bounds[2]::timestamptz - bounds[1]::timestamptz as span"
        " from pg_inherits"
        " join pg_class parent on parent.oid = pg_inherits.inhparent"
        " join pg_class part on part.oid = pg_inherits.inhrelid"
        " cross join lateral regexp_match(pg_get_expr(part.relpartbound, part.oid),"
        " $$FROM \\('([^']*)'\\) TO \\('([^']*)'\\)$$) as bounds"
        " where parent.relnamespace = 'analytics'::regnamespace and parent.relkind = 'p'"
        " order by 1, 2"
    )


def test_hour_partitions_hold_the_same_marts_and_a_day_span_keeps_to_them(
    built: Warehouse, private_pg: PrivatePostgres, tmp_path: Path
) -> None:
    """var fact_partition_span: 1 hour partitions every fact by hour, with the same marts.

    Switched back to 1 day, a new hour of a day already partitioned by hour gets an hour
    partition (a day one would overlap them); retention drops hour partitions by bound.
    """
    hourly = "--vars", "{fact_partition_span: {default: 1 hour}}"
    house = Warehouse(private_pg, tmp_path, built.sim, database="warehouse_hourly", lake_of=built)
    house.load(WINDOWS[:1])
    house.dbt_build(*hourly)
    house.load(WINDOWS[1:])
    house.dbt_build(*hourly)

    spans = _partition_spans(house)
    assert {row["fact"] for row in spans} == set(FACTS)
    assert {row["span"] for row in spans} == {timedelta(hours=1)}, spans
    assert all(re.fullmatch(r"fct_\w+_p\d{8}_\d{2}", row["partition"]) for row in spans), spans
    assert _marts_without_load_times(house) == _marts_without_load_times(built)

    later = Window(WINDOWS[-1].end, WINDOWS[-1].end + timedelta(hours=1))
    house.ingest_and_load([later])
    house.dbt_build("--vars", "{fact_partition_span: {default: 1 day}}")
    names = {row["partition"] for row in _partition_spans(house)}
    assert f"fct_requests_p{later.start:%Y%m%d_%H}" in names
    # a day without partitions may get a day one (a late cost record's), never one with hours
    days = {name for name in names if re.fullmatch(r"fct_\w+_p\d{8}", name)}
    assert not [(day, hour) for day in days for hour in names if hour.startswith(day + "_")]

    expire_all = "{retention: {" + ", ".join(f"{m}: 1 hour" for m in MODULES) + "}}"
    result = house.dbt("run-operation", "apply_retention", "--vars", expire_all)
    assert result.returncode == 0, result.stdout[-3000:]
    assert _partition_spans(house) == []
    assert house.one("select count(*) from analytics.fct_requests") == 0


def _waits_for_lock(dsn: str, table: str, mode: str, timeout: float = 60.0) -> bool:
    """Whether a session comes to wait for a `mode` lock on `table` within `timeout` s."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                "select count(*) from pg_locks where relation = %s::regclass"
                " and mode = %s and not granted",
                (table, mode),
            ).fetchone()
            if waiting is not None and waiting[0] > 0:
                return True
            time.sleep(0.1)
    return False


def test_builds_and_loads_lock_each_other_out_so_the_watermark_misses_no_load(
    built: Warehouse, private_pg: PrivatePostgres, tmp_path: Path
) -> None:
    """A fact's build reads the rows landed after the newest `_loaded_at` it holds, and
    misses no load (with no lookback), in either order of the two:

    - a load in flight when a build starts: the build waits for it to commit, then takes
      its rows;
    - a load that starts while a build reads: it waits for the build to commit, then stamps
      its rows later than that commit, so the next build takes them.
    """
    house = Warehouse(private_pg, tmp_path, built.sim, database="warehouse_locking", lake_of=built)
    house.load(WINDOWS)
    house.dbt_build()
    landing = warehouse.landing_table("observatory", "metrics")
    newest_fact = "select max(_loaded_at) from analytics.fct_requests"
    build = ("build", "--select", "fct_requests")

    # A re-load of the first window (a re-pull) in flight: uncommitted when the build starts.
    with psycopg.connect(house.dsn) as loading:
        loading.execute("select 1")  # a transaction open: the load is a savepoint in it
        warehouse.load_window(loading, house.lake, "observatory", "metrics", WINDOWS[0])
        stamp = loading.execute(f"select max(_loaded_at) from {landing}").fetchone()
        builder = house.dbt_process(*build)
        try:
            assert _waits_for_lock(house.dsn, landing, "ShareLock"), "the build did not wait"
            assert builder.poll() is None
        finally:
            loading.commit()
            output, _ = builder.communicate(timeout=600)
    assert builder.returncode == 0, output[-6000:]
    assert stamp is not None and house.one(newest_fact) == stamp[0]

    # A build holds the table (as while it reads) when the next re-load starts.
    with psycopg.connect(house.dsn) as reading:
        reading.execute(f"lock table {landing} in share mode")
        loaded: list[warehouse.LoadResult] = []
        with psycopg.connect(house.dsn, autocommit=True) as loading:
            loader = threading.Thread(
                target=lambda: loaded.append(
                    warehouse.load_window(loading, house.lake, "observatory", "metrics", WINDOWS[1])
                )
            )
            loader.start()
            try:
                waited = _waits_for_lock(house.dsn, landing, "RowExclusiveLock")
                released = reading.execute("select clock_timestamp()").fetchone()
            finally:
                reading.commit()
                loader.join(timeout=120)
    assert waited, "the load did not wait for the build"
    assert len(loaded) == 1 and loaded[0].rows > 0
    stamped = house.one(
        f"select min(_loaded_at) from {landing} where _window_start = "
        f"'{WINDOWS[1].start.isoformat()}'"
    )
    assert released is not None and stamped > released[0]
    house.dbt_build(*build[1:])
    assert house.one(newest_fact) == stamped


def test_facts_carry_the_asset_of_their_time_and_take_states_delivered_after_them(
    built: Warehouse, private_pg: PrivatePostgres, tmp_path: Path
) -> None:
    """Every fact row carries the dim_assets state valid at its time, also when the registry
    delivers that state after the fact was merged: an incremental build reads no fact again,
    it updates the rows it holds to the states loaded since (`refresh_asset_columns`):

    - a state loaded after the facts' watermark, with no lookback (asset_state_lookback 0),
      and with no new facts to merge;
    - a state loaded while a build ran, after dim_assets was built (here: a build of the
      fact alone) and before the fact's new rows: older than the watermark, it takes the
      lookback.
    """
    house = Warehouse(private_pg, tmp_path, built.sim, database="warehouse_assets", lake_of=built)
    house.load(WINDOWS)
    house.dbt_build()
    assert facts_off_their_asset_state(house.dsn) == dict.fromkeys(ASSET_FACTS, 0)
    assert house.one("select count(asset_name) from analytics.fct_requests") > 0
    asset = house.one(  # an asset the registry listed: the late states follow its listing
        "select asset_id from analytics.fct_requests where asset_name is not null"
        f" and asset_id in (select asset_id from {warehouse.landing_table('registry', 'assets')})"
        " group by 1 order by count(*) desc, 1 limit 1"
    )
    names = (
        "select asset_name, count(*) as n from analytics.fct_requests"
        f" where asset_id = '{asset}' and event_time >= '{{}}' and event_time < '{{}}'"
        " group by 1"
    )

    def request_from(at: datetime) -> datetime:
        """The time of the asset's first request from `at` on: a state from then covers
        it, whatever the registry's events say of the asset after it."""
        return house.one(  # type: ignore[no-any-return]
            "select min(event_time) from analytics.fct_requests"
            f" where asset_id = '{asset}' and event_time >= '{at.isoformat()}'"
        )

    def held_until(at: datetime) -> datetime:
        """The end of the asset's state that starts at `at` (the next state it has), within
        the windows loaded."""
        return house.one(  # type: ignore[no-any-return]
            f"select least(valid_to, '{WINDOWS[-1].end.isoformat()}')"
            f" from analytics.dim_assets where asset_id = '{asset}'"
            f" and valid_from = '{at.isoformat()}'"
        )

    renamed_at = request_from(START + timedelta(minutes=90))
    racing_at = request_from(START + timedelta(minutes=30))
    asset_facts = (*ASSET_FACTS, "dim_assets")

    deliver_asset_state(house.dsn, asset, renamed_at, asset_name="renamed-late", owner="late")
    house.dbt_build("--select", *asset_facts, "--vars", "{asset_state_lookback: 0 seconds}")
    assert facts_off_their_asset_state(house.dsn) == dict.fromkeys(ASSET_FACTS, 0)
    after = house.query(names.format(renamed_at, held_until(renamed_at)))
    assert [row["asset_name"] for row in after] == ["renamed-late"]
    assert "renamed-late" not in {
        row["asset_name"] for row in house.query(names.format(START, renamed_at))
    }

    # loaded before the re-pulled telemetry that the next build of the fact merges, and
    # not in dim_assets for that build
    deliver_asset_state(house.dsn, asset, racing_at, asset_name="renamed-racing")
    with psycopg.connect(house.dsn, autocommit=True) as conn:
        warehouse.load_window(conn, house.lake, "observatory", "metrics", WINDOWS[1])
    house.dbt_build("--select", "fct_requests")
    house.dbt_build("--select", *asset_facts, "--vars", "{asset_state_lookback: 0 seconds}")
    stale = facts_off_their_asset_state(house.dsn, ["fct_requests"])["fct_requests"]
    assert stale > 0, "the racing state reached the facts with no lookback: nothing tested"
    house.dbt_build("--select", *asset_facts)  # the default lookback: 1 hour
    assert facts_off_their_asset_state(house.dsn) == dict.fromkeys(ASSET_FACTS, 0)
    racing_until = held_until(racing_at)
    assert racing_until <= renamed_at
    assert [row["asset_name"] for row in house.query(names.format(racing_at, racing_until))] == [
        "renamed-racing"
    ]


def test_every_fact_partition_has_the_facts_indexes_and_nothing_is_left_over(
    built: Warehouse,
) -> None:
    """Rebuilt partitions are attached with the indexes built for them, as created ones are.

    ATTACH adopts an index equal to one of the fact's and creates the others: an index
    built unlike the fact's would be left unattached and doubled.
    """
    attached = built.query(
        "select parent.relname as fact, part.relname as partition,"
        " count(child_index.oid) as indexes, count(parent_index.inhparent) as attached"
        " from pg_inherits p"
        " join pg_class parent on parent.oid = p.inhparent"
        " join pg_class part on part.oid = p.inhrelid"
        " left join pg_index child_index_def on child_index_def.indrelid = part.oid"
        " left join pg_class child_index on child_index.oid = child_index_def.indexrelid"
        " left join pg_inherits parent_index on parent_index.inhrelid = child_index.oid"
        " where parent.relnamespace = 'analytics'::regnamespace and parent.relkind = 'p'"
        " group by 1, 2"
    )
    parent_indexes = {
        row["fact"]: row["n"]
        for row in built.query(
            "select c.relname as fact, count(*) as n from pg_index i"
            " join pg_class c on c.oid = i.indrelid"
            " where c.relnamespace = 'analytics'::regnamespace and c.relkind = 'p' group by 1"
        )
    }
    assert {row["fact"] for row in attached} == set(FACTS)
    for row in attached:
        # no index of its own besides the fact's (time, _loaded_at and the index_by ones)
        assert row["indexes"] == row["attached"] == parent_indexes[row["fact"]] >= 2, row
    leftovers = built.query(
        "select relname from pg_class where relnamespace = 'analytics'::regnamespace"
        " and (relname like '%\\_\\_rebuild%' or relname like '%\\_\\_new\\_rows%')"
        " union all select conname from pg_constraint"
        " where connamespace = 'analytics'::regnamespace and conname like '%\\_bounds'"
    )
    assert leftovers == []


def test_the_partition_taking_most_new_rows_is_the_new_rows_table_itself(
    built: Warehouse,
) -> None:
    """A fact's new rows are written once: the table dbt reads them into, ``<fact>__new_rows``
    (not a temporary table), becomes the rebuilt partition that takes most of them; the
    others are rebuilt from it, and it is dropped where no partition is rebuilt."""
    before = _marts_without_load_times(built)
    built.load(WINDOWS[:1])  # new rows for the build: the window loaded again
    built.dbt_build("--vars", "{fact_rebuild_share: 0}")  # every partition a load touches
    merge = (
        built.root / "target/run/llm_analytics_hub/models/marts/observability/fct_requests.sql"
    ).read_text()
    adopted = r'alter table \S*"fct_requests__new_rows" rename to fct_requests_p\d{8}\b'
    assert re.search(adopted, merge), merge
    assert _marts_without_load_times(built) == before
    built.load(WINDOWS[:1])
    built.dbt_build("--vars", "{fact_rebuild_share: 1000000}")  # rows inserted, none rebuilt
    merge = (
        built.root / "target/run/llm_analytics_hub/models/marts/observability/fct_requests.sql"
    ).read_text()
    assert re.search(r'drop table \S*"fct_requests__new_rows"', merge)
    assert _marts_without_load_times(built) == before
    assert built.query("select relname from pg_class where relname like '%\\_\\_new\\_rows'") == []


def test_key_tests_check_the_newest_loads_and_catch_a_duplicate_among_them(
    built: Warehouse,
) -> None:
    """`vars.tested_rows`: the rows loaded within the hour before the newest load.

    A second copy of the newest violation, loaded two hours before it, is outside what the
    key test checks; loaded after it, it is inside and fails the test.
    """
    fact = "analytics.fct_violations"
    newest = built.query(
        f"select event_id, _loaded_at from {fact} order by _loaded_at desc limit 1"
    )[0]
    columns = [
        row["column_name"]
        for row in built.query(
            "select column_name from information_schema.columns where table_schema = 'analytics'"
            " and table_name = 'fct_violations' order by ordinal_position"
        )
    ]
    copy = (
        f"insert into {fact} ({', '.join(columns)})"
        f" select {', '.join('%(loaded_at)s' if c == '_loaded_at' else c for c in columns)}"
        f" from {fact} where event_id = %(event_id)s"
    )
    remove = f"delete from {fact} where event_id = %(event_id)s and _loaded_at = %(loaded_at)s"

    def unique_test(*extra: str) -> subprocess.CompletedProcess[str]:
        return built.dbt("test", "--select", "unique_fct_violations_event_id", *extra)

    earlier = {
        "event_id": newest["event_id"],
        "loaded_at": newest["_loaded_at"] - timedelta(hours=2),
    }
    later = {
        "event_id": newest["event_id"],
        "loaded_at": newest["_loaded_at"] + timedelta(seconds=1),
    }
    with psycopg.connect(built.dsn, autocommit=True) as conn:
        try:
            conn.execute(copy, earlier)  # type: ignore[arg-type]
            assert unique_test().returncode == 0
            everything = unique_test("--vars", EVERYTHING)
            assert everything.returncode == 1, everything.stdout[-3000:]
            assert "Got 1 result" in everything.stdout
            conn.execute(remove, earlier)  # type: ignore[arg-type]
            conn.execute(copy, later)  # type: ignore[arg-type]
            newest_hour = unique_test()
            assert newest_hour.returncode == 1, newest_hour.stdout[-3000:]
            assert "Got 1 result" in newest_hour.stdout
        finally:
            conn.execute(remove, earlier)  # type: ignore[arg-type]
            conn.execute(remove, later)  # type: ignore[arg-type]
    assert built.one(f"select count(*) - count(distinct event_id) from {fact}") == 0


def test_rollup_key_tests_check_the_buckets_of_the_newest_loads_and_catch_a_duplicate_there(
    built: Warehouse,
) -> None:
    """`vars.tested_rows` on a rollup: the buckets whose newest fact row the last hour loaded.

    A copy of a bucket's row stamped two hours before the newest load is outside what the
    key test checks; with its own stamp (that of a recent load) it is inside and fails it.
    """
    rollup = "analytics.agg_violations_hourly"
    test = "unique_combination_agg_violations_hourly_bucket__policy_id__violation_type__violation_severity"
    bucket = built.one(f"select max(bucket) from {rollup}")
    newest_load = built.one("select landing.newest_load()")
    columns = [
        row["column_name"]
        for row in built.query(
            "select column_name from information_schema.columns where table_schema = 'analytics'"
            " and table_name = 'agg_violations_hourly' order by ordinal_position"
        )
    ]
    copy = (
        f"insert into {rollup} ({', '.join(columns)})"
        f" select {', '.join('%(loaded_at)s' if c == '_loaded_at' else c for c in columns)}"
        f" from {rollup} where bucket = %(bucket)s limit 1"
    )
    remove = (
        f"delete from {rollup} where ctid in (select max(ctid) from {rollup}"
        " where bucket = %(bucket)s group by policy_id, violation_type, violation_severity"
        " having count(*) > 1)"
    )
    with psycopg.connect(built.dsn, autocommit=True) as conn:
        try:
            older = {"bucket": bucket, "loaded_at": newest_load - timedelta(hours=2)}
            conn.execute(copy, older)  # type: ignore[arg-type]
            assert built.dbt("test", "--select", test).returncode == 0
            everything = built.dbt("test", "--select", test, "--vars", EVERYTHING)
            assert everything.returncode == 1 and "Got 1 result" in everything.stdout
            conn.execute(remove, {"bucket": bucket})  # type: ignore[arg-type]
            conn.execute(copy, {"bucket": bucket, "loaded_at": newest_load})  # type: ignore[arg-type]
            newest = built.dbt("test", "--select", test)
            assert newest.returncode == 1 and "Got 1 result" in newest.stdout, newest.stdout[-3000:]
        finally:
            conn.execute(remove, {"bucket": bucket})  # type: ignore[arg-type]
    assert (
        built.one(
            f"select count(*) from (select 1 from {rollup} group by bucket, policy_id,"
            " violation_type, violation_severity having count(*) > 1) as duplicates"
        )
        == 0
    )


def test_the_tests_filter_reads_the_newest_load_once_and_rollups_index_loaded_at(
    built: Warehouse,
) -> None:
    """`vars.tested_rows` costs one lookup of the newest load per test, not one per row.

    Forced to read a rollup whole (no index scan), a key test's query under the filter
    still calls `landing.newest_load()` once; and every rollup has an index on `_loaded_at`,
    so the filter need not read it whole.
    """
    tested_rows = yaml.safe_load((load_settings().dbt_project_dir / "dbt_project.yml").read_text())[
        "vars"
    ]["tested_rows"]
    rollup = "analytics.agg_model_latency_hourly"
    with psycopg.connect(built.dsn) as conn:
        conn.execute("set track_functions = 'all'")
        conn.execute("set enable_indexscan = off")
        conn.execute("set enable_bitmapscan = off")
        rows = conn.execute(f"select count(*) from {rollup}").fetchone()
        assert rows is not None and rows[0] > 1
        conn.execute(
            f"select bucket, model_id from {rollup} where {tested_rows}"  # type: ignore[arg-type]
            " group by 1, 2 having count(*) > 1"
        )
        calls = conn.execute(
            "select calls from pg_stat_xact_user_functions where funcname = 'newest_load'"
        ).fetchall()
    assert calls == [(1,)], calls
    manifest = json.loads((built.root / "target" / "manifest.json").read_text())
    rollups = sorted(
        node["name"]
        for node in manifest["nodes"].values()
        if node["config"].get("materialized") == "aggregate"
    )
    indexed = {
        row["relname"]
        for row in built.query(
            "select c.relname from pg_class as c join pg_index as i on i.indrelid = c.oid"
            " join pg_attribute as a on a.attrelid = c.oid and a.attnum = i.indkey[0]"
            " where c.relnamespace = 'analytics'::regnamespace and a.attname = '_loaded_at'"
        )
    }
    assert len(rollups) >= 10 and [name for name in rollups if name not in indexed] == []

    # a rollup table built without it gets it on its next incremental build
    index = built.one(
        "select indexrelid::regclass::text from pg_index as i join pg_attribute as a"
        " on a.attrelid = i.indrelid and a.attnum = i.indkey[0]"
        f" where i.indrelid = '{rollup}'::regclass and a.attname = '_loaded_at'"
    )
    with psycopg.connect(built.dsn, autocommit=True) as conn:
        conn.execute(f"drop index {index}")  # type: ignore[arg-type]
    built.dbt_build("--select", "agg_model_latency_hourly")
    assert (
        built.one(
            "select count(*) from pg_index as i join pg_attribute as a"
            " on a.attrelid = i.indrelid and a.attnum = i.indkey[0]"
            f" where i.indrelid = '{rollup}'::regclass and a.attname = '_loaded_at'"
        )
        == 1
    )


def test_an_incremental_build_ranks_only_the_deliveries_of_the_keys_it_brought(
    built: Warehouse,
) -> None:
    """The deduplication of a new batch reads its keys' deliveries by index, not history."""
    compiled = next((built.root / "target" / "compiled").rglob("fct_evaluations.sql"))
    sql = compiled.read_text()
    assert "= any(array(select event_id" in sql  # compiled incrementally: the second build
    plan = "\n".join(row["QUERY PLAN"] for row in built.query(f"explain {sql}"))
    # the keys filter sits below the window function, not in a join above it
    below_window = plan[plan.index("WindowAgg") :]
    assert "event_id = ANY ($0)" in below_window and "Semi Join" not in plan, plan
    # and the landing table's key index can serve it (this small table is read whole)
    with psycopg.connect(built.dsn) as conn:
        conn.execute("set enable_seqscan = off")
        indexed = "\n".join(row[0] for row in conn.execute(f"explain {sql}").fetchall())  # type: ignore[arg-type]
    assert "Index Scan on policy__evaluations__key" in indexed or (
        "Index Scan using policy__evaluations__key" in indexed
    ), indexed
