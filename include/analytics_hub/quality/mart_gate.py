"""The mart gate: after dbt, before any feed goes out, validate what the builds added.

For every mart (``mart_suites``: its suites are generated from the dbt manifest, i.e. the
mart's contract and tests), one checkpoint run validates its schema suite against the
table and its rows suite against the rows the builds added since the gate last let the
mart through, so the cost follows what the builds brought, not the size of history, and
a build that runs late (an outage) is checked all the same. A rollup's totals are
reconciled with its fact's in every touched bucket.

What a run checks is a range of load stamps (``_loaded_at``, which the facts keep from
their landing rows and which only grows from one build to the next: see
``warehouse.LOADED_AT``), not a span of the worker's clock. The warehouse table
``hub_meta.mart_gate_watermarks`` holds, per mart, the newest stamp a run let through; a
run checks ``(watermark, newest stamp now]`` (``LoadedRange``) and moves the watermark to
the range's end when the mart passed or only warned. A blocked mart keeps its watermark,
so the next run checks those rows again, with whatever came since. A mart without a
watermark yet (a new warehouse, a new mart, a deleted row) is checked over the
``HUB_QUALITY_MART_WINDOW_HOURS`` before its newest stamp, not over all it holds: a rollup
outlives its fact's rows (retention), so its older buckets cannot reconcile, and history
can be far more than one run should read. A watermark set to null makes the next run
check all of that mart (a run that finds the mart empty leaves it so). Runs exclude each
other (an advisory lock held for the whole run): a second one waits, then starts from the
watermarks the first left.

A rule the database enforces is not checked again: a fact's column rules are constraints of
its contract, and the rows suite checks those its table does not hold, as read from the
catalog at each run (``mart_suites``). A failed ``warn`` expectation is recorded and
logged, and the marts go on; a failed ``block`` expectation (schema drift, a null or
duplicate key, a value outside the contract, totals that do not reconcile) raises
``MartsBlockedError`` naming the expectation with a sample of rows, after everything was
recorded. Results go where the lake gate's go (``store``): the GX results and Data Docs
under the quality root, and one history row per expectation per mart under
``validations/module=<m>/entity=<mart>/``, with ``gate`` = ``mart``, its range in
``window_start`` (exclusive; null: from the first load) and ``window_end`` (inclusive;
null: nothing loaded), partitioned by the run's time.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import great_expectations as gx
import psycopg
from great_expectations.data_context import AbstractDataContext
from great_expectations.data_context.types.resource_identifiers import (
    ExpectationSuiteIdentifier,
)
from great_expectations.datasource.fluent import PostgresDatasource
from psycopg import conninfo as pg_conninfo
from psycopg import sql
from sqlalchemy.engine import URL

from analytics_hub.quality.gate import SAMPLE_ROWS, Failure, exception_message
from analytics_hub.quality.mart_suites import (
    HELD_CONSTRAINTS,
    SCHEMA,
    LoadedRange,
    Mart,
    chosen,
    load_marts,
    manifest_path,
    newest_stamp_query,
    recent_query,
    rows_suite,
    schema_suite,
    suite_name,
)
from analytics_hub.quality.store import DOCS_SITE, QualityStore
from analytics_hub.settings import GateSettings, load_settings
from analytics_hub.windows import Window

log = logging.getLogger(__name__)

DATA_SOURCE = "warehouse"
CHECKPOINT = "marts"
BATCH_DEFINITION = "touched"
WATERMARK_SCHEMA = "hub_meta"
WATERMARKS = f"{WATERMARK_SCHEMA}.mart_gate_watermarks"
_LOCK_KEY = "analytics_hub.quality.mart_gate"


class MartsBlockedError(RuntimeError):
    """A mart failed a blocking expectation: no feed may read the marts of this build."""

    def __init__(self, message: str, result: MartGateResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class MartResult:
    mart: str
    module: str
    status: str  # passed | warned | blocked
    loaded: LoadedRange  # the load stamps whose rows were checked
    rows: int | None = None
    warned: list[Failure] = field(default_factory=list)
    blocked: list[Failure] = field(default_factory=list)


@dataclass
class MartGateResult:
    run_id: str
    data_docs: str
    marts: list[MartResult]

    @property
    def status(self) -> str:
        statuses = {m.status for m in self.marts}
        return next((s for s in ("blocked", "warned") if s in statuses), "passed")

    def summary(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "run_id": self.run_id,
            "data_docs": self.data_docs,
            "checked": {
                m.mart: m.loaded.to_dict() | {"rows": m.rows, "status": m.status}
                for m in self.marts
            },
            "warned": {m.mart: [f.expectation for f in m.warned] for m in self.marts if m.warned},
            "blocked": {
                m.mart: [f.expectation for f in m.blocked] for m in self.marts if m.blocked
            },
        }


def sqlalchemy_url(conninfo: str) -> str:
    """A libpq connection string or URL as the SQLAlchemy URL GX wants (psycopg 3 driver)."""
    parts = pg_conninfo.conninfo_to_dict(conninfo)
    port = parts.get("port")
    return URL.create(
        "postgresql+psycopg",
        username=str(parts["user"]) if parts.get("user") else None,
        password=str(parts["password"]) if parts.get("password") else None,
        host=str(parts.get("host") or "localhost"),
        port=int(str(port)) if port else None,
        database=str(parts["dbname"]) if parts.get("dbname") else None,
    ).render_as_string(hide_password=False)


@contextmanager
def _one_run_at_a_time(conninfo: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection holding the gate's lock for the whole run, watermarks read to written.

    A session lock, not a transaction's: the run spends minutes in GX between the two, and
    an open transaction would be idle that long. It goes with the connection, so a worker
    that dies mid-run releases it without moving any watermark.
    """
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(hashtextextended(%s, 0))", (_LOCK_KEY,))
        conn.execute(f"create schema if not exists {WATERMARK_SCHEMA}")
        conn.execute(
            f"""
            create table if not exists {WATERMARKS} (
                mart text primary key,
                loaded_through timestamptz,
                loaded_after timestamptz,
                status text not null,
                run_id text not null,
                validated_at timestamptz not null
            )
            """
        )
        yield conn


def _loaded_ranges(
    conn: psycopg.Connection[Any], marts: Sequence[Mart], first_range: timedelta
) -> dict[str, LoadedRange]:
    """Each mart's range: from its watermark to the newest stamp of its tables, read now."""
    cursor = conn.execute(
        f"select mart, loaded_through from {WATERMARKS} where mart = any(%s)",
        ([mart.name for mart in marts],),
    )
    watermarks: dict[str, datetime | None] = dict(cursor.fetchall())
    ranges = {}
    for mart in marts:
        row = conn.execute(newest_stamp_query(mart)).fetchone()
        through: datetime | None = row[0] if row else None
        if mart.name in watermarks:
            ranges[mart.name] = LoadedRange(watermarks[mart.name], through)
        else:
            after = None if through is None else through - first_range
            ranges[mart.name] = LoadedRange(after, through, first=True)
    return ranges


def _advance(
    conn: psycopg.Connection[Any], results: Sequence[MartResult], run_id: str, at: datetime
) -> None:
    """Move the watermark of each mart that passed or only warned to its range's end."""
    rows = []
    for result in results:
        if result.status == "blocked":
            continue
        loaded = result.loaded
        # never back: a range may end before it starts, when rows were deleted since
        ends = [moment for moment in (loaded.after, loaded.through) if moment is not None]
        through = max(ends, default=None)  # None: the mart was empty, every row is new
        rows.append((result.mart, through, loaded.after, result.status, run_id, at))
    with conn.transaction(), conn.cursor() as cursor:
        cursor.executemany(
            f"""
            insert into {WATERMARKS}
                (mart, loaded_through, loaded_after, status, run_id, validated_at)
            values (%s, %s, %s, %s, %s, %s)
            on conflict (mart) do update set
                loaded_through = excluded.loaded_through,
                loaded_after = excluded.loaded_after,
                status = excluded.status,
                run_id = excluded.run_id,
                validated_at = excluded.validated_at
            """,
            rows,
        )


def _held_constraints(
    conn: psycopg.Connection[Any], marts: Sequence[Mart]
) -> dict[str, frozenset[str]]:
    """What each mart's table enforces itself, read from the catalog now: the rows suite
    checks only the contract's constraints the table does not hold."""
    rows = conn.execute(HELD_CONSTRAINTS, {"tables": [mart.table for mart in marts]}).fetchall()
    return {
        mart.name: frozenset(held for table, held in rows if table == mart.table) for mart in marts
    }


def _checkpoint(
    context: AbstractDataContext,
    conninfo: str,
    marts: Sequence[Mart],
    ranges: dict[str, LoadedRange],
    held: dict[str, frozenset[str]],
) -> gx.Checkpoint:
    """The checkpoint of this run: each mart's schema and range's rows, on a fresh source.

    The rows depend on the range, and their suite on the constraints the table holds, so
    the query assets (and the validation definitions bound to them) are made again at each
    run, under the same names.
    """
    if DATA_SOURCE in context.data_sources.all():
        context.data_sources.delete(DATA_SOURCE)
    source: PostgresDatasource = context.data_sources.add_postgres(
        DATA_SOURCE, connection_string=sqlalchemy_url(conninfo)
    )
    definitions = []
    for mart in marts:
        loaded = ranges[mart.name]
        with warnings.catch_warnings():
            # GX would rather have the schema in the connection string; the query assets
            # name theirs, so one data source serves the tables and the queries alike
            warnings.simplefilter("ignore", DeprecationWarning)
            table = source.add_table_asset(
                f"{mart.name}.table", table_name=mart.name, schema_name=SCHEMA
            )
        touched = source.add_query_asset(mart.name, query=recent_query(mart, loaded))
        for batch, suite in (
            (table.add_batch_definition_whole_table(BATCH_DEFINITION), schema_suite(mart)),
            (
                touched.add_batch_definition_whole_table(BATCH_DEFINITION),
                rows_suite(mart, loaded, held[mart.name]),
            ),
        ):
            definitions.append(
                context.validation_definitions.add_or_update(
                    gx.ValidationDefinition(
                        name=suite.name, data=batch, suite=context.suites.add_or_update(suite)
                    )
                )
            )
    return context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=CHECKPOINT,
            validation_definitions=definitions,
            # no UpdateDataDocsAction: it rebuilds the index once per validation; the
            # pages of a run are built together after it (``_build_docs``)
            result_format={"result_format": "COMPLETE", "partial_unexpected_count": SAMPLE_ROWS},
        )
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _sample(
    conn: psycopg.Connection[Any],
    mart: Mart,
    loaded: LoadedRange,
    column: str | None,
    outcome: dict[str, Any],
) -> list[dict[str, Any]]:
    """Up to ``SAMPLE_ROWS`` rows behind a failure: keyed rows of the checked batch."""
    details = outcome.get("details") or {}
    if details.get("unexpected_rows"):  # a reconciliation: the buckets that differ
        rows = list(details["unexpected_rows"])[:SAMPLE_ROWS]
        return [{k: _jsonable(v) for k, v in dict(row).items()} for row in rows]
    values = list(outcome.get("partial_unexpected_list") or [])[:SAMPLE_ROWS]
    if column is None or (not values and not outcome.get("unexpected_count")):
        return [v if isinstance(v, dict) else {"value": _jsonable(v)} for v in values]
    columns = list(dict.fromkeys([*mart.key, column]))
    condition = (
        sql.SQL("{} = any(%s)").format(sql.Identifier(column))
        if any(v is not None for v in values)
        else sql.SQL("{} is null").format(sql.Identifier(column))
    )
    in_range = sql.SQL(loaded.condition(mart.touched_by) if mart.touched_by else "true")
    query = sql.SQL("select {} from {}.{} where {} and {} limit {}").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.Identifier(SCHEMA),
        sql.Identifier(mart.name),
        in_range,
        condition,
        sql.Literal(SAMPLE_ROWS),
    )
    params: list[Any] = []
    if any(v is not None for v in values):
        params.append([v for v in values if v is not None])
    cursor = conn.execute(query, params)
    names = [c.name for c in cursor.description or ()]
    return [{n: _jsonable(v) for n, v in zip(names, row, strict=True)} for row in cursor]


def validate_marts(
    conninfo: str,
    *,
    store: QualityStore,
    settings: GateSettings,
    marts: Iterable[str] | None = None,
    manifest: Path | None = None,
) -> MartGateResult:
    """Validate the rows the builds added since each mart's watermark; advance what passed.

    The marts and their suites come from the dbt project's compiled ``manifest`` (by
    default ``HUB_DBT_PROJECT_DIR``'s ``target/manifest.json``); ``marts`` names some of
    them (all by default). Raises ``MartsBlockedError`` (carrying the result) when a mart
    failed a blocking expectation, after everything was recorded and the other marts'
    watermarks moved.
    """
    declared = load_marts(manifest or manifest_path(load_settings()))
    checked = chosen(declared, marts)
    with _one_run_at_a_time(conninfo) as conn:
        ranges = _loaded_ranges(conn, checked, timedelta(hours=settings.mart_window_hours))
        held = _held_constraints(conn, checked)
        validated_at = datetime.now(UTC)
        run_name = f"marts.{validated_at:%Y%m%dT%H%M%S%fZ}"
        context = store.context(settings.data_docs_results_limit)
        checkpoint = _checkpoint(context, conninfo, checked, ranges, held)
        outcome = checkpoint.run(run_id=gx.RunIdentifier(run_name=run_name, run_time=validated_at))
        by_suite = {result.suite_name: result for result in outcome.run_results.values()}
        _build_docs(context, outcome.run_results)
        results = [
            _record(conn, store, mart, ranges[mart.name], by_suite, run_name, validated_at)
            for mart in checked
        ]
        store.publish_docs(since=validated_at - timedelta(seconds=1))
        _advance(conn, results, run_name, validated_at)

    gate = MartGateResult(run_name, store.docs_index, results)
    blocked = [m for m in results if m.blocked]
    if blocked:
        raise MartsBlockedError(
            "the mart gate blocked the marts: "
            + "; ".join(f"{m.mart}: {failure.describe()}" for m in blocked for failure in m.blocked)
            + ". Checked: "
            + "; ".join(f"{m.mart} {m.loaded}" for m in blocked)
            + "; their watermarks stay, so the next run checks these rows again."
            + f" Data Docs: {store.docs_index}",
            gate,
        )
    return gate


def _record(
    conn: psycopg.Connection[Any],
    store: QualityStore,
    mart: Mart,
    loaded: LoadedRange,
    by_suite: dict[str, Any],
    run_name: str,
    validated_at: datetime,
) -> MartResult:
    """One mart's outcome, from its two suites' results, written to the history."""
    result = MartResult(mart.name, mart.module, "passed", loaded)
    history: list[dict[str, Any]] = []
    for suite in (suite_name(mart, schema=True), suite_name(mart)):
        validation = by_suite[suite]
        if suite == suite_name(mart):
            result.rows = _row_count(validation)
        for run in validation.results:
            config = run.expectation_config
            assert config is not None  # a suite's result always names its expectation
            meta = config.meta or {}
            name = str(meta.get("name", config.type))
            severity = str(meta.get("severity", "block"))
            error = exception_message(run.exception_info)
            got: dict[str, Any] = run.result or {}
            observed = got.get("observed_value")
            failure = Failure(
                name,
                severity,
                "batch",
                unexpected_count=got.get("unexpected_count"),
                observed=error or (None if observed is None else str(observed)),
            )
            action = "none"
            if not run.success:
                action = "warned" if severity == "warn" else "blocked"
                if error is None:
                    failure.sample = _sample(conn, mart, loaded, config.kwargs.get("column"), got)
                (result.warned if severity == "warn" else result.blocked).append(failure)
            history.append(
                {
                    "expectation": name,
                    "expectation_type": config.type,
                    "severity": severity,
                    "scope": "batch",
                    "success": bool(run.success),
                    "unexpected_count": got.get("unexpected_count"),
                    "unexpected_percent": got.get("unexpected_percent"),
                    "observed_value": failure.observed,
                    "exception": error,
                    "action": action,
                }
            )
    if result.blocked:
        result.status = "blocked"
    elif result.warned:
        result.status = "warned"
    # filed under the run's time: a range may be open-ended or empty
    filed_under = Window(validated_at, validated_at + timedelta(seconds=1))
    store.record(
        store.history_path(mart.module, mart.name, filed_under, f"{validated_at:%Y%m%dT%H%M%S%fZ}"),
        [
            row
            | {
                "run_id": run_name,
                "validated_at": validated_at,
                "gate": "mart",
                "window_start": loaded.after,
                "window_end": loaded.through,
                "window_status": result.status,
                "suite": suite_name(mart),
            }
            for row in history
        ],
    )
    for warning in result.warned:
        log.warning("mart %s: warn: %s", mart.name, warning.describe())
    return result


def _build_docs(context: AbstractDataContext, run_results: dict[Any, Any]) -> None:
    """The Data Docs pages of this run's results and suites, and the index, once."""
    identifiers: list[Any] = list(run_results)
    identifiers += [ExpectationSuiteIdentifier(name=r.suite_name) for r in run_results.values()]
    context.build_data_docs(
        site_names=[DOCS_SITE], resource_identifiers=identifiers, build_index=True
    )


def _row_count(validation: Any) -> int | None:
    for run in validation.results:
        count = (run.result or {}).get("element_count")
        if isinstance(count, int):
            return count
    return None
