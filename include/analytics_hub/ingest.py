"""Ingest one window of one entity: pull → normalize → stage, page by page, with a manifest.

The window lands as a staged version of its own (``Lake.staged_path``): the lake gate
audits it and publishes it over the current version only if it passes, so a bad pull
never costs the data the hub already had.

Memory stays flat in the size of the window: each page (or NDJSON chunk) is parsed,
normalized and written as its own row group before the next is pulled. Every record
pulled ends in exactly one place: landed, dead-lettered, or dropped as an exact
redelivery; the manifest counts each and the batch fails if they do not balance.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from queue import Full, Queue
from typing import Any
from urllib.parse import quote

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from analytics_hub import parse
from analytics_hub.connectors import BadPageError, ModuleClient
from analytics_hub.fx import FxRates
from analytics_hub.lake import Lake, Zone, new_version
from analytics_hub.normalize import ROW, UTC_TS, normalize, output_schema
from analytics_hub.sources import Entity, Module, both_casings
from analytics_hub.windows import Window

NDJSON_CHUNK_BYTES = 32 * 1024 * 1024  # ~50k records: below that, per-batch overhead shows

RAW_SCHEMA = pa.schema([("page", pa.int32()), ("path", pa.string()), ("body", pa.binary())])
# A page body is one multi-megabyte value: dictionary encoding and min/max statistics only
# cost time there, and lz4 keeps up with the network where zstd would not.
RAW_WRITER_OPTIONS = {"compression": "lz4", "use_dictionary": False, "write_statistics": False}
# module and entity are the partition keys of the dead-letter zone, not columns
DEADLETTER_COLUMNS: dict[str, pl.DataType] = {
    "window_start": UTC_TS,
    "window_end": UTC_TS,
    "page": pl.Int32(),
    "row": pl.Int64(),
    "record_id": pl.String(),
    "reason_code": pl.String(),
    "reason": pl.String(),
    "raw_record": pl.String(),
}
LINEAGE_COLUMNS: dict[str, pl.DataType] = {"_window_start": UTC_TS, "_window_end": UTC_TS}


class BalanceError(RuntimeError):
    """Pulled records do not equal landed + dead-lettered + deduplicated."""


@dataclass
class Manifest:
    module: str
    entity: str
    window_start: str
    window_end: str
    version: str = ""  # the staged version these counts describe
    pulled: int = 0
    landed: int = 0
    dead_lettered: int = 0
    deduplicated: int = 0
    pages: int = 0
    bytes_received: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)  # by first reason
    dead_letter_faults: dict[str, int] = field(default_factory=dict)  # every code:field
    bad_pages: list[dict[str, Any]] = field(default_factory=list)  # pages that ended the pull
    objects: dict[str, str] = field(default_factory=dict)  # where each is once published
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return self.pulled == self.landed + self.dead_lettered + self.deduplicated

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"balanced": self.balanced}


def normalized_schema(entity: Entity) -> pa.Schema:
    return _arrow_schema(dict(output_schema(entity)) | LINEAGE_COLUMNS)


def deadletter_schema() -> pa.Schema:
    return _arrow_schema(DEADLETTER_COLUMNS)


def _arrow_schema(columns: dict[str, pl.DataType]) -> pa.Schema:
    return pl.DataFrame(schema=columns).to_arrow().schema


@dataclass
class _Batch:
    number: int
    body: bytes
    path: str
    ndjson: bool
    parent_id: str | None = None  # the id in a fan-out batch's path


class _Redeliveries:
    """Exact redeliveries (same key) within the window, for modules that redeliver."""

    def __init__(self, entity: Entity, module: Module):
        self.key = list(entity.key)
        self.enabled = module.delivery != "at-most-once"
        self.seen: set[str] = set()

    def drop(self, rows: pl.DataFrame) -> pl.DataFrame:
        if not self.enabled or rows.is_empty():
            return rows
        keys = rows.select(
            pl.concat_str([pl.col(k).cast(pl.String) for k in self.key], separator="\x1f")
        ).to_series()
        fresh: list[bool] = []
        for key in keys:  # in order, so a page's own repeats count as redeliveries too
            fresh.append(key not in self.seen)
            self.seen.add(key)
        return rows.filter(pl.Series(fresh, dtype=pl.Boolean))


def _batches(client: ModuleClient, entity: Entity, window: Window, bulk: bool) -> Iterator[_Batch]:
    if bulk and entity.bulk_path:
        for number, chunk in enumerate(
            client.stream_lines(entity.bulk_path, window, NDJSON_CHUNK_BYTES)
        ):
            yield _Batch(number, chunk, entity.bulk_path, ndjson=True)
        return
    if entity.fan_out is None:
        for page in client.pages(entity.path, window):
            yield _Batch(page.number, page.body, page.path, ndjson=False)
        return
    parent = entity.fan_out
    ids = client.list_ids(
        parent.parent_path,
        both_casings((parent.parent_key,)),
        window if parent.parent_windowed else None,
    )
    number = 0
    for parent_id in ids:
        path = entity.path.format(id=quote(parent_id, safe=""))
        for page in client.pages(path, window if entity.windowed else None):
            yield _Batch(number, page.body, page.path, ndjson=False, parent_id=parent_id)
            number += 1


class _BackgroundWrites:
    """Compress and write the previous batch on a thread while the next one is normalized.

    One worker keeps each file's row groups in order; waiting for the previous batch
    before handing over the next bounds memory to two batches.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-write")
        self._pending: Future[None] | None = None

    def write(self, *items: tuple[pq.ParquetWriter, pa.Table]) -> None:
        self.wait()

        def write_all() -> None:
            for writer, table in items:
                if table.num_rows:
                    writer.write_table(table)

        self._pending = self._pool.submit(write_all)

    def wait(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def __enter__(self) -> _BackgroundWrites:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)


class _StageClock:
    """Wall time per stage of a batch loop, for the manifest and the benchmark."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self.totals[stage] = self.totals.get(stage, 0.0) + elapsed

    def rounded(self) -> dict[str, float]:
        return {stage: round(seconds, 3) for stage, seconds in self.totals.items()}


def _prefetched(batches: Iterator[_Batch], depth: int = 2) -> Iterator[_Batch]:
    """Receive the next batches on a thread while this one is processed.

    Receiving waits on the network and Polars and Arrow release the GIL, so the two
    overlap on separate cores. An error on the receiving side is raised here, in order.
    """
    queue: Queue[_Batch | BaseException | None] = Queue(maxsize=depth)
    stop = threading.Event()

    def receive() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        queue.put(batch, timeout=0.5)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put(None)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            queue.put(exc)

    thread = threading.Thread(target=receive, name="ingest-receive", daemon=True)
    thread.start()
    try:
        while (item := queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def ingest_window(
    module: Module,
    entity: Entity,
    window: Window,
    *,
    client: ModuleClient,
    lake: Lake,
    rates: FxRates,
    pseudonym_key: bytes | None,
    bulk: bool = True,
    version: str | None = None,
) -> Manifest:
    """Stage one window of one entity in the lake and return its manifest.

    The objects go to a new staged version (``version``, by default a fresh name), never
    over the current one: re-running a window stages it again, and only the gate's
    publish replaces what the lake had.
    """
    started = time.perf_counter()
    bounds = window.query()
    version = version or new_version()
    manifest = Manifest(module.name, entity.name, bounds["from"], bounds["to"], version)
    paths = {
        zone: lake.staged_path(zone, module.name, entity.name, window, version) for zone in Zone
    }
    redeliveries = _Redeliveries(entity, module)
    lineage = {"_window_start": window.start, "_window_end": window.end}
    good_schema, dead_schema = normalized_schema(entity), deadletter_schema()
    reasons: dict[str, int] = {}
    faults: dict[str, int] = {}
    clock = _StageClock()
    bad_page: BadPageError | None = None

    with (
        lake.parquet_writer(paths[Zone.RAW], RAW_SCHEMA, **RAW_WRITER_OPTIONS) as raw_out,
        lake.parquet_writer(paths[Zone.NORMALIZED], good_schema) as good_out,
        lake.parquet_writer(paths[Zone.DEADLETTER], dead_schema) as dead_out,
        _BackgroundWrites() as background,
    ):
        batches = _prefetched(_batches(client, entity, window, bulk))
        while True:
            with clock("receive"):  # time spent waiting for the next batch
                try:
                    batch = next(batches, None)
                except BadPageError as bad:
                    bad_page = bad
                    break
            if batch is None:
                break
            manifest.pages += 1
            manifest.bytes_received += len(batch.body)
            with clock("parse"):
                if batch.ndjson:
                    parsed = parse.read_ndjson(batch.body, entity)
                else:
                    parsed = parse.read_page(batch.body, entity)
            records = parsed.records
            manifest.pulled += parsed.entries
            with clock("normalize"):
                result = normalize(
                    records,
                    module,
                    entity,
                    rates=rates,
                    pseudonym_key=pseudonym_key,
                    local_timezone=client.endpoint.local_timezone,
                    parent_id=batch.parent_id,
                )
                rows = redeliveries.drop(result.rows)
            manifest.deduplicated += result.rows.height - rows.height
            manifest.landed += rows.height
            rejects = pl.concat([result.rejects, parsed.faults.cast(result.rejects.schema)])
            manifest.dead_lettered += rejects.height

            with clock("write"):
                raw = pa.table(
                    {"page": [batch.number], "path": [batch.path], "body": [batch.body]},
                    RAW_SCHEMA,
                )
                good = rows.drop(ROW).with_columns(
                    pl.lit(value).cast(UTC_TS).alias(name) for name, value in lineage.items()
                )
                background.write((raw_out, raw), (good_out, good.to_arrow().cast(good_schema)))
                if rejects.height:
                    dead = _dead_letters(rejects, records, batch, entity, window)
                    for code, count in dead.group_by("reason_code").len().iter_rows():
                        reasons[code] = reasons.get(code, 0) + count
                    for fault, count in fault_counts(dead).items():
                        faults[fault] = faults.get(fault, 0) + count
                    dead_out.write_table(dead.to_arrow().cast(dead_schema))

        if bad_page is not None:
            background.wait()
            _keep_bad_page(bad_page, window, raw_out, dead_out, dead_schema)
            manifest.bad_pages.append(
                {"page": bad_page.page, "path": bad_page.path, "cause": bad_page.cause}
            )
            manifest.bytes_received += len(bad_page.body)
        manifest.dead_letter_reasons = dict(sorted(reasons.items()))
        manifest.dead_letter_faults = dict(sorted(faults.items()))
        manifest.objects = {
            zone.value: lake.uri(lake.path(zone, module.name, entity.name, window)) for zone in Zone
        }
        manifest.seconds = round(time.perf_counter() - started, 3)
        manifest.stage_seconds = clock.rounded()
        if not manifest.balanced and bad_page is None:
            raise BalanceError(
                f"{module.name}/{entity.name} {window}: pulled {manifest.pulled} != landed "
                f"{manifest.landed} + dead-lettered {manifest.dead_lettered} + deduplicated "
                f"{manifest.deduplicated}; nothing of this window was published"
            )
    lake.write_json(paths[Zone.MANIFESTS], manifest.to_dict() | {"landed_at": _now()})
    if bad_page is not None:
        raise BadPageError(
            f"{bad_page}. The page is kept as a page-level dead letter of the staged version "
            f"{version} ({lake.uri(paths[Zone.MANIFESTS].rsplit('/', 1)[0])}); the lake's "
            "current version is unchanged",
            page=bad_page.page,
            path=bad_page.path,
            body=bad_page.body,
            cause=bad_page.cause,
        ) from bad_page
    return manifest


def _keep_bad_page(
    bad: BadPageError,
    window: Window,
    raw_out: pq.ParquetWriter,
    dead_out: pq.ParquetWriter,
    dead_schema: pa.Schema,
) -> None:
    """A page that ends the pull is data too: its bytes in the raw zone, and one
    page-level dead letter (no row, no record id) that names the page and the cause."""
    raw_out.write_table(
        pa.table({"page": [bad.page], "path": [bad.path], "body": [bad.body]}, RAW_SCHEMA)
    )
    letter = {
        "window_start": [window.start],
        "window_end": [window.end],
        "page": [bad.page],
        "row": [None],
        "record_id": [None],
        "reason_code": ["bad_page"],
        "reason": [f"bad_page:{bad.cause}"],
        "raw_record": [bad.body.decode("utf-8", "replace")],
    }
    dead_out.write_table(pa.table(letter).cast(dead_schema))


def fault_counts(dead: pl.DataFrame) -> dict[str, int]:
    """How many dead letters name each fault (``code:field``) among their reasons."""
    faults = dead.select(pl.col("reason").str.split(";").explode().alias("fault"))
    return dict(sorted(faults.group_by("fault").len().iter_rows()))


def _dead_letters(
    rejects: pl.DataFrame,
    records: pl.DataFrame,
    batch: _Batch,
    entity: Entity,
    window: Window,
) -> pl.DataFrame:
    raw = parse.raw_records(batch.body, ndjson=batch.ndjson)
    ids = _record_ids(records, entity, batch.parent_id)
    return (
        rejects.join(ids, on=ROW, how="left")
        .with_columns(raw.gather(rejects[ROW]).alias("raw_record"))
        .select(
            pl.lit(window.start).cast(UTC_TS).alias("window_start"),
            pl.lit(window.end).cast(UTC_TS).alias("window_end"),
            pl.lit(batch.number, dtype=pl.Int32).alias("page"),
            pl.col(ROW).cast(pl.Int64).alias("row"),
            pl.col("record_id"),
            pl.col("reason_code"),
            pl.col("reason"),
            pl.col("raw_record"),
        )
    )


def _record_ids(records: pl.DataFrame, entity: Entity, parent_id: str | None) -> pl.DataFrame:
    """The wire value of the record's id, for finding a rejected record again."""
    key = next(f for f in entity.all_fields if f.name == entity.record_id_field)
    present = set(records.columns)
    data_fields: set[str] = set()
    if "data" in present and isinstance(records.schema["data"], pl.Struct):
        data_fields = {f.name for f in records.schema["data"].fields}
    candidates = [
        pl.col(name)
        if (key.in_envelope or not entity.time_series)
        else pl.col("data").struct.field(name)
        for name in key.wire_names
        if name in (present if (key.in_envelope or not entity.time_series) else data_fields)
    ]
    if parent_id is not None and entity.fan_out and entity.fan_out.child_field == key.name:
        candidates.append(pl.lit(parent_id, dtype=pl.String))
    record_id = pl.coalesce(candidates) if candidates else pl.lit(None, dtype=pl.String)
    return records.select(pl.col(ROW), record_id.alias("record_id"))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
