"""The warehouse load: lake windows → landing tables, by COPY, one transaction per window.

Against a real PostgreSQL (the private cluster of ``tests/conftest.py``). The loader loads
only windows the lake gate approved and published, so lake windows are built as a pull
builds them: normalized Parquet written with ``Lake`` and ``normalized_schema`` as a staged
version with its manifest, then audited and published by the real gate (``land``); in the
last tests, pulled by ``Pipeline`` from a simulator process. The few objects the gate would
rightly refuse or change, fed to the loader on purpose, get the manifest the gate writes
without it (``publish_without_the_gate``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
import pyarrow.parquet as pq
import pytest

from analytics_hub import warehouse
from analytics_hub.ingest import Manifest, deadletter_schema, normalized_schema
from analytics_hub.lake import APPROVED, Lake, Zone, new_version
from analytics_hub.normalize import output_schema
from analytics_hub.pipeline import Pipeline
from analytics_hub.settings import HubSettings, load_gate_settings, load_settings
from analytics_hub.sources import COSTOPS, MODULES, OBSERVATORY, TAG_KEYS, Entity, Module
from analytics_hub.warehouse import (
    LandingSchemaError,
    MissingWindowError,
    OverlappingWindowError,
    ensure_landing_tables,
    landing_columns,
    landing_table,
    load_window,
    load_windows,
    postgres_type,
)
from analytics_hub.windows import Window

pytestmark = pytest.mark.integration

WINDOW_A = Window(
    datetime(2026, 11, 25, 10, tzinfo=UTC), datetime(2026, 11, 25, 10, 15, tzinfo=UTC)
)
WINDOW_B = Window(WINDOW_A.end, WINDOW_A.end + timedelta(minutes=15))
METRICS = OBSERVATORY.entity("metrics")
COSTS = COSTOPS.entity("cost_records")
KEY = b"warehouse-test-key"
# Text that trips up naive CSV: separators, quotes, line breaks, the NULL marker, unicode.
AWKWARD_TEXT = [
    "",
    None,
    "a,b",
    'say "hi"',
    "line\nbreak",
    "crlf\r\nend",
    "\\N",
    "NULL",
    "back\\slash",
    "  padded  ",
    "é 中文 😀",
    "'single'",
]


# -- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture
def conn(new_database: Callable[[str], str]) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(new_database("warehouse")) as connection:
        ensure_landing_tables(connection)
        yield connection


def pipeline(settings: HubSettings, work_dir: Path) -> Pipeline:
    gate = load_gate_settings(work_dir=str(work_dir))
    return Pipeline.from_settings(settings, gate, pseudonym_key=KEY)


@pytest.fixture
def hub(tmp_path: Path) -> Pipeline:
    """A local lake and its lake gate."""
    return pipeline(load_settings(lake_url=str(tmp_path / "lake")), tmp_path / "work")


@pytest.fixture
def lake(hub: Pipeline) -> Lake:
    return hub.lake


def write_normalized(
    lake: Lake,
    path: str,
    entity: Entity,
    window: Window,
    rows: pl.DataFrame,
    row_group_rows: int = 1_000_000,
) -> int:
    """Write ``rows`` (canonical columns) at ``path`` as a window's normalized object."""
    frame = rows.with_columns(
        pl.lit(window.start).cast(pl.Datetime("us", "UTC")).alias("_window_start"),
        pl.lit(window.end).cast(pl.Datetime("us", "UTC")).alias("_window_end"),
    )
    schema = normalized_schema(entity)
    table = frame.select(schema.names).to_arrow().cast(schema)
    with lake.parquet_writer(path, schema) as writer:
        for offset in range(0, max(table.num_rows, 1), row_group_rows):
            writer.write_table(table.slice(offset, row_group_rows))
    return int(table.num_rows)


def pulled(module: Module, entity: Entity, window: Window, version: str, rows: int) -> Manifest:
    """The manifest of a pull that landed ``rows`` records, all of them good."""
    bounds = window.query()
    return Manifest(
        module.name, entity.name, bounds["from"], bounds["to"], version, pulled=rows, landed=rows
    )


def land(
    hub: Pipeline,
    module: Module,
    entity: Entity,
    window: Window,
    rows: pl.DataFrame,
    row_group_rows: int = 1_000_000,
) -> None:
    """Make ``rows`` the window's current version as a pull does: staged with its manifest,
    then audited and published by the lake gate, which must keep every row."""
    lake, version = hub.lake, new_version()
    staged = {
        zone: lake.staged_path(zone, module.name, entity.name, window, version) for zone in Zone
    }
    count = write_normalized(lake, staged[Zone.NORMALIZED], entity, window, rows, row_group_rows)
    with lake.parquet_writer(staged[Zone.DEADLETTER], deadletter_schema()):
        pass  # every record landed
    lake.write_json(
        staged[Zone.MANIFESTS], pulled(module, entity, window, version, count).to_dict()
    )
    result = hub.audit(module, entity, window, version)
    assert result.status in APPROVED and not result.quarantined, result.to_dict()


def publish_without_the_gate(
    lake: Lake,
    module: Module,
    entity: Entity,
    window: Window,
    rows: pl.DataFrame,
    row_group_rows: int = 1_000_000,
    *,
    changed: Callable[[str], None] | None = None,
) -> None:
    """Make ``rows`` the window's current version WITHOUT the lake gate: the normalized
    object written in place (then ``changed(path)``, if given), with the published
    manifest the gate writes when it approves a version (verdict, counts, and the SHA-256
    of the object as it finally is).

    Only for objects the gate would rightly refuse or change, which these tests feed to the
    loader on purpose to test the loader itself: values outside the contract (awkward text
    and doubles beside a null in a required column, negative and 32-digit money), a column
    the landing table lacks, bytes corrupted past a readable footer. Every other window is
    landed through the real gate (``land``).
    """
    path = lake.path(Zone.NORMALIZED, module.name, entity.name, window)
    write_normalized(lake, path, entity, window, rows, row_group_rows)
    if changed is not None:
        changed(path)
    count = pq.read_metadata(path, filesystem=lake.fs).num_rows
    manifest = pulled(module, entity, window, new_version(), count).to_dict() | {
        "quality": {
            "status": "passed",
            "rows": count,
            "quarantined": 0,
            "quarantined_by": {},
            "warned": [],
            "blocked": [],
        },
        "checksums": {Zone.NORMALIZED.value: lake.checksum(path)},
    }
    lake.write_json(lake.path(Zone.MANIFESTS, module.name, entity.name, window), manifest)


def frame_of(
    entity: Entity, columns: dict[str, list[Any]], height: int, window: Window = WINDOW_A
) -> pl.DataFrame:
    """A canonical frame: the given columns, every other column filled with a value the
    contract accepts in ``window`` (a key unique per row, an accepted value of an enum, a
    time a minute into the window), so that the lake gate keeps every row."""
    schema = output_schema(entity)
    fields = {f.name: f for f in entity.all_fields}
    moment = window.start + timedelta(minutes=1)
    filler: dict[type[pl.DataType], Any] = {
        pl.String: "x",
        pl.Int64: 1,
        pl.Float64: 1.5,
        pl.Datetime: moment,
        pl.Decimal: Decimal("1.5"),
        pl.Struct: dict.fromkeys(TAG_KEYS),
    }

    def filled(name: str, dtype: pl.DataType) -> list[Any]:
        field = fields.get(name)
        if field is not None and field.values:
            return [field.values[0]] * height
        if name in entity.key and isinstance(dtype, pl.String):
            return [f"x-{i:06d}" for i in range(height)]
        return [filler[type(dtype)]] * height

    data = {
        name: columns[name] if name in columns else filled(name, dtype)
        for name, dtype in schema.items()
    }
    return pl.DataFrame(data, schema=schema)


def metrics(n: int, prefix: str = "evt", window: Window = WINDOW_A) -> pl.DataFrame:
    return frame_of(
        METRICS,
        {"event_id": [f"{prefix}-{i:06d}" for i in range(n)], "input_tokens": list(range(n))},
        n,
        window,
    )


def landed(
    conn: psycopg.Connection[Any], module: Module, entity: Entity, window: Window | None = None
) -> list[dict[str, Any]]:
    table = landing_table(module.name, entity.name)
    where = "where _window_start = %s and _window_end = %s" if window else ""
    params = (window.start, window.end) if window else ()
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        cursor.execute(f"select * from {table} {where} order by 1", params)  # type: ignore[arg-type]
        rows = cursor.fetchall()
    for row in rows:  # when it was loaded is the warehouse's, not the lake's
        assert row.pop("_loaded_at") is not None
    return rows


def as_rows(frame: pl.DataFrame, window: Window) -> list[dict[str, Any]]:
    lineage = {"_window_start": window.start, "_window_end": window.end}
    return [row | lineage for row in frame.sort(frame.columns[0]).to_dicts()]


# -- DDL --------------------------------------------------------------------------------------


def test_landing_table_names_module_and_entity() -> None:
    assert landing_table("observatory", "metrics") == "landing.observatory__metrics"
    assert landing_table("costops", "cost_records") == "landing.costops__cost_records"


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (pl.String(), "text"),
        (pl.Int64(), "bigint"),
        (pl.Float64(), "double precision"),
        (pl.Boolean(), "boolean"),
        (pl.Datetime("us", "UTC"), "timestamptz"),
        (pl.Decimal(38, 6), "numeric(38,6)"),
        (pl.Struct({"region": pl.String()}), "jsonb"),
    ],
)
def test_polars_types_map_to_postgres_types(dtype: pl.DataType, expected: str) -> None:
    assert postgres_type(dtype) == expected


def test_an_unmapped_type_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="Binary"):
        postgres_type(pl.Binary())


def test_every_entity_of_every_module_gets_its_table_and_window_index(
    conn: psycopg.Connection[Any],
) -> None:
    tables = ensure_landing_tables(conn)  # a second time: idempotent
    expected = {landing_table(m.name, e.name): e for m in MODULES.values() for e in m.entities}
    assert sorted(tables) == sorted(expected)
    for table, entity in expected.items():
        schema, name = table.split(".")
        columns = conn.execute(
            "select column_name, format_type(atttypid, atttypmod) from information_schema.columns "
            "join pg_attribute on attrelid = (table_schema || '.' || table_name)::regclass "
            "and attname = column_name where table_schema = %s and table_name = %s "
            "order by ordinal_position",
            (schema, name),
        ).fetchall()
        wanted = landing_columns(entity)
        assert [c for c, _ in columns] == [*wanted, "_loaded_at"]
        types = dict(columns)
        assert types["_window_start"] == types["_window_end"] == "timestamp with time zone"
        assert types["_loaded_at"] == "timestamp with time zone"
        for column, pg_type in wanted.items():
            assert types[column] == {
                "timestamptz": "timestamp with time zone",
                "numeric(38,6)": "numeric(38,6)",
            }.get(pg_type, pg_type)
        indexes = [
            row[0]
            for row in conn.execute(
                "select indexdef from pg_indexes where schemaname = %s and tablename = %s",
                (schema, name),
            ).fetchall()
        ]
        assert any("(_window_start, _window_end)" in index for index in indexes), indexes
        # the key index of deduplicated modules; none on at-most-once telemetry
        module = next(m for m in MODULES.values() if entity in m.entities)
        key_index = f"{name}__key ON {table} USING btree ({', '.join(entity.key)})"
        assert any(key_index in index for index in indexes) == (
            module.delivery != "at-most-once"
        ), indexes
    metric_types = landing_columns(METRICS)
    assert metric_types["tags"] == "jsonb"
    assert landing_columns(COSTS)["cost_usd"] == "numeric(38,6)"


def test_a_load_stamps_its_rows_when_its_copy_runs_and_another_default_is_replaced(
    conn: psycopg.Connection[Any],
) -> None:
    """`_loaded_at` is the time of the statement that writes the rows, after the load's
    lock, not of its transaction's start; a table with another default gets this one, once."""
    table = landing_table("observatory", "metrics")
    default = (
        "select pg_get_expr(adbin, adrelid) from pg_attrdef join pg_attribute"
        " on attrelid = adrelid and attnum = adnum"
        " where adrelid = %s::regclass and attname = '_loaded_at'"
    )
    assert conn.execute(default, (table,)).fetchone() == ("statement_timestamp()",)
    conn.execute(f"alter table {table} alter column _loaded_at set default now()")
    ensure_landing_tables(conn)
    assert conn.execute(default, (table,)).fetchone() == ("statement_timestamp()",)
    conn.execute("select pg_sleep(0.05)")  # in a transaction begun before this statement
    stamped = conn.execute(
        f"insert into {table} (event_id) values ('e-1') returning _loaded_at, now()"
    ).fetchone()
    assert stamped is not None and stamped[0] > stamped[1]
    conn.rollback()


def test_the_newest_load_is_found_by_index_and_an_old_brin_index_is_replaced(
    conn: psycopg.Connection[Any],
) -> None:
    """max(_loaded_at), which the key tests read, takes the B-tree: no scan of the table."""
    table = landing_table("observatory", "metrics")
    conn.execute("drop index landing.observatory__metrics__loaded_at")
    conn.execute(f"create index observatory__metrics__loaded_at on {table} using brin (_loaded_at)")
    conn.commit()
    ensure_landing_tables(conn)
    methods = conn.execute(
        "select am.amname from pg_index i join pg_class c on c.oid = i.indexrelid"
        " join pg_am am on am.oid = c.relam where i.indrelid = %s::regclass"
        " and pg_get_indexdef(i.indexrelid) like '%%(_loaded_at)'",
        (table,),
    ).fetchall()
    assert methods == [("btree",)]
    plan = "\n".join(
        row[0] for row in conn.execute(f"explain select max(_loaded_at) from {table}").fetchall()
    )
    assert "Index Only Scan Backward" in plan and "Seq Scan" not in plan, plan


def test_the_key_tests_of_staging_read_the_index_of_rows_without_a_key(
    conn: psycopg.Connection[Any],
) -> None:
    """A not_null test on a key reads the (empty) partial index, not the landed rows."""
    for module in MODULES.values():
        for entity in module.entities:
            table = landing_table(module.name, entity.name)
            partial = conn.execute(
                "select indexdef from pg_indexes where schemaname || '.' || tablename = %s"
                " and indexdef like '%%WHERE%%IS NULL%%'",
                (table,),
            ).fetchall()
            assert len(partial) == len(entity.key), (table, partial)
    table = landing_table("observatory", "metrics")
    conn.execute(
        f"insert into {table} (event_id, event_time, _window_start, _window_end)"
        " select gen_random_uuid()::text, now(), now(), now() from generate_series(1, 20000)"
    )
    conn.execute(f"analyze {table}")
    plan = "\n".join(
        row[0]
        for row in conn.execute(
            f"explain select event_id from {table}"
            " where _loaded_at > now() - interval '1 hour' and event_id is null"
        ).fetchall()
    )
    assert "observatory__metrics__event_id_missing" in plan, plan


def test_a_column_added_to_the_source_table_is_added_to_the_landing_table(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute("alter table landing.observatory__metrics drop column ttft_ms")
    conn.commit()
    ensure_landing_tables(conn, [OBSERVATORY])
    row = conn.execute(
        "select data_type from information_schema.columns "
        "where table_name = 'observatory__metrics' and column_name = 'ttft_ms'"
    ).fetchone()
    assert row == ("double precision",)


# -- loading: exact values ---------------------------------------------------------------------


@pytest.mark.parametrize("copy_format", ["binary", "csv"])
def test_a_window_loads_exactly_the_lakes_rows_and_values(
    conn: psycopg.Connection[Any], lake: Lake, copy_format: warehouse.CopyFormat
) -> None:
    n = len(AWKWARD_TEXT)
    rows = frame_of(
        METRICS,
        {
            "event_id": [f"evt-{i:02d}" for i in range(n)],
            "event_time": [
                datetime(2026, 11, 25, 9, 59, 59, 999_999, tzinfo=UTC) + timedelta(microseconds=i)
                for i in range(n)
            ],
            "error_code": AWKWARD_TEXT,
            "service": [None if text is None else f"svc {text}" for text in AWKWARD_TEXT],
            "latency_ms": [0.1, 1 / 3, 1e-300, 1.7976931348623157e308, 0.0, None] * 2,
            "input_tokens": [0, 2**62, None, 1, 2, 3] * 2,
            "tags": [
                dict.fromkeys(TAG_KEYS) | {"region": "eu-west-1", "team": text}
                for text in AWKWARD_TEXT[:-1]
            ]
            + [None],
        },
        n,
    )
    publish_without_the_gate(lake, OBSERVATORY, METRICS, WINDOW_A, rows, row_group_rows=5)
    conn.execute("set timezone = 'America/New_York'")  # the session's zone must not matter
    conn.commit()

    result = load_window(
        conn, lake, OBSERVATORY, METRICS, WINDOW_A, batch_rows=4, copy_format=copy_format
    )

    assert (result.rows, result.replaced) == (n, 0)
    assert result.table == "landing.observatory__metrics"
    assert result.source.endswith(f"{WINDOW_A.id}.parquet")
    got = landed(conn, OBSERVATORY, METRICS)
    assert got == as_rows(rows, WINDOW_A)
    assert got[0]["error_code"] == "" and got[1]["error_code"] is None  # not conflated
    assert got[0]["tags"] == dict.fromkeys(TAG_KEYS) | {"region": "eu-west-1", "team": ""}
    assert got[-1]["tags"] is None
    # timestamps are UTC instants to the microsecond; the session keeps its own zone
    assert conn.execute("show timezone").fetchone() == ("America/New_York",)
    stamp = conn.execute(
        "select to_char(event_time at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') "
        "from landing.observatory__metrics where event_id = 'evt-01'"
    ).fetchone()
    assert stamp == ("2026-11-25 10:00:00.000000",)
    tag = conn.execute(
        "select tags ->> 'team' from landing.observatory__metrics where event_id = 'evt-03'"
    ).fetchone()
    assert tag == ('say "hi"',)


def test_money_is_exact_numeric(conn: psycopg.Connection[Any], lake: Lake) -> None:
    amounts = [
        Decimal("0.000001"),
        Decimal("12345678901234567890123456789012.123456"),
        Decimal("0.100000"),
        Decimal("-3.5"),
        None,
    ]
    rows = frame_of(
        COSTS,
        {"cost_record_id": [f"c{i}" for i in range(5)], "cost_usd": amounts, "cost": [0.07] * 5},
        5,
    )
    publish_without_the_gate(lake, COSTOPS, COSTS, WINDOW_A, rows)

    with pytest.raises(ValueError, match="numeric"):  # binary numeric is not encoded
        load_window(conn, lake, "costops", "cost_records", WINDOW_A, copy_format="binary")
    load_window(conn, lake, "costops", "cost_records", WINDOW_A)  # auto: csv

    got = conn.execute(
        "select cost_usd, cost_usd::text from landing.costops__cost_records order by 1 nulls last"
    ).fetchall()
    assert [value for value, _ in got] == [*sorted(a for a in amounts if a is not None), None]
    assert "0.100000" in {text for _, text in got}  # the scale of numeric(38,6)
    total = conn.execute("select sum(cost_usd)::text from landing.costops__cost_records")
    assert total.fetchone() == ("12345678901234567890123456789008.723457",)


def test_an_empty_window_loads_no_rows_and_clears_the_old_ones(
    conn: psycopg.Connection[Any], hub: Pipeline, lake: Lake
) -> None:
    land(hub, OBSERVATORY, METRICS, WINDOW_A, metrics(3))
    load_window(conn, lake, OBSERVATORY, METRICS, WINDOW_A)
    land(hub, OBSERVATORY, METRICS, WINDOW_A, metrics(0))

    result = load_window(conn, lake, OBSERVATORY, METRICS, WINDOW_A)

    assert (result.rows, result.replaced) == (0, 3)
    assert landed(conn, OBSERVATORY, METRICS) == []


# -- loading: idempotence and isolation ---------------------------------------------------------


def test_reloading_a_window_replaces_it_without_duplicates(
    conn: psycopg.Connection[Any], hub: Pipeline, lake: Lake
) -> None:
    rows = metrics(50)
    land(hub, OBSERVATORY, METRICS, WINDOW_A, rows)
    first = load_window(conn, lake, OBSERVATORY, METRICS, WINDOW_A, batch_rows=16)
    before = landed(conn, OBSERVATORY, METRICS)

    again = load_window(conn, lake, OBSERVATORY, METRICS, WINDOW_A, batch_rows=16)

    assert (first.rows, first.replaced) == (50, 0)
    assert (again.rows, again.replaced) == (50, 50)
    assert landed(conn, OBSERVATORY, METRICS) == before == as_rows(rows, WINDOW_A)


def test_a_reingested_window_replaces_the_old_rows(
    conn: psycopg.Connection[Any], hub: Pipeline, lake: Lake
) -> None:
    land(hub, OBSERVATORY, METRICS, WINDOW_A, metrics(10, "old"))
    load_window(conn, lake, OBSERVATORY, METRICS, WINDOW_A)
    land(hub, OBSERVATORY, METRICS, WINDOW_A, metrics(7, "new"))

    load_window(conn, lake, OBSERVATORY, METRICS, WINDOW_A)

    assert landed(conn, OBSERVATORY, METRICS) == as_rows(metrics(7, "new"), WINDOW_A)


def test_loading_window_b_leaves_window_a_alone(
    conn: psycopg.Connection[Any], hub: Pipeline, lake: Lake
) -> None:
    land(hub, OBSERVATORY, METRICS, WINDOW_A, metrics(20, "a"))
    land(hub, OBSERVATORY, METRICS, WINDOW_B, metrics(30, "b", WINDOW_B))
    load_window(conn, lake, OBSERVATORY, METRICS, WINDOW_A)

    load_window(conn, lake, OBSERVATORY, METRICS, WINDOW_B)
    load_window(conn, lake, OBSERVATORY, METRICS, WINDOW_B)

    assert landed(conn, OBSERVATORY, METRICS, WINDOW_A) == as_rows(metrics(20, "a"), WINDOW_A)
    b_rows = as_rows(metrics(30, "b", WINDOW_B), WINDOW_B)
    assert landed(conn, OBSERVATORY, METRICS, WINDOW_B) == b_rows


def test_an_overlapping_window_is_refused_and_the_loaded_one_stays(
    conn: psycopg.Connection[Any], hub: Pipeline, lake: Lake
) -> None:
    """A window that overlaps a loaded one would count its rows twice: the load refuses it."""
    hour = Window(WINDOW_A.start, WINDOW_A.start + timedelta(hours=1))
    land(hub, OBSERVATORY, METRICS, WINDOW_A, metrics(5, "quarter"))
    land(hub, OBSERVATORY, METRICS, hour, metrics(8, "hour"))
    load_window(conn, lake, OBSERVATORY, METRICS, WINDOW_A)

    with pytest.raises(OverlappingWindowError, match="overlaps the loaded window"):
        load_window(conn, lake, OBSERVATORY, METRICS, hour)

    assert len(landed(conn, OBSERVATORY, METRICS, WINDOW_A)) == 5
    assert landed(conn, OBSERVATORY, METRICS, hour) == []


def test_load_windows_loads_every_entity_of_a_module(
    conn: psycopg.Connection[Any], hub: Pipeline, lake: Lake
) -> None:
    costops = MODULES["costops"]
    for entity in costops.entities:
        land(hub, costops, entity, WINDOW_A, frame_of(entity, {}, 4))

    results = load_windows(conn, lake, "costops", WINDOW_A, atomic=True)

    assert [(r.entity, r.rows) for r in results] == [("cost_records", 4), ("budgets", 4)]
    assert all(len(landed(conn, costops, e)) == 4 for e in costops.entities)


# -- failures -----------------------------------------------------------------------------------


def test_a_missing_object_is_a_clear_error_naming_it(
    conn: psycopg.Connection[Any], lake: Lake
) -> None:
    path = lake.path(Zone.NORMALIZED, "observatory", "metrics", WINDOW_B)
    with pytest.raises(MissingWindowError, match=f"observatory/metrics .*{path}"):
        load_window(conn, lake, OBSERVATORY, METRICS, WINDOW_B)


def test_an_object_with_unknown_columns_is_refused(
    conn: psycopg.Connection[Any], lake: Lake
) -> None:

    def surprise(path: str) -> None:  # schema drift, which the gate would block
        table = pq.read_table(path)
        pq.write_table(table.append_column("surprise", table.column("event_id")), path)

    publish_without_the_gate(lake, OBSERVATORY, METRICS, WINDOW_A, metrics(3), changed=surprise)
    with pytest.raises(LandingSchemaError, match="surprise"):
        load_window(conn, lake, OBSERVATORY, METRICS, WINDOW_A)


def _loaded_a(conn: psycopg.Connection[Any], hub: Pipeline) -> list[dict[str, Any]]:
    land(hub, OBSERVATORY, METRICS, WINDOW_A, metrics(40, "good"))
    load_window(conn, hub.lake, OBSERVATORY, METRICS, WINDOW_A)
    return landed(conn, OBSERVATORY, METRICS)


def test_a_corrupt_object_midway_rolls_back_to_the_previous_rows(
    conn: psycopg.Connection[Any], hub: Pipeline, lake: Lake
) -> None:
    before = _loaded_a(conn, hub)

    def scribble(path: str) -> None:
        # Over the data of the last row group: the footer still reads, so the load starts,
        # deletes the window and copies the first row groups before it breaks. The manifest
        # carries the SHA-256 of these bytes, else the load would refuse them up front.
        last = pq.ParquetFile(path).metadata.row_group(3)
        chunks = [last.column(i) for i in range(last.num_columns)]
        # a chunk starts at its dictionary page, if it has one: else the end would overrun
        # into the footer, and the load would fail on opening the object, not midway
        start = min(
            c.dictionary_page_offset if c.has_dictionary_page else c.data_page_offset
            for c in chunks
        )
        size = sum(c.total_compressed_size for c in chunks)
        with open(path, "r+b") as handle:
            handle.seek(start)
            handle.write(b"\xff" * size)

    publish_without_the_gate(
        lake, OBSERVATORY, METRICS, WINDOW_A, metrics(40, "bad"), 10, changed=scribble
    )

    with pytest.raises(OSError, match=r"(?i)corrupt|invalid|parquet|thrift|decompress"):
        load_window(conn, lake, OBSERVATORY, METRICS, WINDOW_A, batch_rows=10)

    assert landed(conn, OBSERVATORY, METRICS) == before


def test_an_exception_while_copying_rolls_back_to_the_previous_rows(
    conn: psycopg.Connection[Any], hub: Pipeline, lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _loaded_a(conn, hub)
    land(hub, OBSERVATORY, METRICS, WINDOW_A, metrics(40, "new"))
    calls: list[int] = []

    def failing(render: Callable[..., bytes]) -> Callable[..., bytes]:
        def render_or_fail(*args: Any) -> bytes:
            calls.append(1)
            if len(calls) == 3:  # two chunks are already copied in
                raise RuntimeError("injected failure")
            return render(*args)

        return render_or_fail

    with monkeypatch.context() as patch:
        for name in ("_render_csv", "_render_binary"):
            patch.setattr(warehouse, name, failing(getattr(warehouse, name)))
        for copy_format in ("binary", "csv"):
            calls.clear()
            with pytest.raises(RuntimeError, match="injected failure"):
                load_window(
                    conn,
                    lake,
                    OBSERVATORY,
                    METRICS,
                    WINDOW_A,
                    batch_rows=10,
                    copy_format=copy_format,
                )
            assert landed(conn, OBSERVATORY, METRICS) == before

    assert load_window(conn, lake, OBSERVATORY, METRICS, WINDOW_A).replaced == 40


def test_a_killed_loader_leaves_the_previous_rows(
    conn: psycopg.Connection[Any], hub: Pipeline, lake: Lake
) -> None:
    before = _loaded_a(conn, hub)
    land(hub, OBSERVATORY, METRICS, WINDOW_A, metrics(40, "new"))
    script = textwrap.dedent(
        f"""
        import os, signal, psycopg
        from analytics_hub import warehouse
        from analytics_hub.lake import Lake
        from analytics_hub.settings import load_settings
        from analytics_hub.windows import Window

        render, calls = warehouse._render_binary, []
        def render_then_die(*args):
            calls.append(1)
            if len(calls) == 3:  # two chunks are already copied in
                os.kill(os.getpid(), signal.SIGKILL)
            return render(*args)
        warehouse._render_binary = render_then_die
        lake = Lake.from_settings(load_settings(lake_url={lake.url!r}))
        window = Window.parse({WINDOW_A.start.isoformat()!r}, {WINDOW_A.end.isoformat()!r})
        with psycopg.connect({conn.info.dsn!r}) as conn:
            warehouse.load_window(conn, lake, "observatory", "metrics", window, batch_rows=10)
        """
    )
    env = os.environ | {"PYTHONPATH": str(Path(warehouse.__file__).parents[1])}
    child = subprocess.run([sys.executable, "-c", script], env=env, check=False, timeout=120)

    assert child.returncode == -9
    assert landed(conn, OBSERVATORY, METRICS) == before
    # the dead session's transaction and advisory lock are gone: the next run goes through
    assert load_window(conn, lake, OBSERVATORY, METRICS, WINDOW_A).replaced == 40


# -- from real ingestion, local and S3 lakes ----------------------------------------------------


def _canonical(rows: list[dict[str, Any]]) -> list[str]:
    """Rows as sortable JSON; instants in UTC whatever zone object carries them."""

    def plain(value: Any) -> str:
        if isinstance(value, datetime):
            return value.astimezone(UTC).isoformat()
        return repr(value)  # Decimal: exact digits and scale

    return sorted(json.dumps(row, default=plain, sort_keys=True) for row in rows)


def test_windows_ingested_from_the_simulator_load_exactly(
    conn: psycopg.Connection[Any], hub: Pipeline, lake: Lake
) -> None:
    from analytics_hub.connectors import Endpoint, ModuleClient
    from simulators import SimulatorConfig, SimulatorProcess

    window = Window(datetime(2026, 11, 25, 10, tzinfo=UTC), datetime(2026, 11, 25, 11, tzinfo=UTC))
    config = SimulatorConfig(seed=5, chaos=0.3, volume={"observatory": 3000})
    settings = load_settings(http_max_backoff_seconds=1.0)
    loads = {}
    with SimulatorProcess(config) as sim:
        for module in MODULES.values():
            endpoint = Endpoint(sim.module_url(module.name), f"sim-{module.name}-token")
            with ModuleClient(module, endpoint, settings) as client:
                loads[module.name] = hub.land_and_load(client, conn, window)

    for module in MODULES.values():
        results = loads[module.name]
        for result, entity in zip(results, module.entities, strict=True):
            expected = pl.from_arrow(lake.read(Zone.NORMALIZED, module.name, entity.name))
            assert isinstance(expected, pl.DataFrame)
            expected = expected.drop("module", "entity", "date", "hour")
            assert result.rows == expected.height > 0, f"{module.name}.{entity.name}"
            got = landed(conn, module, entity, window)
            assert _canonical(got) == _canonical(expected.to_dicts()), entity.name


def test_a_window_loads_from_an_s3_lake(
    conn: psycopg.Connection[Any], s3_lake_env: Any, tmp_path: Path
) -> None:
    hub = pipeline(load_settings(), tmp_path / "work")
    lake = hub.lake
    assert lake.url.startswith("s3://")
    rows = metrics(25)
    land(hub, OBSERVATORY, METRICS, WINDOW_A, rows, row_group_rows=10)

    result = load_window(conn, lake, OBSERVATORY, METRICS, WINDOW_A, batch_rows=10)

    assert result.source.startswith("s3://") and result.rows == 25
    assert landed(conn, OBSERVATORY, METRICS) == as_rows(rows, WINDOW_A)
    with pytest.raises(MissingWindowError, match="s3://"):
        load_window(conn, lake, OBSERVATORY, METRICS, WINDOW_B)
