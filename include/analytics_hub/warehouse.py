"""Load normalized windows from the lake into the warehouse's landing tables.

One landing table per entity, ``landing.<module>__<entity>``: the entity's canonical
columns (``normalize.output_schema``) plus the lineage columns ``_window_start`` and
``_window_end``. Loading a window replaces exactly that window's rows, in one transaction:
delete the window, then ``COPY`` the lake object in. A failure or a killed process leaves
the previous rows; a re-run replaces them, never duplicates them. dbt builds on these
tables.

The rows travel through ``COPY FROM STDIN``, never row inserts. Arrow record batches are
read from the Parquet object and rendered on a background thread while the previous chunk
is on the wire, so the client's encoding overlaps the server's parsing and memory stays
flat in the size of the window. Two renderings:

- binary COPY (the default where every column allows it): tuples assembled with NumPy
  from the Arrow buffers; PostgreSQL reads them faster than CSV because it parses no
  timestamps, numbers or quotes;
- CSV (for ``numeric`` money, or on request): Arrow's writer quotes every string value
  and writes a null as an empty unquoted field, which is exactly what ``COPY (format
  csv)`` reads as null, so an empty string stays empty and a null stays null.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from queue import Empty, Full, Queue
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import polars as pl
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg import Connection, sql

from analytics_hub.ingest import LINEAGE_COLUMNS
from analytics_hub.lake import APPROVED, Lake, Zone
from analytics_hub.normalize import output_schema
from analytics_hub.sources import MODULES, Entity, Module, get_module
from analytics_hub.windows import Window

LANDING_SCHEMA = "landing"
# When a row was loaded: dbt's incremental models read the rows loaded since their last
# build (the newest `_loaded_at` they hold), so re-loaded and backfilled windows flow in too.
# That watermark misses nothing without a lookback, because a load and a build exclude each
# other on the landing table: a load takes ROW EXCLUSIVE on it before writing, and stamps its
# rows with the time of its COPY statement (not of its transaction's start), so after it
# holds the lock; a build's read takes SHARE on the tables it reads (the dbt macro
# `lock_loaded_tables`), which waits for the loads in flight to commit and holds back new
# ones until the read commits. A load the build did not see thus stamps its rows later
# than any row the build saw.
LOADED_AT = "_loaded_at"
LOADED_AT_DEFAULT = "statement_timestamp()"
LOADED_AT_TYPE = f"timestamptz not null default {LOADED_AT_DEFAULT}"
WINDOW_START, WINDOW_END = LINEAGE_COLUMNS
# Rows per Arrow batch, and so per COPY chunk on the wire (~20 MB for telemetry rows):
# big enough that per-chunk overhead vanishes, small enough that two chunks stay cheap.
BATCH_ROWS = 65_536
_PREFETCH_DEPTH = 2
_CSV = pacsv.WriteOptions(include_header=False, quoting_style="needed", batch_size=BATCH_ROWS)
# Which lake version of which window each landing table holds (see _ensure_loads_ledger).
LOADS_LEDGER = f"{LANDING_SCHEMA}.loaded_windows"
# When the newest load committed its ledger row: the dbt tests check the rows loaded
# shortly before it (dbt_project.yml, `vars.tested_rows`). A function, not a subquery in
# each test, so that one name holds the rule; STABLE, so that the planner evaluates it when
# it estimates a test's filter and takes the `_loaded_at` indexes.
NEWEST_LOAD = f"{LANDING_SCHEMA}.newest_load"
# Serializes DDL of concurrent tasks: ``create ... if not exists`` races on the catalog.
_DDL_LOCK_KEY = "analytics_hub.warehouse.ddl"

WarehouseConnection: TypeAlias = Connection[Any]
CopyFormat: TypeAlias = Literal["auto", "binary", "csv"]


class MissingWindowError(FileNotFoundError):
    """The lake holds no normalized object for the window: it was never ingested."""


class LandingSchemaError(ValueError):
    """A lake object's columns do not fit the entity's landing table."""


class OverlappingWindowError(ValueError):
    """The window overlaps another window already loaded into the same table: loading both
    would count the rows of their common time twice."""


class UnapprovedWindowError(RuntimeError):
    """The lake's current version of the window is not one the lake gate approved, or the
    object is not the one its manifest describes: loading it could publish bad data."""


def window_lock_key(module: str, entity: str, window: Window) -> str:
    """The advisory-lock key of one window of one entity: the lease that its land,
    validate, replay and load hold, so that they never interleave."""
    return f"analytics_hub.window:{module}/{entity}/{window.id}"


@contextmanager
def window_lease(conninfo: str, module: str, entity: str, window: Window) -> Iterator[None]:
    """Hold the window's lease for the block: a session advisory lock on the warehouse,
    released when the block ends or the worker's connection dies."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        key = window_lock_key(module, entity, window)
        conn.execute("select pg_advisory_lock(hashtextextended(%s, 0))", (key,))
        try:
            yield
        finally:
            conn.execute("select pg_advisory_unlock(hashtextextended(%s, 0))", (key,))


def approved_manifest(lake: Lake, module: Module, entity: Entity, window: Window) -> dict[str, Any]:
    """The window's published manifest, if the lake gate approved it and its normalized
    object is the one it describes (rows and SHA-256); else ``UnapprovedWindowError``."""
    where = f"{module.name}/{entity.name} {window}"
    path = lake.path(Zone.MANIFESTS, module.name, entity.name, window)
    normalized = lake.path(Zone.NORMALIZED, module.name, entity.name, window)
    if not lake.exists(path):
        raise MissingWindowError(
            f"{where}: nothing published at {lake.uri(normalized)} (no manifest at "
            f"{lake.uri(path)}); the window was never landed, or no version of it passed "
            "the lake gate"
        )
    manifest = lake.read_json(path)
    verdict = (manifest.get("quality") or {}).get("status")
    if verdict not in APPROVED:
        raise UnapprovedWindowError(
            f"{where}: the lake gate's verdict is {verdict or 'missing'}; only a window it "
            f"passed, warned or quarantined is loaded (see {lake.uri(path)})"
        )
    if not manifest.get("balanced", False):
        raise UnapprovedWindowError(f"{where}: its manifest does not balance")
    expected = (manifest.get("checksums") or {}).get(Zone.NORMALIZED.value)
    if expected is None:
        raise UnapprovedWindowError(f"{where}: its manifest has no checksum; validate it again")
    if not lake.exists(normalized):
        raise UnapprovedWindowError(
            f"{where}: {lake.uri(normalized)} is missing although the manifest is there: a "
            "publish was interrupted (it resumes when the validate task is run again)"
        )
    actual = lake.checksum(normalized)
    if actual != expected:
        raise UnapprovedWindowError(
            f"{where}: {lake.uri(normalized)} has SHA-256 {actual[:12]}…, its manifest says "
            f"{expected[:12]}…: the object is not the version the gate approved (an interrupted "
            "publish resumes when the validate task is run again)"
        )
    return manifest


@dataclass(frozen=True)
class LoadResult:
    module: str
    entity: str
    window: Window
    table: str
    source: str  # the lake object, as a URI
    rows: int  # rows loaded
    replaced: int  # rows of the window that were there before and were deleted
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


# -- DDL ------------------------------------------------------------------------------------


def postgres_type(dtype: pl.DataType) -> str:
    """The PostgreSQL column type of a canonical Polars type."""
    if isinstance(dtype, pl.Datetime):
        return "timestamptz" if dtype.time_zone else "timestamp"
    if isinstance(dtype, pl.Decimal):
        return f"numeric({dtype.precision},{dtype.scale})" if dtype.precision else "numeric"
    if isinstance(dtype, pl.Struct):
        return "jsonb"
    simple: dict[type[pl.DataType], str] = {
        pl.String: "text",
        pl.Int64: "bigint",
        pl.Int32: "integer",
        pl.Int16: "smallint",
        pl.Float64: "double precision",
        pl.Float32: "real",
        pl.Boolean: "boolean",
        pl.Date: "date",
    }
    try:
        return simple[type(dtype)]
    except KeyError:
        raise TypeError(f"no PostgreSQL type for the Polars type {dtype}") from None


def landing_table(module: str, entity: str) -> str:
    """``landing.<module>__<entity>``, the landing table of one entity."""
    return f"{LANDING_SCHEMA}.{_table_name(module, entity)}"


def landing_columns(entity: Entity) -> dict[str, str]:
    """Column → PostgreSQL type of an entity's landing table, in table order."""
    schema = dict(output_schema(entity)) | LINEAGE_COLUMNS
    return {name: postgres_type(dtype) for name, dtype in schema.items()}


def ensure_landing_tables(
    conn: WarehouseConnection, modules: Iterable[Module] | None = None
) -> list[str]:
    """Create the landing schema, tables and indexes that are missing; return the tables.

    Idempotent. A column added to the source table since the table was created is added to
    it (nullable); nothing is dropped or retyped. Existing tables are only altered when a
    column is missing or ``_loaded_at``'s default is not the statement's time; otherwise
    this takes no exclusive lock on the tables of a running load.
    """
    tables: list[str] = []
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute("select pg_advisory_xact_lock(hashtextextended(%s, 0))", (_DDL_LOCK_KEY,))
        cursor.execute(
            sql.SQL("create schema if not exists {}").format(sql.Identifier(LANDING_SCHEMA))
        )
        for module in modules if modules is not None else MODULES.values():
            for entity in module.entities:
                tables.append(_ensure_table(cursor, module, entity))
        _ensure_loads_ledger(cursor, tables)
    return tables


def _ensure_loads_ledger(cursor: Any, tables: list[str]) -> None:
    """``landing.loaded_windows``: which lake version of which window each table holds.

    The load refuses a window that overlaps another one loaded into the same table, and
    this is where it looks. Created with one row per window the tables already hold.
    """
    cursor.execute("select to_regclass(%s)", (LOADS_LEDGER,))
    (exists,) = cursor.fetchone()
    cursor.execute(
        f"create table if not exists {LOADS_LEDGER} ("
        " table_name text not null, window_start timestamptz not null,"
        " window_end timestamptz not null, lake_version text, checksum text,"
        " rows bigint not null, loaded_at timestamptz not null default statement_timestamp(),"
        " primary key (table_name, window_start, window_end))"
    )
    _ensure_index(cursor, sql.SQL(LOADS_LEDGER), "loaded_windows__loaded_at", ("loaded_at",))
    cursor.execute(
        f"create or replace function {NEWEST_LOAD}() returns timestamptz"
        " language sql stable parallel safe"
        f" as $$ select coalesce(max(loaded_at), '-infinity') from {LOADS_LEDGER} $$"
    )
    if exists is None:
        for name in tables:
            cursor.execute(
                sql.SQL(
                    "insert into {ledger} (table_name, window_start, window_end, rows)"
                    " select %s, {start}, {end}, count(*) from {table} group by 2, 3"
                ).format(
                    ledger=sql.SQL(LOADS_LEDGER),
                    start=sql.Identifier(WINDOW_START),
                    end=sql.Identifier(WINDOW_END),
                    table=sql.SQL(name),
                ),
                (name,),
            )


def _ensure_table(cursor: Any, module: Module, entity: Entity) -> str:
    name = _table_name(module.name, entity.name)
    table = sql.Identifier(LANDING_SCHEMA, name)
    columns = landing_columns(entity) | {LOADED_AT: LOADED_AT_TYPE}
    definitions = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(pg_type))
        for column, pg_type in columns.items()
    )
    cursor.execute(sql.SQL("create table if not exists {} ({})").format(table, definitions))
    cursor.execute(
        "select column_name from information_schema.columns "
        "where table_schema = %s and table_name = %s",
        (LANDING_SCHEMA, name),
    )
    existing = {row[0] for row in cursor.fetchall()}
    missing = [column for column in columns if column not in existing]
    _ensure_loaded_at_default(cursor, table, name)
    if missing:
        cursor.execute(
            sql.SQL("alter table {} {}").format(
                table,
                sql.SQL(", ").join(
                    sql.SQL("add column {} {}").format(
                        sql.Identifier(column), sql.SQL(columns[column])
                    )
                    for column in missing
                ),
            )
        )
    _ensure_index(cursor, table, f"{name}__window", (WINDOW_START, WINDOW_END))
    # dbt's incremental builds read the rows landed since their last build, and its key tests
    # the newest load's (max(_loaded_at), which only a B-tree answers without a scan). The
    # rows of a load share one _loaded_at, appended at the index's right edge: cheap to keep.
    # An index of that name of another kind is replaced by a B-tree.
    cursor.execute(
        "select am.amname from pg_index i join pg_class c on c.oid = i.indexrelid"
        " join pg_am am on am.oid = c.relam"
        " where c.relname = %s and c.relnamespace = %s::regnamespace",
        (f"{name}__loaded_at", LANDING_SCHEMA),
    )
    found = cursor.fetchone()
    if found is not None and found[0] != "btree":
        cursor.execute(
            sql.SQL("drop index {}").format(sql.Identifier(LANDING_SCHEMA, f"{name}__loaded_at"))
        )
    _ensure_index(cursor, table, f"{name}__loaded_at", (LOADED_AT,))
    # A module that may deliver a record more than once is deduplicated in the warehouse by
    # key: each build ranks every landed delivery of the keys it brought, found by this index
    # (not by reading all of history). At-most-once telemetry, taken as delivered, has none.
    if module.delivery != "at-most-once":
        _ensure_index(cursor, table, f"{name}__key", entity.key)
    # The key tests of staging check that no landed row lacks its key. A partial index of
    # just the rows without one stays empty and costs the load nothing but the check, and
    # answers those tests at once instead of by reading every new row (millions an hour).
    for column in entity.key:
        _ensure_index(cursor, table, f"{name}__{column}_missing", (column,), missing=column)
    return f"{LANDING_SCHEMA}.{name}"


def _ensure_loaded_at_default(cursor: Any, table: sql.Identifier, name: str) -> None:
    """A table whose ``_loaded_at`` default is not the statement's time (``now()`` is the
    transaction's start, before the load holds its lock) gets it; altered only then, as a
    table's default is altered under an exclusive lock."""
    cursor.execute(
        "select pg_get_expr(d.adbin, d.adrelid) from pg_attrdef d"
        " join pg_attribute a on a.attrelid = d.adrelid and a.attnum = d.adnum"
        " where d.adrelid = %s::regclass and a.attname = %s",
        (f"{LANDING_SCHEMA}.{name}", LOADED_AT),
    )
    found = cursor.fetchone()
    if found is None or found[0] != LOADED_AT_DEFAULT:
        cursor.execute(
            sql.SQL("alter table {} alter column {} set default {}").format(
                table, sql.Identifier(LOADED_AT), sql.SQL(LOADED_AT_DEFAULT)
            )
        )


def _ensure_index(
    cursor: Any,
    table: sql.Composable,
    name: str,
    columns: Sequence[str],
    *,
    missing: str | None = None,
) -> None:
    """A B-tree index on ``columns`` unless one of that name exists; ``missing``: only of the
    rows where that column is null (a partial index)."""
    cursor.execute(
        sql.SQL("create index if not exists {} on {} ({}){}").format(
            sql.Identifier(name),
            table,
            sql.SQL(", ").join(sql.Identifier(column) for column in columns),
            sql.SQL(" where {} is null").format(sql.Identifier(missing))
            if missing is not None
            else sql.SQL(""),
        )
    )


def _table_name(module: str, entity: str) -> str:
    return f"{module}__{entity}"


# -- loading --------------------------------------------------------------------------------


def load_window(
    conn: WarehouseConnection,
    lake: Lake,
    module: Module | str,
    entity: Entity | str,
    window: Window,
    *,
    batch_rows: int = BATCH_ROWS,
    copy_format: CopyFormat = "auto",
) -> LoadResult:
    """Replace the landing rows of one window of one entity with the lake's normalized rows.

    Only a window the lake gate approved is loaded, and only if its object matches its
    manifest (``approved_manifest``). Runs in one transaction of its own (a savepoint if
    ``conn`` is already in one, and the caller then commits). It holds the window's lease
    (``window_lock_key``), so a concurrent load, gate or replay of the window waits. The
    landing table must exist (``ensure_landing_tables``).

    ``copy_format``: ``binary`` (PostgreSQL parses it faster than CSV), ``csv``,
    or ``auto``: binary unless a column has a type only CSV carries (``numeric``).
    """
    started = time.perf_counter()
    module_, entity_ = _resolve(module, entity)
    path = lake.path(Zone.NORMALIZED, module_.name, entity_.name, window)
    source = lake.uri(path)
    table = sql.Identifier(LANDING_SCHEMA, _table_name(module_.name, entity_.name))
    expected = landing_columns(entity_)
    with conn.transaction(), conn.cursor() as cursor:
        # The window's lease first: a publish of a new version waits, so the manifest
        # checked here still describes the object read below.
        cursor.execute(
            "select pg_advisory_xact_lock(hashtextextended(%s, 0))",
            (window_lock_key(module_.name, entity_.name, window),),
        )
        manifest = approved_manifest(lake, module_, entity_, window)
        _refuse_overlaps(cursor, landing_table(module_.name, entity_.name), window)
        with closing(lake.fs.open_input_file(path)) as handle:
            parquet = pq.ParquetFile(handle)
            columns = _columns_to_load(parquet.schema_arrow, expected, source)
            types = {c: expected[c] for c in columns}
            binary_ready = all(t in _BINARY for t in types.values())
            if copy_format == "binary" and not binary_ready:
                unfit = sorted({t for t in types.values() if t not in _BINARY})
                raise ValueError(f"binary COPY cannot carry {', '.join(unfit)}: use csv or auto")
            binary = copy_format == "binary" or (copy_format == "auto" and binary_ready)
            copy = sql.SQL("copy {} ({}) from stdin (format {})").format(
                table,
                sql.SQL(", ").join(sql.Identifier(c) for c in columns),
                sql.SQL("binary" if binary else "csv"),
            )
            # Before the COPY stamps its rows (see LOADED_AT): waits for a build reading
            # the table, and holds back the next one until this load commits.
            cursor.execute(sql.SQL("lock table {} in row exclusive mode").format(table))
            cursor.execute(
                sql.SQL("delete from {} where {} = %s and {} = %s").format(
                    table, sql.Identifier(WINDOW_START), sql.Identifier(WINDOW_END)
                ),
                (window.start, window.end),
            )
            replaced = cursor.rowcount
            chunks = _chunks(parquet, types, batch_rows, binary=binary)
            with _session_zone(cursor, "UTC"):
                with cursor.copy(copy) as stream:
                    for chunk in _in_background(chunks, _PREFETCH_DEPTH):
                        stream.write(chunk)
                loaded = cursor.rowcount
            if not loaded == parquet.metadata.num_rows == manifest["landed"]:
                raise RuntimeError(
                    f"{source}: copied {loaded} rows but the object holds "
                    f"{parquet.metadata.num_rows} and its manifest {manifest['landed']}; "
                    "the load was rolled back"
                )
            cursor.execute(
                f"insert into {LOADS_LEDGER} (table_name, window_start, window_end,"
                " lake_version, checksum, rows) values (%s, %s, %s, %s, %s, %s)"
                " on conflict (table_name, window_start, window_end) do update set"
                " lake_version = excluded.lake_version, checksum = excluded.checksum,"
                " rows = excluded.rows, loaded_at = excluded.loaded_at",
                (
                    landing_table(module_.name, entity_.name),
                    window.start,
                    window.end,
                    manifest.get("version"),
                    manifest["checksums"][Zone.NORMALIZED.value],
                    loaded,
                ),
            )
    return LoadResult(
        module=module_.name,
        entity=entity_.name,
        window=window,
        table=landing_table(module_.name, entity_.name),
        source=source,
        rows=loaded,
        replaced=replaced,
        seconds=time.perf_counter() - started,
    )


def _refuse_overlaps(cursor: Any, table: str, window: Window) -> None:
    cursor.execute(
        f"select window_start, window_end from {LOADS_LEDGER} where table_name = %s"
        " and window_start < %s and window_end > %s"
        " and (window_start, window_end) <> (%s, %s) order by 1 limit 3",
        (table, window.end, window.start, window.start, window.end),
    )
    overlapping = [str(Window(start, end)) for start, end in cursor.fetchall()]
    if overlapping:
        raise OverlappingWindowError(
            f"{table}: window {window} overlaps the loaded window(s) {', '.join(overlapping)}; "
            "its rows would count twice. Load the module's scheduled windows (the DAGs split "
            "a range into them), the same windows that were loaded before"
        )


def load_windows(
    conn: WarehouseConnection,
    lake: Lake,
    module: Module | str,
    window: Window,
    entities: Sequence[Entity | str] | None = None,
    *,
    atomic: bool = False,
) -> list[LoadResult]:
    """Load one window of several entities of a module (by default all of them).

    Each entity commits on its own unless ``atomic``, where all of them commit together
    or not at all.
    """
    module_ = get_module(module) if isinstance(module, str) else module
    chosen = list(entities) if entities is not None else list(module_.entities)
    if not atomic:
        return [load_window(conn, lake, module_, entity, window) for entity in chosen]
    with conn.transaction(), conn.cursor() as cursor:
        # All its tables at once, in the order builds lock them (by name), so that a load
        # and a build waiting for each other's tables cannot deadlock.
        names = sorted(_table_name(module_.name, _resolve(module_, e)[1].name) for e in chosen)
        cursor.execute(
            sql.SQL("lock table {} in row exclusive mode").format(
                sql.SQL(", ").join(sql.Identifier(LANDING_SCHEMA, name) for name in names)
            )
        )
        return [load_window(conn, lake, module_, entity, window) for entity in chosen]


def _resolve(module: Module | str, entity: Entity | str) -> tuple[Module, Entity]:
    module_ = get_module(module) if isinstance(module, str) else module
    entity_ = module_.entity(entity) if isinstance(entity, str) else entity
    return module_, entity_


@contextmanager
def _session_zone(cursor: Any, zone: str) -> Iterator[None]:
    """The session's time zone for this transaction: zoneless CSV timestamps are read in it."""
    previous = cursor.execute("select current_setting('timezone')").fetchone()[0]
    cursor.execute("select set_config('timezone', %s, true)", (zone,))
    yield
    cursor.execute("select set_config('timezone', %s, true)", (previous,))


def _columns_to_load(schema: pa.Schema, expected: dict[str, str], source: str) -> list[str]:
    """The object's columns in table order; a column the object lacks stays null."""
    unknown = [name for name in schema.names if name not in expected]
    if unknown:
        raise LandingSchemaError(
            f"{source} has columns the landing table does not: {', '.join(unknown)}; "
            "add them to the source table and run ensure_landing_tables"
        )
    missing_lineage = [c for c in (WINDOW_START, WINDOW_END) if c not in schema.names]
    if missing_lineage:
        raise LandingSchemaError(f"{source} lacks the lineage columns {missing_lineage}")
    return [name for name in expected if name in schema.names]


def _chunks(
    parquet: pq.ParquetFile, types: dict[str, str], batch_rows: int, *, binary: bool
) -> Iterator[bytes]:
    """The object as COPY data, one chunk per Arrow batch."""
    if binary:
        yield _BINARY_HEADER
    json_columns = [c for c, t in types.items() if t == "jsonb"]
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=list(types)):
        yield _render_binary(batch, types) if binary else _render_csv(batch, json_columns)
    if binary:
        yield _BINARY_TRAILER


def _render_binary(batch: pa.RecordBatch, types: dict[str, str]) -> bytes:
    """One batch as tuples of PostgreSQL's binary COPY format, assembled with NumPy.

    Each tuple is a big-endian int16 field count, then per field an int32 length (-1 for
    null) and the value: integers and floats big-endian, timestamps as microseconds since
    2000-01-01 UTC, text as UTF-8, jsonb as a version byte 1 and JSON text. Every column is
    placed with one vectorized scatter into the batch's buffer, never a Python loop over rows.
    """
    rows = batch.num_rows
    if rows == 0:
        return b""
    fields = [_binary_field(batch.column(name), pg_type) for name, pg_type in types.items()]
    row_bytes = np.full(rows, 2, dtype=np.int64)
    for field in fields:
        row_bytes += 4 + field.lengths
    starts = np.zeros(rows, dtype=np.int64)
    np.cumsum(row_bytes[:-1], out=starts[1:])
    out = np.empty(int(starts[-1] + row_bytes[-1]), dtype=np.uint8)
    _scatter(out, starts, np.full(rows, len(fields), dtype=">i2"))
    at = starts + 2
    for field in fields:
        _scatter(out, at, np.where(field.valid, field.lengths, -1).astype(">i4"))
        at += 4
        field.write(out, at)
        at += field.lengths
    return out.tobytes()


@dataclass
class _BinaryField:
    valid: npt.NDArray[np.bool_]
    lengths: npt.NDArray[np.int64]  # bytes of each value in the tuple, 0 for null
    fixed: npt.NDArray[Any] | None = None  # big-endian values, for fixed-width types
    data: npt.NDArray[np.uint8] | None = None  # concatenated UTF-8, for text
    offsets: npt.NDArray[np.int64] | None = None  # start of each value in ``data``
    prefix: int = 0  # bytes before the text (jsonb's version byte)

    def write(self, out: npt.NDArray[np.uint8], at: npt.NDArray[np.int64]) -> None:
        where = at[self.valid]
        if self.fixed is not None:
            _scatter(out, where, self.fixed[self.valid])
            return
        if self.data is None or self.offsets is None:
            raise TypeError("a variable-width field needs its data and offsets")
        if self.prefix:
            out[where] = 1  # jsonb format version
        lengths = self.lengths[self.valid] - self.prefix
        total = int(lengths.sum())
        if total == 0:
            return
        ends = np.cumsum(lengths)
        # byte j of the concatenated values belongs to value k where ends[k-1] <= j < ends[k]
        shift = np.repeat(where + self.prefix - (ends - lengths), lengths)
        source_shift = np.repeat(self.offsets[self.valid] - (ends - lengths), lengths)
        positions = np.arange(total, dtype=np.int64)
        if source_shift[0] == source_shift[-1] and np.all(source_shift == source_shift[0]):
            first = int(source_shift[0])
            out[positions + shift] = self.data[first : first + total]
        else:
            out[positions + shift] = self.data[positions + source_shift]


_PG_EPOCH = np.datetime64("2000-01-01T00:00:00", "us")
_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8  # signature, flags, extension length
_BINARY_TRAILER = b"\xff\xff"  # a field count of -1
_FIXED_WIDTH: dict[str, str] = {
    "bigint": ">i8",
    "integer": ">i4",
    "smallint": ">i2",
    "double precision": ">f8",
    "real": ">f4",
    "boolean": "u1",
    "timestamptz": ">i8",
    "timestamp": ">i8",
    "date": ">i4",
}
_BINARY = frozenset({*_FIXED_WIDTH, "text", "jsonb"})


def _binary_field(column: pa.Array, pg_type: str) -> _BinaryField:
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    if pg_type in _FIXED_WIDTH:
        dtype = np.dtype(_FIXED_WIDTH[pg_type])
        if pg_type in ("timestamptz", "timestamp"):
            stamps = column.cast(pa.timestamp("us")).fill_null(0).to_numpy(zero_copy_only=False)
            values = (stamps - _PG_EPOCH).astype(np.int64)
        elif pg_type == "date":
            values = (
                (column.fill_null(0).to_numpy(zero_copy_only=False) - _PG_EPOCH)
                .astype("timedelta64[D]")
                .astype(np.int64)
            )
        else:
            values = column.fill_null(0).to_numpy(zero_copy_only=False)
        fixed = values.astype(dtype)
        lengths = np.where(valid, dtype.itemsize, 0).astype(np.int64)
        return _BinaryField(valid, lengths, fixed=fixed)
    prefix = 0
    if pg_type == "jsonb":
        column = pl.Series(column).struct.json_encode().to_arrow()
        prefix = 1
    text = column.cast(pa.large_string())
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int64)[
        text.offset : text.offset + len(text) + 1
    ]
    data_buffer = text.buffers()[2]
    data = (
        np.frombuffer(data_buffer, dtype=np.uint8)
        if data_buffer is not None
        else np.empty(0, np.uint8)
    )
    lengths = np.where(valid, np.diff(offsets) + prefix, 0).astype(np.int64)
    return _BinaryField(
        valid, lengths, data=data, offsets=offsets[:-1].astype(np.int64), prefix=prefix
    )


def _scatter(
    out: npt.NDArray[np.uint8], at: npt.NDArray[np.int64], values: npt.NDArray[Any]
) -> None:
    """Write each fixed-width value's bytes at its offset of ``out``."""
    width = values.dtype.itemsize
    raw = np.ascontiguousarray(values).view(np.uint8).reshape(len(values), width)
    out[at[:, None] + np.arange(width)] = raw


def _render_csv(batch: pa.RecordBatch, json_columns: Sequence[str]) -> bytes:
    """One batch as COPY-ready CSV: nested columns as JSON text, instants as UTC wall time.

    Arrow formats a zoned timestamp through the time-zone database, value by value, at a
    fifth of the speed of a zoneless one; the load reads zoneless text in a UTC session.
    """
    columns: list[pa.Array] = []
    for field, column in zip(batch.schema, batch.columns, strict=True):
        if field.name in json_columns:
            column = pl.Series(field.name, column).struct.json_encode().to_arrow()
        elif pa.types.is_timestamp(field.type) and field.type.tz is not None:
            column = column.cast(pa.timestamp(field.type.unit))
        columns.append(column)
    sink = io.BytesIO()
    pacsv.write_csv(pa.RecordBatch.from_arrays(columns, names=batch.schema.names), sink, _CSV)
    return sink.getvalue()


def _in_background(items: Iterator[bytes], depth: int) -> Iterator[bytes]:
    """Produce the next items on a thread while the caller consumes this one.

    Arrow's Parquet reader and CSV writer release the GIL, so rendering overlaps the
    copy on the wire. An error on the producing side is raised here, in order; when the
    consumer stops early the producer is told to stop.
    """
    queue: Queue[bytes | BaseException | None] = Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: bytes | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.2)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(None)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)

    thread = threading.Thread(target=produce, name="warehouse-render", daemon=True)
    thread.start()
    try:
        while (item := queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while True:  # unblock a producer waiting on a full queue
            try:
                queue.get_nowait()
            except Empty:
                break
        thread.join(timeout=10)
