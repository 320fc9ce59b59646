"""Read wire pages into Polars frames whose every leaf is text.

A module may send a number as a JSON number or as a string, an object where a string
was expected, or a field the hub does not know. Reading every known field as text
(Polars turns numbers and objects into their JSON text) keeps one bad value from
failing the page; the normalizer then decides, per record, what is valid.
"""

from __future__ import annotations

import io
from functools import cache

import orjson
import polars as pl

from analytics_hub.normalize import ROW, TAGS
from analytics_hub.sources import Entity, Kind


@cache
def record_schema(entity: Entity) -> pl.Struct:
    """Every wire name of every field of the entity, as text; payload fields under ``data``."""
    top: dict[str, pl.DataType] = {}
    payload: dict[str, pl.DataType] = {}
    for field in entity.all_fields:
        target = top if (field.in_envelope or not entity.time_series) else payload
        for name in field.wire_names:
            target[name] = TAGS if field.kind is Kind.TAGS else pl.String()
    if entity.time_series:
        top["data"] = pl.Struct(payload)
    return pl.Struct(top)


@cache
def _page_schema(entity: Entity) -> pl.Schema:
    return pl.Schema({"data": pl.List(record_schema(entity)), "next_page_token": pl.String()})


def read_page(body: bytes, entity: Entity) -> tuple[pl.DataFrame, str | None]:
    """The records of one JSON page (with their position in ROW) and the next page token."""
    page = pl.read_ndjson(io.BytesIO(body.replace(b"\n", b" ")), schema=_page_schema(entity))
    if page.height != 1:
        raise ValueError(f"expected one JSON page object, found {page.height}")
    token = page["next_page_token"][0]
    records = page.select(pl.col("data").explode()).drop_nulls().unnest("data")
    return records.with_row_index(ROW), token


def read_ndjson(body: bytes, entity: Entity) -> pl.DataFrame:
    """The records of a chunk of newline-delimited JSON (one record per line)."""
    records = pl.read_ndjson(io.BytesIO(body), schema=pl.Schema(record_schema(entity).to_schema()))
    return records.with_row_index(ROW)


def raw_records(body: bytes, *, ndjson: bool) -> pl.Series:
    """The JSON text of each record of a page or chunk, by position.

    NDJSON lines are kept as received. A page's records are written back by orjson: valid
    JSON equal to what was sent (Polars' own rendering of a nested value drops escapes),
    read only for pages that have dead letters.
    """
    if ndjson:
        lines = [line for line in body.decode().splitlines() if line.strip()]
        return pl.Series("raw", lines, dtype=pl.String)
    records = orjson.loads(body).get("data") or []
    texts = [orjson.dumps(record).decode() for record in records if record is not None]
    return pl.Series("raw", texts, dtype=pl.String)
