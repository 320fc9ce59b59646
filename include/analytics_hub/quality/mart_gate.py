"""The mart gate: after dbt, before any feed goes out, validate what the builds touched.

For every mart (``mart_suites``), one checkpoint run validates its schema suite against the
table and its rows suite against the rows loaded since ``since`` (``_loaded_at``), so the
cost follows what the last builds brought, not the size of history. A rollup's totals
are reconciled with its fact's in every touched bucket.

A failed ``warn`` expectation is recorded and logged, and the marts go on; a failed
``block`` expectation (schema drift, a null or duplicate key, a value outside the
contract, totals that do not reconcile) raises ``MartsBlockedError`` naming the
expectation with a sample of rows, after everything was recorded. Results go where the
lake gate's go (``store``): the GX results and Data Docs under the quality root, and one
history row per expectation per mart under ``validations/module=<m>/entity=<mart>/``,
with ``gate`` = ``mart``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import great_expectations as gx
from great_expectations.data_context import AbstractDataContext
from great_expectations.data_context.types.resource_identifiers import (
    ExpectationSuiteIdentifier,
)
from great_expectations.datasource.fluent import PostgresDatasource
from psycopg import conninfo as pg_conninfo
from sqlalchemy.engine import URL

from analytics_hub.quality.config import GateSettings
from analytics_hub.quality.gate import SAMPLE_ROWS, Failure, exception_message
from analytics_hub.quality.mart_suites import (
    MARTS,
    SCHEMA,
    Mart,
    recent_query,
    rows_suite,
    schema_suite,
    suite_name,
)
from analytics_hub.quality.store import DOCS_SITE, QualityStore
from analytics_hub.windows import Window

log = logging.getLogger(__name__)

DATA_SOURCE = "warehouse"
CHECKPOINT = "marts"
BATCH_DEFINITION = "touched"


class MartsBlockedError(RuntimeError):
    """A mart failed a blocking expectation: no feed may read the marts of this build."""


@dataclass
class MartResult:
    mart: str
    module: str
    status: str  # passed | warned | blocked
    rows: int | None = None
    warned: list[Failure] = field(default_factory=list)
    blocked: list[Failure] = field(default_factory=list)


@dataclass
class MartGateResult:
    since: str
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
            "since": self.since,
            "run_id": self.run_id,
            "data_docs": self.data_docs,
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


def _literal(moment: datetime) -> str:
    return f"timestamptz '{moment.astimezone(UTC).isoformat()}'"


def _checkpoint(
    context: AbstractDataContext, conninfo: str, marts: Sequence[Mart], since: datetime
) -> gx.Checkpoint:
    """The checkpoint of this run: each mart's schema and touched rows, on a fresh source.

    The touched rows depend on ``since``, so the query assets (and the validation
    definitions bound to them) are made again at each run, under the same names.
    """
    if DATA_SOURCE in context.data_sources.all():
        context.data_sources.delete(DATA_SOURCE)
    source: PostgresDatasource = context.data_sources.add_postgres(
        DATA_SOURCE, connection_string=sqlalchemy_url(conninfo)
    )
    literal = _literal(since)
    definitions = []
    for mart in marts:
        with warnings.catch_warnings():
            # GX would rather have the schema in the connection string; the query assets
            # name theirs, so one data source serves the tables and the queries alike
            warnings.simplefilter("ignore", DeprecationWarning)
            table = source.add_table_asset(
                f"{mart.name}.table", table_name=mart.name, schema_name=SCHEMA
            )
        touched = source.add_query_asset(mart.name, query=recent_query(mart, literal))
        for batch, suite in (
            (table.add_batch_definition_whole_table(BATCH_DEFINITION), schema_suite(mart)),
            (touched.add_batch_definition_whole_table(BATCH_DEFINITION), rows_suite(mart, literal)),
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
    conninfo: str, mart: Mart, since: datetime, column: str | None, outcome: dict[str, Any]
) -> list[dict[str, Any]]:
    """Up to ``SAMPLE_ROWS`` rows behind a failure: keyed rows of the touched batch."""
    details = outcome.get("details") or {}
    if details.get("unexpected_rows"):  # a reconciliation: the buckets that differ
        rows = list(details["unexpected_rows"])[:SAMPLE_ROWS]
        return [{k: _jsonable(v) for k, v in dict(row).items()} for row in rows]
    values = list(outcome.get("partial_unexpected_list") or [])[:SAMPLE_ROWS]
    if column is None or (not values and not outcome.get("unexpected_count")):
        return [v if isinstance(v, dict) else {"value": _jsonable(v)} for v in values]
    import psycopg
    from psycopg import sql

    columns = list(dict.fromkeys([*mart.key, column]))
    condition = (
        sql.SQL("{} = any(%s)").format(sql.Identifier(column))
        if any(v is not None for v in values)
        else sql.SQL("{} is null").format(sql.Identifier(column))
    )
    query = sql.SQL("select {} from {}.{} where {} >= %s and {} limit {}").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.Identifier(SCHEMA),
        sql.Identifier(mart.name),
        sql.Identifier(mart.touched_by),
        condition,
        sql.Literal(SAMPLE_ROWS),
    )
    params: list[Any] = [since]
    if any(v is not None for v in values):
        params.append([v for v in values if v is not None])
    with psycopg.connect(conninfo) as conn:
        cursor = conn.execute(query, params)
        names = [c.name for c in cursor.description or ()]
        return [{n: _jsonable(v) for n, v in zip(names, row, strict=True)} for row in cursor]


def validate_marts(
    conninfo: str,
    *,
    since: datetime,
    store: QualityStore,
    settings: GateSettings,
    marts: Iterable[str] | None = None,
) -> MartGateResult:
    """Validate the marts' rows loaded since ``since``; raise ``MartsBlockedError`` on a block."""
    chosen = [MARTS[name] for name in (marts if marts is not None else MARTS)]
    validated_at = datetime.now(UTC)
    run_name = f"marts.{validated_at:%Y%m%dT%H%M%S%fZ}"
    context = store.context(settings.data_docs_results_limit)
    checkpoint = _checkpoint(context, conninfo, chosen, since)
    outcome = checkpoint.run(run_id=gx.RunIdentifier(run_name=run_name, run_time=validated_at))
    by_suite = {result.suite_name: result for result in outcome.run_results.values()}
    _build_docs(context, outcome.run_results)

    window = Window(since, max(validated_at, since + timedelta(seconds=1)))
    stamp = f"{validated_at:%Y%m%dT%H%M%S%fZ}"
    results: list[MartResult] = []
    for mart in chosen:
        result = MartResult(mart.name, mart.module, status="passed")
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
                        failure.sample = _sample(
                            conninfo, mart, since, config.kwargs.get("column"), got
                        )
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
        store.record(
            store.history_path(mart.module, mart.name, window, stamp),
            [
                row
                | {
                    "run_id": run_name,
                    "validated_at": validated_at,
                    "gate": "mart",
                    "window_start": window.start,
                    "window_end": window.end,
                    "window_status": result.status,
                    "suite": suite_name(mart),
                }
                for row in history
            ],
        )
        for warning in result.warned:
            log.warning("mart %s: warn: %s", mart.name, warning.describe())
        results.append(result)
    store.publish_docs(since=validated_at - timedelta(seconds=1))

    gate = MartGateResult(since.isoformat(), run_name, store.docs_index, results)
    blocked = [(m.mart, f) for m in results for f in m.blocked]
    if blocked:
        raise MartsBlockedError(
            f"the mart gate blocked the marts touched since {since.isoformat()}: "
            + "; ".join(f"{mart}: {failure.describe()}" for mart, failure in blocked)
            + f". Data Docs: {store.docs_index}"
        )
    return gate


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
