"""The lake gate of one window: audit a staged version, quarantine, block or publish.

Write-audit-publish: ingest (or replay) has staged a version of the window
(``Lake.staged_path``); this audits it with the entity's GX suite and publishes it over
the current version only if it passed, warned or had rows quarantined (then its Asset
event goes out and the warehouse may load it). A blocked version changes nothing the
lake had and stays staged, for inspection. For a failed expectation:

- ``warn``: recorded in the history and the Data Docs, logged; the window goes on;
- ``block`` on rows: those rows move to the dead-letter zone with the reason
  ``expectation:<name>``, the staged normalized object is rewritten without them and its
  manifest recounted, so pulled = landed + dead-lettered + deduplicated still holds;
- ``block`` on the batch (schema drift, balance, volume collapse), or blocking row
  failures on more than ``max_bad_row_share`` of the rows: nothing is changed, and
  ``WindowBlockedError`` names the failed expectations with a sample of rows.

The manifest the gate leaves keeps its verdict and each object's SHA-256, which the
warehouse load checks before it loads anything. Re-running the gate on a version is safe:
quarantined rows are no longer in its normalized object, dead letters it already wrote are
not written twice, and publishing resumes where an interrupted one stopped.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import great_expectations as gx
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from analytics_hub.ingest import deadletter_schema, normalized_schema
from analytics_hub.lake import APPROVED, PUBLISH_ORDER, Lake, Zone
from analytics_hub.normalize import UTC_TS
from analytics_hub.quality.history import fresh_after, volume_band
from analytics_hub.quality.store import QualityStore
from analytics_hub.quality.suites import expectation_name, pandas_frame
from analytics_hub.settings import GateSettings
from analytics_hub.sources import Entity, Module
from analytics_hub.windows import Window

log = logging.getLogger(__name__)

SAMPLE_ROWS = 5
REASON_PREFIX = "expectation:"


# Blocks that a later pull of the same window may not repeat: an upstream that had not
# delivered yet, or a page that broke the pull. Every other block is in the data itself
# and would fail the same way.
TRANSIENT_BLOCKS = frozenset({"volume_collapse", "bad_page"})


class WindowBlockedError(RuntimeError):
    """The window failed a batch-level expectation: nothing downstream of it may run."""

    def __init__(self, message: str, expectations: tuple[str, ...] = ()):
        super().__init__(message)
        self.expectations = expectations

    @property
    def transient(self) -> bool:
        """Whether pulling the window again may lift the block."""
        return bool(self.expectations) and TRANSIENT_BLOCKS.issuperset(self.expectations)


@dataclass
class Failure:
    expectation: str
    severity: str
    scope: str
    unexpected_count: int | None = None
    observed: str | None = None
    sample: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        detail = f"observed {self.observed}" if self.observed is not None else ""
        if self.unexpected_count is not None:
            detail = f"{self.unexpected_count} unexpected rows"
        sample = f"; sample: {self.sample}" if self.sample else ""
        return f"{self.expectation} ({detail}){sample}"


@dataclass
class GateResult:
    module: str
    entity: str
    window_start: str
    window_end: str
    status: str  # passed | warned | quarantined | blocked
    rows: int
    quarantined: int = 0
    warned: list[Failure] = field(default_factory=list)
    blocked: list[Failure] = field(default_factory=list)
    quarantined_by: dict[str, int] = field(default_factory=dict)
    run_id: str = ""
    data_docs: str = ""

    def summary(self) -> dict[str, Any]:
        """What the manifest keeps: no timings, so a re-run leaves the same manifest."""
        return {
            "status": self.status,
            "rows": self.rows,
            "quarantined": self.quarantined,
            "quarantined_by": self.quarantined_by,
            "warned": [f.expectation for f in self.warned],
            "blocked": [f.expectation for f in self.blocked],
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def window_parameters(
    lake: Lake,
    module: Module,
    entity: Entity,
    window: Window,
    settings: GateSettings,
    *,
    balanced_rows: int,
) -> dict[str, Any]:
    """The suite parameters of one window (see ``suites``)."""
    band = volume_band(lake, module, entity, window, settings)
    skew = timedelta(minutes=settings.clock_skew_minutes)
    late = timedelta(hours=settings.late_allowance_hours)
    return {
        "window_start": pd.Timestamp(window.start),
        "window_end": pd.Timestamp(window.end),
        "latest_time": pd.Timestamp(window.end + skew),
        "earliest_event_time": pd.Timestamp(window.start - late),
        "fresh_after": pd.Timestamp(fresh_after(module, window, settings)),
        "balanced_rows": balanced_rows,
        "volume_min": band.block_below,
        "volume_warn_min": band.warn_below,
        "volume_max": band.maximum,
    }


def exception_message(info: dict[str, Any] | None) -> str | None:
    """The exception message of a result that could not be computed, if any."""
    if not info:
        return None
    if "raised_exception" in info:
        return str(info.get("exception_message")) if info["raised_exception"] else None
    for value in info.values():  # keyed by metric when several were computed
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


def _read(lake: Lake, path: str, schema: pa.Schema) -> pa.Table:
    return pq.read_table(path, filesystem=lake.fs) if lake.exists(path) else schema.empty_table()


def validate_window(
    module: Module,
    entity: Entity,
    window: Window,
    *,
    lake: Lake,
    store: QualityStore,
    settings: GateSettings,
    version: str | None = None,
) -> GateResult:
    """Audit a staged version of one window (by default its newest) and publish it, or
    raise ``WindowBlockedError`` and leave the lake's current version as it was."""
    validated_at = datetime.now(UTC)
    if version is None:
        staged = lake.staged_versions(module.name, entity.name, window)
        if not staged:
            raise WindowBlockedError(
                f"{module.name}/{entity.name} {window}: no staged version, the window never landed"
            )
        version = staged[-1]
    paths = {
        zone: lake.staged_path(zone, module.name, entity.name, window, version) for zone in Zone
    }
    current = lake.path(Zone.MANIFESTS, module.name, entity.name, window)
    if not lake.exists(paths[Zone.MANIFESTS]):
        if lake.exists(current) and lake.read_json(current).get("version") == version:
            paths[Zone.MANIFESTS] = current  # published already: its verdict stands
        else:
            raise WindowBlockedError(
                f"{module.name}/{entity.name} {window}: no staged version {version!r} "
                "with a manifest"
            )
    manifest = lake.read_json(paths[Zone.MANIFESTS])
    if manifest.get("bad_pages"):
        _block_incomplete(lake, paths, manifest, window)
    verdict = manifest.get("quality") or {}
    if verdict.get("status") in APPROVED and manifest.get("checksums"):
        # audited and approved, its publish interrupted (or done): finish it, never audit
        # what is left of a half-moved version
        lake.publish(module.name, entity.name, window, version)
        bounds = window.query()
        return GateResult(
            module.name,
            entity.name,
            bounds["from"],
            bounds["to"],
            status=verdict["status"],
            rows=verdict["rows"],
            quarantined=verdict.get("quarantined", 0),
            quarantined_by=verdict.get("quarantined_by", {}),
            run_id=f"{module.name}.{entity.name}.{window.id}.{version}",
            data_docs=store.docs_index,
        )
    table = _read(lake, paths[Zone.NORMALIZED], normalized_schema(entity))
    dead = _read(lake, paths[Zone.DEADLETTER], deadletter_schema())
    frame = pandas_frame(table)
    balanced_rows = manifest["pulled"] - manifest["deduplicated"] - dead.num_rows
    parameters = window_parameters(
        lake, module, entity, window, settings, balanced_rows=balanced_rows
    )
    run_name = f"{module.name}.{entity.name}.{window.id}.{version}"
    checkpoint = store.checkpoint(module.name, entity.name, settings.data_docs_results_limit)
    outcome = checkpoint.run(
        batch_parameters={"dataframe": frame},
        expectation_parameters=parameters,
        run_id=gx.RunIdentifier(run_name=run_name, run_time=validated_at),
    )
    (validation,) = outcome.run_results.values()

    result = GateResult(
        module.name,
        entity.name,
        window.query()["from"],
        window.query()["to"],
        status="passed",
        rows=len(frame),
        run_id=run_name,
        data_docs=store.docs_index,
    )
    bad_rows: dict[int, list[str]] = {}
    history: list[dict[str, Any]] = []
    for run in validation.results:
        config = run.expectation_config
        assert config is not None  # a suite's result always names its expectation
        meta = config.meta or {}
        name = expectation_name(config.type, config.kwargs, meta)
        severity, scope = meta.get("severity", "block"), meta.get("scope", "batch")
        error = exception_message(run.exception_info)
        outcome_of: dict[str, Any] = run.result or {}
        failure = Failure(
            name,
            severity,
            scope,
            unexpected_count=outcome_of.get("unexpected_count"),
            observed=None
            if "observed_value" not in outcome_of
            else str(outcome_of["observed_value"]),
        )
        action = "none"
        if run.success:
            pass
        elif severity == "warn":
            action = "warned"
            result.warned.append(failure)
        elif scope == "row" and error is None:
            action = "quarantined"
            for index in outcome_of.get("unexpected_index_list") or []:
                bad_rows.setdefault(int(index), []).append(name)
            failure.sample = _sample(table, entity, outcome_of.get("unexpected_index_list"))
        else:
            action = "blocked"
            failure.observed = error or failure.observed
            failure.sample = _sample(table, entity, outcome_of.get("unexpected_index_list"))
            result.blocked.append(failure)
        history.append(
            {
                "expectation": name,
                "expectation_type": config.type,
                "severity": severity,
                "scope": scope,
                "success": bool(run.success),
                "unexpected_count": outcome_of.get("unexpected_count"),
                "unexpected_percent": outcome_of.get("unexpected_percent"),
                "observed_value": failure.observed,
                "exception": error,
                "action": action,
            }
        )

    share = len(bad_rows) / len(frame) if len(frame) else 0.0
    if bad_rows and share > settings.max_bad_row_share:
        result.blocked.append(
            Failure(
                "bad_row_share",
                "block",
                "batch",
                unexpected_count=len(bad_rows),
                observed=f"{share:.2%} of rows > {settings.max_bad_row_share:.2%}",
                sample=_sample(table, entity, sorted(bad_rows), bad_rows),
            )
        )
    if result.blocked:
        result.status = "blocked"
    elif bad_rows:
        result.status = "quarantined"
        _quarantine(lake, paths, table, dead, entity, window, bad_rows, result)
    elif result.warned:
        result.status = "warned"

    manifest = _recount(lake, paths, manifest, result)
    manifest["checksums"] = manifest.get("checksums", {}) | {
        zone.value: lake.checksum(paths[zone]) for zone in PUBLISH_ORDER if lake.exists(paths[zone])
    }
    lake.write_json(paths[Zone.MANIFESTS], manifest)
    stamp = f"{validated_at:%Y%m%dT%H%M%S%fZ}"
    store.record(
        store.history_path(module.name, entity.name, window, stamp),
        [
            row
            | {
                "run_id": run_name,
                "validated_at": validated_at,
                "gate": "lake",
                "window_start": window.start,
                "window_end": window.end,
                "window_status": result.status,
                "suite": validation.suite_name,
            }
            for row in history
        ],
    )
    store.publish_docs(since=validated_at - timedelta(seconds=1))
    for warning in result.warned:
        log.warning("%s/%s %s: warn: %s", module.name, entity.name, window, warning.describe())
    if result.blocked:
        raise WindowBlockedError(
            f"{module.name}/{entity.name} {window} blocked by the lake gate: "
            + "; ".join(f.describe() for f in result.blocked)
            + f". The lake's current version is unchanged; the blocked one stays at "
            f"{lake.uri(paths[Zone.MANIFESTS].rsplit('/', 1)[0])}. Data Docs: {store.docs_index}",
            tuple(f.expectation for f in result.blocked),
        )
    lake.publish(module.name, entity.name, window, version)
    return result


def _block_incomplete(
    lake: Lake, paths: dict[Zone, str], manifest: dict[str, Any], window: Window
) -> None:
    """A version whose pull ended on a bad page is incomplete: never published."""
    causes = ", ".join(f"page {p['page']}: {p['cause']}" for p in manifest["bad_pages"])
    failure = Failure("bad_page", "block", "batch", observed=causes)
    bounds = window.query()
    result = GateResult(
        manifest["module"], manifest["entity"], bounds["from"], bounds["to"], "blocked", 0
    )
    result.blocked.append(failure)
    lake.write_json(paths[Zone.MANIFESTS], manifest | {"quality": result.summary()})
    raise WindowBlockedError(
        f"{manifest['module']}/{manifest['entity']} {window}: the pull ended on a bad page "
        f"({causes}); the lake's current version is unchanged",
        ("bad_page",),
    )


def _sample(
    table: pa.Table,
    entity: Entity,
    indices: list[Any] | None,
    reasons: dict[int, list[str]] | None = None,
) -> list[dict[str, Any]]:
    if not indices:
        return []
    picked = [int(i) for i in indices[:SAMPLE_ROWS]]
    columns = [c for c in (entity.record_id_field, *entity.key) if c in table.column_names]
    rows = table.select(list(dict.fromkeys(columns))).take(picked).to_pylist()
    if reasons is not None:
        for row, index in zip(rows, picked, strict=True):
            row["reasons"] = reasons[index]
    return [{k: str(v) if v is not None else None for k, v in row.items()} for row in rows]


def _quarantine(
    lake: Lake,
    paths: dict[Zone, str],
    table: pa.Table,
    dead: pa.Table,
    entity: Entity,
    window: Window,
    bad_rows: dict[int, list[str]],
    result: GateResult,
) -> None:
    """Move the bad rows to the dead-letter object; rewrite the normalized one without them."""
    rows = pl.from_arrow(table)
    assert isinstance(rows, pl.DataFrame)
    indices = sorted(bad_rows)
    reasons = [[f"{REASON_PREFIX}{name}" for name in sorted(set(bad_rows[i]))] for i in indices]
    canonical = [c for c in rows.columns if not c.startswith("_")]
    quarantined = rows[indices].select(
        pl.lit(window.start).cast(UTC_TS).alias("window_start"),
        pl.lit(window.end).cast(UTC_TS).alias("window_end"),
        pl.lit(None, dtype=pl.Int32).alias("page"),
        pl.lit(None, dtype=pl.Int64).alias("row"),
        pl.col(entity.record_id_field).cast(pl.String).alias("record_id"),
        pl.Series("reason_code", [r[0].rsplit(":", 1)[0] for r in reasons], dtype=pl.String),
        pl.Series("reason", [";".join(r) for r in reasons], dtype=pl.String),
        pl.struct(canonical).struct.json_encode().alias("raw_record"),
    )
    before = pl.from_arrow(dead)
    assert isinstance(before, pl.DataFrame)
    letters = pl.concat([before, quarantined.cast(before.schema)]).unique(
        subset=["page", "row", "record_id", "reason", "raw_record"],
        keep="first",
        maintain_order=True,
    )
    with lake.parquet_writer(paths[Zone.DEADLETTER], deadletter_schema()) as out:
        out.write_table(letters.to_arrow().cast(deadletter_schema()))
    keep = pa.array([i not in bad_rows for i in range(table.num_rows)])
    with lake.parquet_writer(paths[Zone.NORMALIZED], table.schema) as out:
        out.write_table(table.filter(keep))
    result.quarantined = len(indices)
    codes: dict[str, int] = {}
    for code in quarantined["reason_code"].to_list():
        codes[code] = codes.get(code, 0) + 1
    result.quarantined_by = dict(sorted(codes.items()))


def _recount(
    lake: Lake, paths: dict[Zone, str], manifest: dict[str, Any], result: GateResult
) -> dict[str, Any]:
    """The manifest with landed / dead-lettered counted from the objects as they now are."""
    landed = pq.read_metadata(paths[Zone.NORMALIZED], filesystem=lake.fs).num_rows
    dead = _read(lake, paths[Zone.DEADLETTER], deadletter_schema())
    reasons = pl.from_arrow(dead.select(["reason_code"]))
    assert isinstance(reasons, pl.DataFrame)
    counts = dict(sorted(reasons.group_by("reason_code").len().iter_rows()))
    updated = manifest | {
        "landed": landed,
        "dead_lettered": dead.num_rows,
        "dead_letter_reasons": counts,
        "quality": result.summary(),
    }
    updated["balanced"] = updated["pulled"] == (
        updated["landed"] + updated["dead_lettered"] + updated["deduplicated"]
    )
    return updated
