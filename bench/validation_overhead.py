"""Validation overhead: the lake gate against the ingest stage it guards, one big window.

    .venv/bin/python bench/validation_overhead.py                 # 1,000,000 records
    .venv/bin/python bench/validation_overhead.py --records 200000

One observatory window, pre-rendered by the simulator (its work is excluded), is staged
with ``ingest_window`` (NDJSON, the DAG's path); then the gate the ``validate_<entity>``
task runs (``quality.gate.validate_window``) audits and publishes it, three ways:

1. *start-up*: importing Great Expectations and building the context with every suite,
   paid once per worker process (never at DAG parse time);
2. *clean*: the version as staged: every expectation passes; the gate also checksums the
   objects and publishes them over the (empty) current version;
3. *quarantine*: the window staged again (not timed) with 0.1 % of its rows broken, so
   the gate also moves them to the dead-letter zone, rewrites the version's normalized
   object and manifest, and publishes it over the clean one.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import polars as pl
import pyarrow.parquet as pq

WINDOW_START = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
TOKEN = "sim-observatory-token"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()

    from analytics_hub.connectors import Endpoint, ModuleClient
    from analytics_hub.fx import FxRates
    from analytics_hub.ingest import ingest_window
    from analytics_hub.lake import Lake, Zone
    from analytics_hub.settings import load_settings
    from analytics_hub.sources import OBSERVATORY
    from analytics_hub.windows import Window
    from simulators import SimulatorConfig, SimulatorProcess

    entity = OBSERVATORY.entity("metrics")
    window = Window(WINDOW_START, WINDOW_START + timedelta(hours=1))
    config = SimulatorConfig(seed=11, volume={"observatory": args.records})
    with tempfile.TemporaryDirectory() as root, SimulatorProcess(config) as sim:
        httpx.post(
            f"{sim.url}/_sim/prerender",
            params={"module": "observatory", "entity": "metrics", **window.query()},
            timeout=3600,
        ).raise_for_status()
        settings = load_settings(lake_url=f"{root}/lake", page_limit=10_000)
        lake = Lake.from_settings(settings)
        endpoint = Endpoint(f"{sim.url}/observatory", TOKEN)
        rates = FxRates.load()
        with ModuleClient(OBSERVATORY, endpoint, settings) as client:
            started = time.perf_counter()
            manifest = ingest_window(
                OBSERVATORY,
                entity,
                window,
                client=client,
                lake=lake,
                rates=rates,
                pseudonym_key=None,
            )
            ingest_seconds = time.perf_counter() - started
            again = ingest_window(  # the version for the quarantine run
                OBSERVATORY,
                entity,
                window,
                client=client,
                lake=lake,
                rates=rates,
                pseudonym_key=None,
            )

        started = time.perf_counter()
        from analytics_hub.quality.gate import validate_window
        from analytics_hub.quality.store import open_store
        from analytics_hub.settings import load_gate_settings, quality_url

        gate = load_gate_settings()
        store = open_store(quality_url(settings, gate), settings, f"{root}/work")
        store.context(gate.data_docs_results_limit)
        startup_seconds = time.perf_counter() - started

        def validate(version: str) -> tuple[float, str, int]:
            started = time.perf_counter()
            result = validate_window(
                OBSERVATORY,
                entity,
                window,
                lake=lake,
                store=store,
                settings=gate,
                version=version,
            )
            return time.perf_counter() - started, result.status, result.quarantined

        clean = validate(manifest.version)
        path = lake.staged_path(Zone.NORMALIZED, "observatory", "metrics", window, again.version)
        table = pq.read_table(path, filesystem=lake.fs)
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        broken = frame.with_columns(
            pl.when(pl.int_range(pl.len()) % 1000 == 7)
            .then(pl.lit("unknown"))
            .otherwise(pl.col("status"))
            .alias("status")
        )
        with lake.parquet_writer(path, table.schema) as out:
            out.write_table(broken.to_arrow().cast(table.schema))
        quarantine = validate(again.version)
        docs = Path(store.docs_index)

    rows = manifest.landed
    print(f"\nwindow: {rows:,} observatory metrics landed (pulled {manifest.pulled:,})\n")
    print(f"{'stage':<34}{'seconds':>9}{'rows/s':>12}{'vs ingest':>14}")
    lines = [
        ("ingest (pull, normalize, stage)", ingest_seconds, ""),
        ("gate start-up (import, context)", startup_seconds, "once/process"),
        (f"gate, clean ({clean[1]})", clean[0], ""),
        (f"gate, {quarantine[2]:,} rows quarantined", quarantine[0], ""),
    ]
    for name, seconds, note in lines:
        rate = "-" if note else f"{rows / seconds:,.0f}"
        share = note or f"{seconds / ingest_seconds:.0%}"
        print(f"{name:<34}{seconds:>9.2f}{rate:>12}{share:>14}")
    print(f"\nData Docs were at {docs} (a temporary folder, removed)")


if __name__ == "__main__":
    main()
