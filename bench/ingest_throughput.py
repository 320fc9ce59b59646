"""Ingest throughput: the hub's pull → normalize → land path against a pandas baseline.

    .venv/bin/python bench/ingest_throughput.py               # 2,000,000 records
    .venv/bin/python bench/ingest_throughput.py --records 500000

One run, the same simulator and the same records for every contender:

1. the simulator pre-renders the window (its work is excluded from every figure);
2. *fetch only*: pull every page and discard it: the simulator's + HTTP's share;
3. *hub (paged)* and *hub (ndjson)*: ``ingest_window``, the very function the DAG calls;
4. *baseline*: the same pages through pandas ``json_normalize`` → per-column fixes →
   ``to_parquet``.

Each contender runs in its own process so that its peak RSS is its own; the hub also runs
on a quarter of the window to show that memory stays flat as the window grows.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

WINDOW_START = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
TOKEN = "sim-observatory-token"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _client(url: str) -> Any:
    from analytics_hub.connectors import Endpoint, ModuleClient
    from analytics_hub.settings import load_settings
    from analytics_hub.sources import OBSERVATORY

    settings = load_settings(page_limit=10_000)
    return ModuleClient(OBSERVATORY, Endpoint(f"{url}/observatory", TOKEN), settings)


def _window(minutes: int) -> Any:
    """The simulator spreads a module's hourly volume evenly over the hour."""
    from analytics_hub.windows import Window

    return Window(WINDOW_START, WINDOW_START + timedelta(minutes=minutes))


def fetch_only(url: str, minutes: int) -> dict[str, Any]:
    window = _window(minutes)
    started = time.perf_counter()
    received = pages = 0
    with _client(url) as client:
        for page in client.pages("/api/v1/metrics", window):
            received += len(page.body)
            pages += 1
    return {"seconds": time.perf_counter() - started, "bytes": received, "pages": pages}


def hub(url: str, minutes: int, bulk: bool) -> dict[str, Any]:
    from analytics_hub.fx import FxRates
    from analytics_hub.ingest import ingest_window
    from analytics_hub.lake import Lake
    from analytics_hub.settings import load_settings
    from analytics_hub.sources import OBSERVATORY

    with tempfile.TemporaryDirectory() as lake_dir, _client(url) as client:
        lake = Lake.from_settings(load_settings(lake_url=lake_dir))
        started = time.perf_counter()
        manifest = ingest_window(
            OBSERVATORY,
            OBSERVATORY.entity("metrics"),
            _window(minutes),
            client=client,
            lake=lake,
            rates=FxRates.load(),
            pseudonym_key=None,
            bulk=bulk,
        )
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "records": manifest.pulled,
        "landed": manifest.landed,
        "dead_lettered": manifest.dead_lettered,
        "peak_rss_mb": _peak_rss_mb(),
    }


def baseline(url: str, minutes: int) -> dict[str, Any]:
    """The plain way: json_normalize each page, fix columns one by one, to_parquet."""
    import numpy as np
    import orjson
    import pandas as pd

    pulled = 0
    with tempfile.TemporaryDirectory() as out, _client(url) as client:
        started = time.perf_counter()
        for page in client.pages("/api/v1/metrics", _window(minutes)):
            frame = pd.json_normalize(orjson.loads(page.body)["data"])
            pulled += len(frame)
            frame.columns = [c.removeprefix("data.") for c in frame.columns]
            for camel, snake in [
                ("eventId", "event_id"),
                ("eventType", "event_type"),
                ("ingestedAt", "ingested_at"),
                ("source", "source_module"),
                ("version", "schema_version"),
                ("model", "model_id"),
            ]:
                if camel in frame:
                    frame[snake] = frame.get(snake, pd.Series(index=frame.index)).fillna(
                        frame.pop(camel)
                    )
            stamp = frame["timestamp"]
            numeric = pd.to_numeric(stamp, errors="coerce")
            text = pd.to_datetime(
                stamp.where(numeric.isna()), utc=True, errors="coerce", format="ISO8601"
            )
            epoch = pd.to_datetime(
                np.where(numeric < 1e11, numeric * 1e3, numeric),
                unit="ms",
                utc=True,
                errors="coerce",
            )
            frame["event_time"] = text.fillna(pd.Series(epoch, index=frame.index))
            frame["ingested_at"] = pd.to_datetime(frame["ingested_at"], utc=True, format="ISO8601")
            latency = pd.Series(np.nan, index=frame.index)
            for suffix, factor in [("ms", 1.0), ("s", 1e3), ("us", 1e-3), ("ns", 1e-6)]:
                for prefix, target in [("total_latency", "latency_ms"), ("ttft", "ttft_ms")]:
                    column = f"{prefix}_{suffix}"
                    if column in frame:
                        values = pd.to_numeric(frame.pop(column), errors="coerce") * factor
                        frame[target] = frame.get(target, latency).fillna(values)
            size = pd.Series(np.nan, index=frame.index)
            for column, factor in [
                ("response_bytes", 1),
                ("response_size_kb", 1e3),
                ("response_size_kib", 1024),
                ("response_size_mb", 1e6),
            ]:
                if column in frame:
                    size = size.fillna(pd.to_numeric(frame.pop(column), errors="coerce") * factor)
            frame["response_bytes"] = size.round().astype("Int64")
            for column in ("input_tokens", "output_tokens"):
                frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
            frame["tags"] = frame.filter(like="tags.").astype(str).agg("|".join, axis=1)
            frame = frame.drop(columns=[c for c in frame.columns if c.startswith("tags.")])
            frame.drop(columns=["timestamp"]).to_parquet(f"{out}/{page.number:05d}.parquet")
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "records": pulled, "peak_rss_mb": _peak_rss_mb()}


CONTENDERS = {
    "fetch": fetch_only,
    "hub_paged": lambda u, r: hub(u, r, bulk=False),
    "hub_ndjson": lambda u, r: hub(u, r, bulk=True),
    "baseline": baseline,
}


def run_isolated(name: str, url: str, minutes: int = 60) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, __file__, "--worker", name, "--url", url, "--minutes", str(minutes)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument("--worker", choices=sorted(CONTENDERS))
    parser.add_argument("--url")
    parser.add_argument("--minutes", type=int, default=60, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(CONTENDERS[args.worker](args.url, args.minutes)))
        return

    from simulators import SimulatorConfig, SimulatorProcess

    config = SimulatorConfig(seed=11, volume={"observatory": args.records})
    with SimulatorProcess(config) as sim:
        window = _window(60)
        started = time.perf_counter()
        httpx.post(
            f"{sim.url}/_sim/prerender",
            params={
                "module": "observatory",
                "entity": "metrics",
                **window.query(),
                "limit": 10_000,
            },
            timeout=3600,
        ).raise_for_status()
        print(
            f"simulator pre-rendered {args.records:,} records in "
            f"{time.perf_counter() - started:.1f} s (excluded from every figure)"
        )
        results = {name: run_isolated(name, sim.url) for name in CONTENDERS}
        quarter = run_isolated("hub_ndjson", sim.url, minutes=15)

    fetch = results["fetch"]
    print(
        f"\nwindow: {args.records:,} observatory records, "
        f"{fetch['bytes'] / 1e6:,.0f} MB of JSON in {fetch['pages']} pages\n"
    )
    print(
        f"{'contender':<14}{'seconds':>9}{'records/s':>12}{'peak RSS MB':>13}{'sim+HTTP share':>16}"
    )
    for name in ("hub_ndjson", "hub_paged", "baseline"):
        r = results[name]
        share = fetch["seconds"] / r["seconds"]
        print(
            f"{name:<14}{r['seconds']:>9.2f}{r['records'] / r['seconds']:>12,.0f}"
            f"{r['peak_rss_mb']:>13,.0f}{share:>15.0%}"
        )
    print(
        f"{'fetch only':<14}{fetch['seconds']:>9.2f}"
        f"{args.records / fetch['seconds']:>12,.0f}{'':>13}{'100%':>16}"
    )
    best = max(
        ("hub_ndjson", "hub_paged"), key=lambda n: results[n]["records"] / results[n]["seconds"]
    )
    ratio = results["baseline"]["seconds"] / results[best]["seconds"]
    print(f"\nhub ({best}) vs baseline: {ratio:.1f}x faster")
    print(
        f"memory: hub_ndjson peak RSS {quarter['peak_rss_mb']:,.0f} MB for a quarter of the "
        f"window vs {results['hub_ndjson']['peak_rss_mb']:,.0f} MB for all of it"
    )


if __name__ == "__main__":
    main()
