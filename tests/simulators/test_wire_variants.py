"""Every variant the contract lists shows up at chaos 0: the mess is not chaos, it is always mixed."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from simulator_helpers import WINDOW, auth, pull_pages
from starlette.testclient import TestClient

from simulators.render import render_times

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
ISO_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$")
ISO_LOCAL = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?$")


def time_format(value: object) -> str:
    if isinstance(value, bool):
        return "bad"
    if isinstance(value, float):
        return "epoch_s_float"
    if isinstance(value, int):
        return "epoch_ms" if value >= 1e11 else "epoch_s"
    text = str(value)
    for name, pattern in (("iso_z", ISO_Z), ("iso_offset", ISO_OFFSET), ("iso_local", ISO_LOCAL)):
        if pattern.match(text):
            return name + ("_fraction" if "." in text else "")
    return "bad"


def pull(client: TestClient, module: str, path: str) -> list[dict[str, Any]]:
    return pull_pages(client, f"/{module}/api/v1/{path}", WINDOW, module, limit=10_000)[0]


def test_all_variants_occur_without_chaos(make_client: Callable[..., TestClient]) -> None:
    client = make_client(
        seed=21,
        volume={
            "observatory": 2000,
            "registry": 300,
            "sentinel": 300,
            "costops": 300,
            "marketplace": 300,
        },
    )
    metrics = pull(client, "observatory", "metrics")
    assert {time_format(r["timestamp"]) for r in metrics} == {
        "iso_z",
        "iso_z_fraction",
        "iso_offset_fraction",
        "iso_local_fraction",
        "epoch_s",
        "epoch_s_float",
        "epoch_ms",
    }
    assert all(ISO_Z.match(r.get("ingested_at") or r["ingestedAt"]) for r in metrics)
    envelopes = {frozenset(r) for r in metrics}
    snake = {
        "event_id",
        "timestamp",
        "ingested_at",
        "source_module",
        "event_type",
        "schema_version",
    }
    camel = {"eventId", "timestamp", "ingestedAt", "source", "eventType", "version"}
    assert any(snake <= keys for keys in envelopes)
    assert any(camel <= keys for keys in envelopes)
    for record in metrics:
        version = record.get("schema_version") or record["version"]
        assert ("schema_version" in record) == (version == "1.4.0")
        assert ("model" in record["data"]) == (version == "2.0.0")
    payload_keys = set().union(*(r["data"] for r in metrics))
    for prefix in ("total_latency", "ttft"):
        assert {f"{prefix}_{s}" for s in ("ms", "s", "us", "ns")} <= payload_keys
    assert {
        "response_bytes",
        "response_size_kb",
        "response_size_kib",
        "response_size_mb",
    } <= payload_keys
    assert any(isinstance(r["data"]["input_tokens"], str) for r in metrics)
    assert any(isinstance(r["data"].get("total_latency_ms"), str) for r in metrics)
    assert all(sum(k.startswith("total_latency") for k in r["data"]) == 1 for r in metrics)

    events = pull(client, "registry", "events")
    assert {"asset_id", "asset_uid"} <= set().union(*(r["data"] for r in events))
    security = pull(client, "sentinel", "security-events")
    assert {"threat_level", "risk_level"} <= set().union(*(r["data"] for r in security))
    evaluations = pull(client, "policy", "evaluations")
    assert all("eventId" in r and "ingestedAt" in r for r in evaluations)

    costs = pull(client, "costops", "cost-data")
    assert {"cost_record_id", "record_id"} <= set().union(*(r["data"] for r in costs))
    assert {r["data"]["cost_unit"] for r in costs} == {"USD", "cents", "micro-USD", "EUR", "GBP"}
    assert {r["data"]["record_version"] for r in costs} >= {1, 2}
    assert "iso_local_fraction" in {time_format(r["data"]["usage_start"]) for r in costs}
    revenue = pull(client, "marketplace", "revenue")
    assert {r["data"]["currency"] for r in revenue} == {"USD", "EUR", "GBP"}
    assert {r["data"].get("amount_unit", "absent") for r in revenue} == {"major", "minor", "absent"}
    assert any(isinstance(r["data"]["amount"], str) for r in revenue)


def test_new_york_local_times_are_never_ambiguous_or_nonexistent() -> None:
    new_york = ZoneInfo("America/New_York")
    # Across the 2026 fall-back (Nov 1, 01:00-02:00 happens twice) and spring-forward (Mar 8).
    fall = int(datetime(2026, 11, 1, 4, tzinfo=UTC).timestamp() * 1e6)
    spring = int(datetime(2026, 3, 8, 6, tzinfo=UTC).timestamp() * 1e6)
    times = np.concatenate(
        [
            fall + np.arange(0, 4 * 3600, 7) * 1_000_000,
            spring + np.arange(0, 3 * 3600, 7) * 1_000_000,
        ]
    )
    rendered = render_times(
        times.astype(np.int64),
        np.full(len(times), 3),
        np.zeros(len(times), dtype=np.int64),
        "America/New_York",
    )
    zoneless = 0
    for value, expected_us in zip(rendered, times.tolist(), strict=True):
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            zoneless += 1
            first = moment.replace(tzinfo=new_york, fold=0)
            assert first.utcoffset() == moment.replace(tzinfo=new_york, fold=1).utcoffset(), value
            assert first.astimezone(UTC) == moment.replace(tzinfo=new_york).astimezone(UTC)
            assert int(first.timestamp() * 1e6) == expected_us
        else:
            assert int(moment.timestamp() * 1e6) == expected_us
    assert 0 < zoneless < len(times)


def test_usage_fan_out_returns_only_that_extension(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    extensions = client.get("/marketplace/api/v1/extensions", headers=auth("marketplace")).json()[
        "data"
    ]
    for extension in extensions[:3]:
        path = f"/marketplace/api/v1/extensions/{extension['extension_id']}/usage"
        usage = pull_pages(client, path, WINDOW, "marketplace")[0]
        assert {u["data"]["extension_id"] for u in usage} == {extension["extension_id"]}
