"""Replay a window's dead letters through the same path, after a fix.

A record dead-lettered by normalization keeps its wire JSON; one quarantined by the lake
gate keeps its canonical row. Replaying a window reads them back:

- wire records go through ``parse`` and ``normalize`` again, as in ``ingest``; those
  that now pass join the window's normalized object (an exact redelivery of a landed
  key counts as deduplicated), those that still fail stay, with their new reasons;
- quarantined rows go back to the normalized object as they were, so the lake gate,
  which runs next, judges them with its current suite.

A replay never writes over the window's current version: it stages a new version
(normalized rows, dead letters, manifest; the raw pages stay as they are), which the lake
gate audits and publishes like a pull, normalized rows before dead letters and the
manifest last. pulled = landed + dead-lettered + deduplicated holds after a replay as
after an ingest, and replaying again before the gate ran stages the same result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from analytics_hub import parse
from analytics_hub.fx import FxRates
from analytics_hub.ingest import deadletter_schema, normalized_schema
from analytics_hub.lake import Lake, Zone, new_version
from analytics_hub.normalize import ROW, UTC_TS, normalize, output_schema
from analytics_hub.sources import Entity, Module
from analytics_hub.windows import Window

GATE_REASON = "expectation:"
# Dead letters whose kept text is not what was sent (a page that broke the pull, a record
# whose bytes were not UTF-8, kept with replacement characters): re-reading that text
# could land something the module never said, so they stay; their bytes are in the raw zone.
UNREADABLE = ("bad_page", "invalid_utf8")


@dataclass
class ReplayResult:
    module: str
    entity: str
    window: str
    version: str = ""  # the staged version, "" if there was nothing to replay
    replayed: int = 0
    landed: int = 0  # left the dead-letter store for the normalized object
    deduplicated: int = 0  # redeliveries of keys already landed
    still_dead: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _frame(lake: Lake, path: str) -> pl.DataFrame:
    frame = pl.from_arrow(pq.read_table(path, filesystem=lake.fs))
    assert isinstance(frame, pl.DataFrame)
    return frame


def _canonical_rows(raw: pl.Series, entity: Entity) -> pl.DataFrame:
    """Rows quarantined by the gate, back from their JSON to the canonical schema."""
    schema = output_schema(entity)
    as_text = {
        name: pl.String() if dtype == UTC_TS or isinstance(dtype, pl.Decimal) else dtype
        for name, dtype in schema.items()
    }
    decoded = raw.str.json_decode(pl.Struct(as_text)).struct.unnest()
    return decoded.with_columns(
        pl.col(name).str.to_datetime(time_zone="UTC", time_unit="us")
        if dtype == UTC_TS
        else pl.col(name).cast(dtype)
        for name, dtype in schema.items()
        if as_text[name] != dtype
    ).cast(dict(schema))  # type: ignore[arg-type]


def replay_window(
    module: Module,
    entity: Entity,
    window: Window,
    *,
    lake: Lake,
    rates: FxRates,
    pseudonym_key: bytes | None,
    local_timezone: str | None = None,
) -> ReplayResult:
    """Stage the window with its dead letters re-processed; returns what became of them."""
    paths = {zone: lake.path(zone, module.name, entity.name, window) for zone in Zone}
    version = new_version()
    staged = {
        zone: lake.staged_path(zone, module.name, entity.name, window, version) for zone in Zone
    }
    result = ReplayResult(module.name, entity.name, str(window))
    if not lake.exists(paths[Zone.DEADLETTER]):
        return result
    if not pq.read_metadata(paths[Zone.DEADLETTER], filesystem=lake.fs).num_rows:
        return result
    manifest = lake.read_json(paths[Zone.MANIFESTS])
    dead = _frame(lake, paths[Zone.DEADLETTER])
    landed = _frame(lake, paths[Zone.NORMALIZED])
    by_gate = pl.col("reason_code").str.starts_with(GATE_REASON)
    unreadable = pl.col("reason_code").is_in(UNREADABLE)
    quarantined = dead.filter(by_gate)
    wire = dead.filter(~by_gate & ~unreadable)
    result.replayed = dead.height

    parsed = parse.read_ndjson("\n".join(wire["raw_record"].to_list()).encode(), entity)
    normalized = normalize(
        parsed.records,
        module,
        entity,
        rates=rates,
        pseudonym_key=pseudonym_key,
        local_timezone=local_timezone,
    )
    recovered = pl.concat(
        [normalized.rows.drop(ROW), _canonical_rows(quarantined["raw_record"], entity)]
    ).with_columns(
        pl.lit(window.start).cast(UTC_TS).alias("_window_start"),
        pl.lit(window.end).cast(UTC_TS).alias("_window_end"),
    )
    fresh = recovered
    if module.delivery != "at-most-once":  # as ingest: drop exact redeliveries of a key
        key = list(entity.key)
        fresh = recovered.join(landed.select(key), on=key, how="anti", nulls_equal=False)
        fresh = fresh.unique(subset=key, keep="first", maintain_order=True)
    result.deduplicated = recovered.height - fresh.height
    result.landed = fresh.height

    rejects = pl.concat([normalized.rejects, parsed.faults.cast(normalized.rejects.schema)])
    still = wire.with_row_index(ROW).join(rejects, on=ROW, how="inner", suffix="_now")
    still_dead = pl.concat(
        [
            still.select(
                *(c for c in dead.columns if c not in ("reason_code", "reason")),
                pl.col("reason_code_now").alias("reason_code"),
                pl.col("reason_now").alias("reason"),
            ).select(dead.columns),
            dead.filter(unreadable),
        ]
    )
    result.still_dead = still_dead.height

    rows = pl.concat([landed, fresh.select(landed.columns).cast(landed.schema)])
    with lake.parquet_writer(staged[Zone.NORMALIZED], normalized_schema(entity)) as out:
        out.write_table(rows.to_arrow().cast(normalized_schema(entity)))
    with lake.parquet_writer(staged[Zone.DEADLETTER], deadletter_schema()) as out:
        out.write_table(still_dead.to_arrow().cast(deadletter_schema()))
    counts = dict(sorted(still_dead.group_by("reason_code").len().iter_rows()))
    result.version = version
    manifest.pop("quality", None)  # the gate's verdict on the new version is still to come
    manifest |= {
        "version": version,
        "landed": rows.height,
        "dead_lettered": still_dead.height,
        "deduplicated": manifest["deduplicated"] + result.deduplicated,
        "dead_letter_reasons": counts,
        "replayed": result.to_dict(),
    }
    manifest["balanced"] = manifest["pulled"] == (
        manifest["landed"] + manifest["dead_lettered"] + manifest["deduplicated"]
    )
    lake.write_json(staged[Zone.MANIFESTS], manifest)
    return result
