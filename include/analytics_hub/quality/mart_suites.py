"""One Great Expectations suite per dbt mart, as code: what a mart must hold before a feed.

Each mart (``analytics.fct_*`` and ``analytics.agg_*``) has two suites:

- ``mart.<model>.schema``, over the table itself: its columns and their PostgreSQL types.
  These read the catalog only, never the rows, so they cost the same at any history size;
- ``mart.<model>``, over the rows the builds added since the gate last let the mart through:
  those whose ``_loaded_at`` is in the run's ``LoadedRange`` (see ``mart_gate``): not-null
  keys, unique keys, the contract's enums and ranges (from ``sources``, as in the lake
  suites), rates within [0, 1], and for a rollup the **reconciliation** of its totals with
  its fact's, bucket by bucket.

As in the lake suites, every expectation carries ``meta.severity`` (``block`` stops the
feeds; ``warn`` is recorded and logged) and ``meta.name``, the name a failure is reported
under. The row selection depends on the range, so the batch is a query asset made at each
run; the expectations themselves are fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import great_expectations as gx
import great_expectations.expectations as gxe

from analytics_hub.quality.suites import SANE_MAXIMUM, Severity
from analytics_hub.sources import MODULES, Entity, Kind

SCHEMA = "analytics"
# TimescaleDB's default origin (Monday 2000-01-03); the dbt project buckets on it as well.
BUCKET_ORIGIN = "timestamptz '2000-01-03 00:00:00+00'"
RECENT = "recent"  # the alias of the batch of touched rows in reconciliation queries
# The load step's stamp (``warehouse.LOADED_AT``), which facts keep from their landing rows
# and rollups take as the max over a bucket's fact rows: the order in which builds add rows.
LOADED_AT = "_loaded_at"
# In a reconciliation query of its own (``Reconciliation.query``): the condition that the
# fact's ``_loaded_at`` is in the run's range.
LOADED_IN_RANGE = "{loaded_in_range}"

# PostgreSQL types as SQLAlchemy names them when it reflects a table.
TEXT = ("TEXT",)
BIGINT = ("BIGINT",)
FLOAT = ("DOUBLE PRECISION", "DOUBLE_PRECISION")
NUMERIC = ("NUMERIC", "NUMERIC(38, 6)")
TIMESTAMPTZ = ("TIMESTAMP WITH TIME ZONE",)

_TYPE_OF_KIND: dict[Kind, tuple[str, ...]] = {
    Kind.STRING: TEXT,
    Kind.ENUM: TEXT,
    Kind.PERSONAL: TEXT,
    Kind.JSON: TEXT,
    Kind.INT: BIGINT,
    Kind.SIZE_BYTES: BIGINT,
    Kind.FLOAT: FLOAT,
    Kind.DURATION_MS: FLOAT,
    Kind.TIMESTAMP: TIMESTAMPTZ,
}


def _timestamp(moment: datetime) -> str:
    return f"timestamptz '{moment.astimezone(UTC).isoformat()}'"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


@dataclass(frozen=True)
class LoadedRange:
    """The ``_loaded_at`` stamps one gate run checks for a mart: ``(after, through]``.

    ``after`` is the mart's watermark, the newest stamp a run let through before; ``None``
    when that run found the mart empty, so every row is new. ``through`` is the newest stamp
    when this run started (``None``: nothing loaded); a later build's rows are stamped after
    it and wait for the next run. ``first``: the mart had no watermark yet, so ``after``
    is ``through`` minus the gate's first range (``GateSettings.mart_window_hours``).
    """

    after: datetime | None
    through: datetime | None
    first: bool = False

    @property
    def empty(self) -> bool:
        return self.through is None or (self.after is not None and self.through <= self.after)

    def condition(self, column: str = LOADED_AT) -> str:
        """SQL: ``column`` within the range."""
        if self.empty:
            return "false"
        assert self.through is not None
        upper = f"{column} <= {_timestamp(self.through)}"
        return upper if self.after is None else f"{column} > {_timestamp(self.after)} and {upper}"

    def to_dict(self) -> dict[str, Any]:
        return {"after": _iso(self.after), "through": _iso(self.through), "first": self.first}

    def __str__(self) -> str:
        after = _iso(self.after) or "-infinity"
        through = _iso(self.through) or "nothing loaded"
        return f"_loaded_at in ({after}, {through}]"


@dataclass(frozen=True)
class Reconciliation:
    """A rollup's total equals its fact's, in every touched bucket."""

    measure: str  # the rollup's column, e.g. ``requests``
    fact_total: str  # the same total over the fact's rows, e.g. ``count(*)``
    severity: Severity = "block"
    # a query of its own, for a mart that is not bucketed like its fact; ``{batch}`` in it
    # is the batch of touched rows, ``LOADED_IN_RANGE`` the fact rows the range added
    query: str | None = None

    @property
    def mart_total(self) -> str:
        return f"sum({self.measure})"


@dataclass(frozen=True)
class Mart:
    name: str
    module: str  # the module whose data it holds: the history and the summary are per module
    columns: dict[str, tuple[str, ...]]  # column → accepted PostgreSQL types
    key: tuple[str, ...]
    not_null: tuple[str, ...] = ()
    enums: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    sane_maximum: dict[str, float] = field(default_factory=dict)  # above it: a warning
    # a rollup: its fact, the fact's time column, the bucket width, and what must reconcile
    fact: str | None = None
    time_column: str | None = None
    width: str | None = None
    reconciliations: tuple[Reconciliation, ...] = ()
    # the column that selects the rows the builds of a range added; None for a mart that
    # every build rebuilds whole: all of its rows are the last build's
    touched_by: str | None = LOADED_AT

    @property
    def table(self) -> str:
        return f"{SCHEMA}.{self.name}"

    @property
    def stamped(self) -> tuple[str, ...]:
        """The tables whose newest ``_loaded_at`` ends the mart's range: itself, its fact.

        A rollup's range ends at its fact's newest stamp too, so that a bucket holding fact
        rows the rollup never took is reconciled (and found missing).
        """
        tables = [self.table] if self.touched_by is not None else []
        return tuple(tables + ([f"{SCHEMA}.{self.fact}"] if self.fact is not None else []))

    def bucket_of(self, column: str) -> str:
        return f"date_bin(interval '{self.width}', {column}, {BUCKET_ORIGIN})"


def _meta(severity: Severity, rule: str, name: str) -> dict[str, Any]:
    return {"severity": severity, "scope": "batch", "rule": rule, "name": name}


# --- facts: columns, types and rules from the entity they are built from ---------------


def _fact(
    name: str, module: str, entity_name: str, key: str, time_column: str, *columns: str
) -> Mart:
    entity: Entity = MODULES[module].entity(entity_name)
    fields = {f.name: f for f in entity.all_fields}
    money = {m.output for m in entity.money}
    types: dict[str, tuple[str, ...]] = {}
    for column in columns:
        if column in money:
            types[column] = NUMERIC
        elif column in fields:
            types[column] = _TYPE_OF_KIND[fields[column].kind]
    types |= {"_loaded_at": TIMESTAMPTZ}
    ranges: dict[str, tuple[float | None, float | None]] = {
        c: (fields[c].minimum, fields[c].maximum)
        for c in columns
        if c in fields and (fields[c].minimum is not None or fields[c].maximum is not None)
    }
    ranges |= {c: (0, None) for c in columns if c in money}
    return Mart(
        name=name,
        module=module,
        columns=types,
        key=(key,),
        not_null=tuple(
            dict.fromkeys(
                [key, time_column, *(c for c in columns if c in fields and fields[c].required)]
            )
        ),
        enums={c: fields[c].values for c in columns if c in fields and fields[c].kind is Kind.ENUM},
        ranges=ranges,
        sane_maximum={c: SANE_MAXIMUM[c] for c in columns if c in SANE_MAXIMUM},
        time_column=time_column,
    )


_ENVELOPE = ("event_id", "event_time", "ingested_at", "environment")

FACTS: tuple[Mart, ...] = (
    _fact(
        "fct_requests",
        "observatory",
        "metrics",
        "event_id",
        "event_time",
        *_ENVELOPE,
        "request_id",
        "model_id",
        "asset_id",
        "region",
        "service",
        "latency_ms",
        "ttft_ms",
        "input_tokens",
        "output_tokens",
        "status",
        "error_code",
        "response_bytes",
    ),
    _fact(
        "fct_violations",
        "policy",
        "violations",
        "event_id",
        "event_time",
        *_ENVELOPE,
        "violation_id",
        "policy_id",
        "asset_id",
        "violation_severity",
        "violation_type",
        "user_id",
    ),
    _fact(
        "fct_evaluations",
        "policy",
        "evaluations",
        "event_id",
        "event_time",
        *_ENVELOPE,
        "event_type",
        "evaluation_id",
        "policy_id",
        "asset_id",
        "result",
        "duration_ms",
    ),
    _fact(
        "fct_policy_audit",
        "policy",
        "audit",
        "event_id",
        "event_time",
        *_ENVELOPE,
        "event_type",
        "audit_id",
        "policy_id",
        "action",
        "actor_id",
        "resource",
    ),
    _fact(
        "fct_security_events",
        "sentinel",
        "security_events",
        "event_id",
        "event_time",
        *_ENVELOPE,
        "event_type",
        "threat_id",
        "security_type",
        "threat_type",
        "threat_level",
        "severity_score",
        "mitigation_status",
        "asset_id",
        "source_ip",
        "user_id",
    ),
    _fact(
        "fct_cost_records",
        "costops",
        "cost_records",
        "cost_record_id",
        "usage_start",
        "cost_record_id",
        "record_version",
        "event_id",
        "event_time",
        "ingested_at",
        "account_id",
        "asset_id",
        "model_id",
        "usage_start",
        "usage_end",
        "input_tokens",
        "output_tokens",
        "cost",
        "cost_unit",
        "cost_usd",
    ),
    _fact(
        "fct_registry_events",
        "registry",
        "events",
        "event_id",
        "event_time",
        *_ENVELOPE,
        "event_type",
        "asset_id",
        "version",
        "actor",
    ),
    _fact(
        "fct_marketplace_usage",
        "marketplace",
        "usage",
        "event_id",
        "period_start",
        *_ENVELOPE,
        "period_start",
        "extension_id",
        "invocations",
        "active_tenants",
    ),
    _fact(
        "fct_marketplace_revenue",
        "marketplace",
        "revenue",
        "event_id",
        "period_start",
        *_ENVELOPE,
        "period_start",
        "extension_id",
        "amount",
        "amount_unit",
        "currency",
        "amount_usd",
    ),
)
_FACT = {fact.name: fact for fact in FACTS}


# --- rollups: one definition per dbt rollup macro, hourly and daily ----------------------


def _rollup(
    name: str,
    fact_name: str,
    width: str,
    dimensions: dict[str, tuple[str, ...]],
    measures: dict[str, tuple[str, ...]],
    reconciliations: tuple[Reconciliation, ...],
    *,
    counted: str,
    ranges: dict[str, tuple[float | None, float | None]] | None = None,
    sane_maximum: dict[str, float] | None = None,
) -> Mart:
    fact = _FACT[fact_name]
    assert fact.time_column is not None
    return Mart(
        name=name,
        module=fact.module,
        columns={"bucket": TIMESTAMPTZ} | dimensions | measures | {"_loaded_at": TIMESTAMPTZ},
        key=("bucket", *dimensions),
        not_null=("bucket", *(d for d in dimensions if d in fact.not_null), counted),
        enums={d: v for d, v in fact.enums.items() if d in dimensions},
        ranges={counted: (1, None)}
        | {m: (0, None) for m in measures if m != counted}
        | (ranges or {}),
        sane_maximum=sane_maximum or {},
        fact=fact_name,
        time_column=fact.time_column,
        width=width,
        reconciliations=reconciliations,
    )


def _rollups(width: str, suffix: str) -> tuple[Mart, ...]:
    latency = {f"latency_{p}_ms": FLOAT for p in ("p50", "p95", "p99")}
    return (
        _rollup(
            f"agg_model_latency_{suffix}",
            "fct_requests",
            width,
            {"model_id": TEXT, "asset_id": TEXT, "environment": TEXT},
            {
                "requests": BIGINT,
                "errors": BIGINT,
                "error_rate": NUMERIC,
                **latency,
                "latency_ms_sum": NUMERIC,
                "input_tokens": NUMERIC,
                "output_tokens": NUMERIC,
                "response_bytes": NUMERIC,
            },
            (
                Reconciliation("requests", "count(*)"),
                Reconciliation("errors", "count(*) filter (where status = 'error')"),
                Reconciliation("input_tokens", "sum(input_tokens)", "warn"),
                Reconciliation("output_tokens", "sum(output_tokens)", "warn"),
            ),
            counted="requests",
            ranges={"error_rate": (0, 1)},
            sane_maximum={
                f"latency_{p}_ms": SANE_MAXIMUM["latency_ms"] for p in ("p50", "p95", "p99")
            },
        ),
        _rollup(
            f"agg_costs_{suffix}",
            "fct_cost_records",
            width,
            {"account_id": TEXT, "asset_id": TEXT, "model_id": TEXT},
            {
                "cost_records": BIGINT,
                "cost_usd": NUMERIC,
                "input_tokens": NUMERIC,
                "output_tokens": NUMERIC,
                "cost_usd_per_1k_tokens": NUMERIC,
            },
            (
                Reconciliation("cost_records", "count(*)"),
                Reconciliation("cost_usd", "sum(cost_usd)"),
                Reconciliation("input_tokens", "sum(input_tokens)", "warn"),
                Reconciliation("output_tokens", "sum(output_tokens)", "warn"),
            ),
            counted="cost_records",
        ),
        _rollup(
            f"agg_violations_{suffix}",
            "fct_violations",
            width,
            {"policy_id": TEXT, "violation_type": TEXT, "violation_severity": TEXT},
            {"violations": BIGINT},
            (Reconciliation("violations", "count(*)"),),
            counted="violations",
        ),
        _rollup(
            f"agg_compliance_{suffix}",
            "fct_evaluations",
            width,
            {"policy_id": TEXT},
            {
                "evaluations": BIGINT,
                "compliant": BIGINT,
                "non_compliant": BIGINT,
                "compliance_rate": NUMERIC,
            },
            (
                Reconciliation("evaluations", "count(*)"),
                Reconciliation("compliant", "count(*) filter (where result = 'compliant')"),
            ),
            counted="evaluations",
            ranges={"compliance_rate": (0, 1)},
        ),
        _rollup(
            f"agg_threats_{suffix}",
            "fct_security_events",
            width,
            {"threat_type": TEXT, "threat_level": TEXT, "mitigation_status": TEXT},
            {"security_events": BIGINT, "mean_severity_score": NUMERIC},
            (Reconciliation("security_events", "count(*)"),),
            counted="security_events",
            ranges={"mean_severity_score": (0, 10)},
        ),
        _rollup(
            f"agg_marketplace_usage_{suffix}",
            "fct_marketplace_usage",
            width,
            {"extension_id": TEXT},
            {
                "usage_reports": BIGINT,
                "invocations": NUMERIC,
                "active_tenant_hours": NUMERIC,
                "peak_active_tenants": BIGINT,
            },
            (
                Reconciliation("usage_reports", "count(*)"),
                Reconciliation("invocations", "sum(invocations)"),
            ),
            counted="usage_reports",
        ),
        _rollup(
            f"agg_marketplace_revenue_{suffix}",
            "fct_marketplace_revenue",
            width,
            {"extension_id": TEXT},
            {"revenue_records": BIGINT, "revenue_usd": NUMERIC},
            (
                Reconciliation("revenue_records", "count(*)"),
                Reconciliation("revenue_usd", "sum(amount_usd)"),
            ),
            counted="revenue_records",
        ),
    )


ROLLUPS: tuple[Mart, ...] = (
    *_rollups("1 hour", "hourly"),
    *_rollups("1 day", "daily"),
    _rollup(
        "agg_registry_events_daily",
        "fct_registry_events",
        "1 day",
        {"event_type": TEXT},
        {"events": BIGINT},
        (Reconciliation("events", "count(*)"),),
        counted="events",
    ),
)

# Rebuilt whole at each build from agg_costs_daily and the budgets, and small (a row per
# budget and month): every run checks all of it. Its spend must be the fact's, per account
# and month, in the months holding cost records loaded in the range: only those changed,
# and the months the fact's retention dropped (the rollups outlive it) cannot reconcile.
BUDGET_BURN = Mart(
    name="agg_budget_burn_monthly",
    module="costops",
    columns={
        "budget_id": TEXT,
        "account_id": TEXT,
        "period_start": TIMESTAMPTZ,
        "period_end": TIMESTAMPTZ,
        "limit_amount": FLOAT,
        "currency": TEXT,
        "limit_usd": NUMERIC,
        "alert_threshold_percent": FLOAT,
        "budget_updated_at": TIMESTAMPTZ,
        "spend_usd": NUMERIC,
        "spend_through": TIMESTAMPTZ,
        "remaining_usd": NUMERIC,
        "burn_percent": NUMERIC,
        "is_alert": ("BOOLEAN",),
        "is_over_budget": ("BOOLEAN",),
    },
    key=("budget_id", "period_start"),
    not_null=("budget_id", "account_id", "period_start", "period_end", "limit_usd"),
    enums={
        "currency": next(
            f.values for f in MODULES["costops"].entity("budgets").fields if f.name == "currency"
        )
    },
    ranges={
        "limit_amount": (0, None),
        "limit_usd": (0, None),
        "alert_threshold_percent": (0, 100),
        "spend_usd": (0, None),
        "burn_percent": (0, None),
    },
    fact="fct_cost_records",
    reconciliations=(
        Reconciliation(
            "spend_usd",
            "sum(cost_usd)",
            query=f"""
with touched_months as (
    select distinct account_id, date_trunc('month', usage_start, 'UTC') as period_start
    from {SCHEMA}.fct_cost_records
    where {LOADED_IN_RANGE}
),
checked as (
    select budget_id, account_id, period_start, period_end, spend_usd from {{batch}} as {RECENT}
    where (account_id, period_start) in (select account_id, period_start from touched_months)
),
fact_totals as (
    select months.account_id, months.period_start, sum(facts.cost_usd) as total
    from (select distinct account_id, period_start, period_end from checked) as months
    join {SCHEMA}.fct_cost_records as facts
        on facts.account_id = months.account_id
        and facts.usage_start >= months.period_start
        and facts.usage_start < months.period_end
    group by 1, 2
)
select
    checked.budget_id,
    checked.period_start,
    checked.spend_usd as mart_total,
    fact_totals.total as fact_total
from checked
left join fact_totals
    on fact_totals.account_id = checked.account_id
    and fact_totals.period_start = checked.period_start
where coalesce(checked.spend_usd, 0) <> coalesce(fact_totals.total, 0)
order by 1, 2
""".strip(),
        ),
    ),
    touched_by=None,
)

MARTS: dict[str, Mart] = {mart.name: mart for mart in (*FACTS, *ROLLUPS, BUDGET_BURN)}


# --- the suites ---------------------------------------------------------------------------


def suite_name(mart: Mart, *, schema: bool = False) -> str:
    return f"mart.{mart.name}.schema" if schema else f"mart.{mart.name}"


def schema_suite(mart: Mart) -> gx.ExpectationSuite:
    """Columns and types, from the catalog: a mart the feeds read must not drift."""
    found: list[gxe.Expectation] = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=list(mart.columns),
            exact_match=False,
            meta=_meta("block", "schema drift: the mart's columns", "columns"),
        )
    ]
    found += [
        gxe.ExpectColumnValuesToBeInTypeList(
            column=column,
            type_list=list(types),
            meta=_meta("block", "schema drift: the column's type", f"type:{column}"),
        )
        for column, types in mart.columns.items()
    ]
    return gx.ExpectationSuite(
        name=suite_name(mart, schema=True),
        expectations=found,
        meta={"mart": mart.name, "module": mart.module, "gate": "mart"},
    )


def reconciliation_name(mart: Mart, rec: Reconciliation) -> str:
    return f"reconcile:{mart.name}.{rec.measure}={mart.fact}.{rec.fact_total}"


def reconciliation_query(mart: Mart, rec: Reconciliation, loaded: LoadedRange) -> str:
    """The buckets touched by the range's builds where the totals differ.

    A bucket is touched when the rollup recomputed it (its ``_loaded_at`` is in the range)
    or when the fact has rows loaded in the range: a bucket the rollup missed shows up with
    no mart total.
    """
    if rec.query is not None:
        return rec.query.replace(LOADED_IN_RANGE, loaded.condition())
    assert mart.fact is not None and mart.time_column is not None
    fact = f"{SCHEMA}.{mart.fact}"
    bucket = mart.bucket_of(mart.time_column)
    return f"""
with touched as (
    select distinct bucket from {{batch}} as {RECENT}
    union
    select distinct {bucket} from {fact} where {loaded.condition()}
),
mart_totals as (
    select bucket, {rec.mart_total} as total
    from {mart.table}
    where bucket in (select bucket from touched)
    group by bucket
),
fact_totals as (
    select {bucket} as bucket, {rec.fact_total} as total
    from {fact}
    where {mart.time_column} >= (select min(bucket) from touched)
        and {bucket} in (select bucket from touched)
    group by 1
)
select
    coalesce(mart_totals.bucket, fact_totals.bucket) as bucket,
    mart_totals.total as mart_total,
    fact_totals.total as fact_total
from mart_totals full join fact_totals on mart_totals.bucket = fact_totals.bucket
where mart_totals.total is distinct from fact_totals.total
order by 1
""".strip()


def rows_suite(mart: Mart, loaded: LoadedRange) -> gx.ExpectationSuite:
    """Keys, enums, ranges and reconciliation over the rows the range's builds added."""
    found: list[gxe.Expectation] = [
        gxe.ExpectColumnValuesToNotBeNull(
            column=column, meta=_meta("block", "a key or required field", f"not_null:{column}")
        )
        for column in mart.not_null
    ]
    if len(mart.key) == 1:
        found.append(
            gxe.ExpectColumnValuesToBeUnique(
                column=mart.key[0], meta=_meta("block", "the key is unique", "unique_key")
            )
        )
    else:
        found.append(
            gxe.ExpectCompoundColumnsToBeUnique(
                column_list=list(mart.key),
                meta=_meta("block", "the key is unique", "unique_key"),
            )
        )
    found += [
        gxe.ExpectColumnValuesToBeInSet(
            column=column,
            value_set=list(values),
            meta=_meta("block", "an accepted value of the contract", f"accepted:{column}"),
        )
        for column, values in mart.enums.items()
    ]
    found += [
        gxe.ExpectColumnValuesToBeBetween(
            column=column,
            min_value=low,
            max_value=high,
            meta=_meta("block", "the contract's range", f"range:{column}"),
        )
        for column, (low, high) in mart.ranges.items()
    ]
    found += [
        gxe.ExpectColumnValuesToBeBetween(
            column=column,
            max_value=high,
            meta=_meta("warn", "a plausible value", f"plausible:{column}"),
        )
        for column, high in mart.sane_maximum.items()
    ]
    found += [
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=reconciliation_query(mart, rec, loaded),
            description=f"sum({rec.measure}) of {mart.name} = {rec.fact_total} of {mart.fact}, "
            "per touched bucket",
            meta=_meta(rec.severity, "mart totals = fact totals", reconciliation_name(mart, rec)),
        )
        for rec in mart.reconciliations
    ]
    return gx.ExpectationSuite(
        name=suite_name(mart),
        expectations=found,
        meta={"mart": mart.name, "module": mart.module, "gate": "mart"},
    )


def recent_query(mart: Mart, loaded: LoadedRange) -> str:
    """The rows the range's builds added: stamped in it (a rollup's: in a recomputed bucket)."""
    if mart.touched_by is None:
        return f"select * from {mart.table}"
    return f"select * from {mart.table} where {loaded.condition(mart.touched_by)}"


def newest_stamp_query(mart: Mart) -> str:
    """The newest ``_loaded_at`` of the tables that end the mart's range (null: none)."""
    newest = ", ".join(f"(select max({LOADED_AT}) from {table})" for table in mart.stamped)
    return f"select greatest({newest})"
