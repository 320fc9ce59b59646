"""Warehouse load throughput: ``load_window`` against raw COPY and pandas ``to_sql``.

    .venv/bin/python bench/load_throughput.py                  # 2,000,000 rows
    .venv/bin/python bench/load_throughput.py --rows 1000000 --repeat 3

One run, one private PostgreSQL cluster (durability off, as in the tests), one landing
table (``landing.observatory__metrics``, with its window index) and the same rows for
every contender:

1. the script generates observatory-like normalized rows with NumPy/Polars and stages
   them in a local lake as one window (row groups of 50k rows, as ingestion writes them),
   with a pull's manifest; the lake gate audits and publishes it (``Pipeline.audit``), as
   the load takes only a window the gate approved (not timed);
2. *raw COPY*: the same rows pre-rendered to a CSV file (rendering excluded) and streamed
   through ``COPY FROM STDIN``: the ceiling, no conversion cost at all;
3. *raw binary COPY*: the same, pre-rendered in PostgreSQL's binary COPY format;
4. *load_window*: the hub's load, Parquet → Arrow → binary COPY (its default for this
   entity), the delete of the window and the check of the object against its manifest
   (SHA-256) included: into an empty window, then again replacing it; and once more
   forced to CSV;
5. *to_sql*: pandas ``DataFrame.to_sql`` (SQLAlchemy + psycopg, ``method=None``,
   ``chunksize=10000``) on a subset, the common way.

The table is truncated before each contender; each runs ``--repeat`` times, best kept.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import psycopg

from analytics_hub import warehouse
from analytics_hub.ingest import Manifest, normalized_schema
from analytics_hub.lake import APPROVED, Lake, Zone, new_version
from analytics_hub.pipeline import Pipeline
from analytics_hub.settings import load_gate_settings, load_settings
from analytics_hub.sources import OBSERVATORY, TAG_KEYS
from analytics_hub.windows import Window
from hub_dev.postgres import PrivatePostgres

WINDOW = Window(datetime(2026, 11, 25, 0, tzinfo=UTC), datetime(2026, 11, 25, 1, tzinfo=UTC))
METRICS = OBSERVATORY.entity("metrics")
TABLE = warehouse.landing_table("observatory", "metrics")
ROW_GROUP_ROWS = 50_000
COPY_CHUNK_BYTES = 8 * 1024 * 1024
CEILING = "raw COPY (pre-rendered CSV)"
HUB = "load_window (binary COPY)"


def observatory_rows(n: int, seed: int = 11) -> pl.DataFrame:
    """Normalized observatory metrics that look like the simulator's: ids, skewed numbers."""
    rng = np.random.default_rng(seed)
    start_us = int(WINDOW.start.timestamp() * 1_000_000)
    ingested = np.sort(rng.integers(0, 3_600_000_000, n)) + start_us
    event = ingested - rng.exponential(2_000_000, n).astype(np.int64)
    regions = np.array(["us-east-1", "us-west-2", "eu-west-1", "ap-south-1"])
    models = np.array(["gpt-4o", "claude-3-5", "llama-3-70b", "mistral-large", "gemini-1.5"])
    services = np.array(["chat", "search", "agent", "batch"])
    pick = rng.integers
    ok = rng.random(n) > 0.03
    frame = pl.DataFrame(
        {
            "event_id": "obs-" + pl.Series(rng.integers(0, 2**62, n)).cast(pl.String),
            "event_time": pl.Series(event).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
            "ingested_at": pl.Series(ingested).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
            "source_module": "llm-observatory",
            "event_type": "request.completed",
            "schema_version": "2.1",
            "event_severity": np.where(ok, "info", "error"),
            "environment": "production",
            "region": regions[pick(0, len(regions), n)],
            "model_id": models[pick(0, len(models), n)],
            "service": services[pick(0, len(services), n)],
            "team": np.array(["core", "growth", "ml"])[pick(0, 3, n)],
            "request_id": "req-" + pl.Series(rng.integers(0, 2**62, n)).cast(pl.String),
            "asset_id": "reg-asset-" + pl.Series(pick(0, 500, n)).cast(pl.String),
            "latency_ms": rng.lognormal(6, 0.8, n).round(3),
            "ttft_ms": np.where(rng.random(n) < 0.1, np.nan, rng.lognormal(4.5, 0.6, n).round(3)),
            "input_tokens": pick(1, 8_000, n),
            "output_tokens": pick(1, 2_000, n),
            "status": np.where(ok, "ok", "error"),
            "error_code": pl.Series(np.where(ok, "", "upstream_timeout")).replace("", None),
            "response_bytes": pick(200, 200_000, n),
        }
    )
    tags = pl.struct(
        [
            pl.col(k)
            if k in ("region", "model_id", "service", "team")
            else pl.lit(None, pl.String).alias(k)
            for k in TAG_KEYS
        ]
    ).alias("tags")
    frame = frame.with_columns(tags, pl.col("ttft_ms").fill_nan(None)).with_columns(
        pl.lit(WINDOW.start).cast(pl.Datetime("us", "UTC")).alias("_window_start"),
        pl.lit(WINDOW.end).cast(pl.Datetime("us", "UTC")).alias("_window_end"),
    )
    return frame.select(normalized_schema(METRICS).names)


def land(pipeline: Pipeline, rows: pl.DataFrame) -> str:
    """Stage the rows as a version of the window, with the manifest of a pull that landed
    them all, and have the lake gate audit and publish it; the published object's path."""
    lake, version = pipeline.lake, new_version()
    schema = normalized_schema(METRICS)
    table = rows.select(schema.names).to_arrow().cast(schema)
    staged = lake.staged_path(Zone.NORMALIZED, "observatory", "metrics", WINDOW, version)
    with lake.parquet_writer(staged, schema) as writer:
        for offset in range(0, table.num_rows, ROW_GROUP_ROWS):
            writer.write_table(table.slice(offset, ROW_GROUP_ROWS))
    bounds = WINDOW.query()
    count = table.num_rows
    manifest = Manifest(
        "observatory", "metrics", bounds["from"], bounds["to"], version, pulled=count, landed=count
    )
    lake.write_json(
        lake.staged_path(Zone.MANIFESTS, "observatory", "metrics", WINDOW, version),
        manifest.to_dict(),
    )
    result = pipeline.audit(OBSERVATORY, METRICS, WINDOW, version)
    if result.status not in APPROVED or result.quarantined:
        raise RuntimeError(f"the lake gate did not keep every generated row: {result.summary()}")
    return lake.path(Zone.NORMALIZED, "observatory", "metrics", WINDOW)


def pre_render(path: str, target: Path, *, binary: bool) -> list[str]:
    """The window as COPY reads it (CSV or binary), written to ``target`` ahead of the clock."""
    types = warehouse.landing_columns(METRICS)
    parquet = warehouse.pq.ParquetFile(path)
    with target.open("wb") as out:
        for chunk in warehouse._chunks(parquet, types, warehouse.BATCH_ROWS, binary=binary):
            out.write(chunk)
    return list(types)


def truncate(conn: psycopg.Connection[Any]) -> None:
    conn.execute(f"truncate {TABLE}")
    conn.commit()
    conn.execute("checkpoint")
    conn.commit()


def raw_copy(conn: psycopg.Connection[Any], data: Path, columns: list[str], fmt: str) -> int:
    statement = f"copy {TABLE} ({', '.join(columns)}) from stdin (format {fmt})"
    with conn.transaction(), conn.cursor() as cursor:
        # zoneless CSV timestamps are UTC, as in load_window
        cursor.execute("select set_config('timezone', 'UTC', true)")
        with data.open("rb") as source, cursor.copy(statement) as stream:
            while chunk := source.read(COPY_CHUNK_BYTES):
                stream.write(chunk)
        return cursor.rowcount


def hub_load(
    conn: psycopg.Connection[Any], lake: Lake, batch_rows: int, fmt: warehouse.CopyFormat
) -> int:
    result = warehouse.load_window(
        conn, lake, OBSERVATORY, METRICS, WINDOW, batch_rows=batch_rows, copy_format=fmt
    )
    return result.rows


def pandas_to_sql(url: str, rows: pl.DataFrame) -> int:
    from sqlalchemy import create_engine
    from sqlalchemy.dialects.postgresql import JSONB

    frame = rows.with_columns(pl.col("tags").struct.json_encode()).to_pandas()
    frame["tags"] = frame["tags"].map(json.loads, na_action="ignore")
    engine = create_engine(url)
    try:
        frame.to_sql(
            "observatory__metrics",
            engine,
            schema="landing",
            if_exists="append",
            index=False,
            method=None,
            chunksize=10_000,
            dtype={"tags": JSONB},
        )
    finally:
        engine.dispose()
    return len(frame)


def best(runs: int, prepare: Callable[[], None], contender: Callable[[], int]) -> tuple[int, float]:
    timings: list[float] = []
    rows = 0
    for _ in range(runs):
        prepare()
        started = time.perf_counter()
        rows = contender()
        timings.append(time.perf_counter() - started)
    return rows, min(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--to-sql-rows", type=int, default=100_000)
    parser.add_argument("--batch-rows", type=int, default=warehouse.BATCH_ROWS)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    batch = args.batch_rows

    work = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    work.chmod(0o755)  # PostgreSQL runs as an unprivileged account when we are root
    try:
        with PrivatePostgres(work / "pg") as pg:
            pg.create_database("bench")
            pipeline = Pipeline.from_settings(
                load_settings(lake_url=str(work / "lake")),
                load_gate_settings(work_dir=str(work / "quality-work")),
                pseudonym_key=b"bench",  # observatory metrics have no personal fields
            )
            lake: Lake = pipeline.lake
            started = time.perf_counter()
            rows = observatory_rows(args.rows)
            path = land(pipeline, rows)
            csv_file, binary_file = work / "window.csv", work / "window.copy"
            columns = pre_render(path, csv_file, binary=False)
            pre_render(path, binary_file, binary=True)
            print(
                f"generated and audited {args.rows:,} rows in "
                f"{time.perf_counter() - started:.1f} s: "
                f"Parquet {Path(path).stat().st_size / 1e6:.0f} MB, "
                f"CSV {csv_file.stat().st_size / 1e6:.0f} MB, "
                f"binary COPY {binary_file.stat().st_size / 1e6:.0f} MB"
            )
            subset = rows.head(args.to_sql_rows)
            del rows
            with psycopg.connect(pg.dsn("bench")) as conn:
                warehouse.ensure_landing_tables(conn, [OBSERVATORY])

                def empty() -> None:
                    truncate(conn)

                results = {
                    CEILING: best(
                        args.repeat, empty, lambda: raw_copy(conn, csv_file, columns, "csv")
                    ),
                    "raw COPY (pre-rendered binary)": best(
                        args.repeat, empty, lambda: raw_copy(conn, binary_file, columns, "binary")
                    ),
                    HUB: best(args.repeat, empty, lambda: hub_load(conn, lake, batch, "auto")),
                    "load_window, replacing the window": best(
                        args.repeat, lambda: None, lambda: hub_load(conn, lake, batch, "auto")
                    ),
                    "load_window, CSV COPY": best(
                        args.repeat, empty, lambda: hub_load(conn, lake, batch, "csv")
                    ),
                    f"pandas to_sql ({args.to_sql_rows:,} rows)": best(
                        1, empty, lambda: pandas_to_sql(pg.sqlalchemy_url("bench"), subset)
                    ),
                }
                truncate(conn)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rates = {name: rows / seconds for name, (rows, seconds) in results.items()}
    ceiling = rates[CEILING]
    to_sql = next(rate for name, rate in rates.items() if name.startswith("pandas"))
    print(f"\n{'contender':<36} {'rows':>11} {'seconds':>8} {'rows/s':>11} {'vs COPY':>8}")
    for name, (count, seconds) in results.items():
        print(
            f"{name:<36} {count:>11,} {seconds:>8.2f} {rates[name]:>11,.0f} "
            f"{rates[name] / ceiling:>8.0%}"
        )
    hub = rates[HUB]
    print(
        f"\nload_window: {hub / ceiling:.0%} of raw CSV COPY (target >= 70 %), "
        f"{hub / rates['raw COPY (pre-rendered binary)']:.0%} of raw binary COPY, "
        f"{hub / to_sql:.1f}x pandas to_sql (target >= 10x)"
    )


if __name__ == "__main__":
    main()
