"""Every variant the contract allows shows up at chaos 0: the mess is not chaos, it is always mixed.

Casing per record and per field, time spellings, optional fields left out, values carried
only by the envelope's tags or by the fan-out path, empty windows of sparse streams, and
pages whose records come in no particular order.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pytest
from simulator_helpers import WINDOW, auth, pull_pages
from starlette.testclient import TestClient
from wire_reader import (
    FROM_PATH,
    REQUIRED,
    TAGS,
    camel,
    parse_time,
    spec_of,
    wire_names,
)

from simulators import MODULES, SimulatorConfig, compute_truth, create_app
from simulators.render import ZONE_LOCAL, TimeVariants, render_times
from simulators.specs import MODULE_SPECS

ISO = re.compile(
    r"^\d{4}-\d\d-\d\d(?P<sep>[Tt ])\d\d:\d\d:\d\d(?:\.(?P<fraction>\d+))?"
    r"(?P<zone>Z|z|[+-]\d\d:\d\d|[+-]\d\d\d\d|[+-]\d\d)?$"
)
VOLUME = {
    "observatory": 2000,
    "policy": 300,
    "registry": 300,
    "sentinel": 300,
    "costops": 300,
    "marketplace": 300,
}
ENTITIES = [(m, e.name) for m in MODULES for e in MODULE_SPECS[m].entities]
# Two days: enough changes of the small state populations (10 budgets, 20 extensions).
LONG_WINDOW = {"from": "2026-03-10T00:00:00Z", "to": "2026-03-12T00:00:00Z"}


def time_spelling(value: object) -> tuple[str, ...]:
    """('epoch_s' | 'epoch_s_float' | 'epoch_ms',) or ('iso', separator, digits, zone form)."""
    if isinstance(value, float):
        return ("epoch_s_float",)
    if isinstance(value, int) and not isinstance(value, bool):
        return ("epoch_ms",) if value >= 1e11 else ("epoch_s",)
    match = ISO.match(str(value))
    assert match, value
    zone = match["zone"] or "none"
    if zone[0] in "+-":
        zone = {6: "+hh:mm", 5: "+hhmm", 3: "+hh"}[len(zone)]
    return ("iso", match["sep"], str(len(match["fraction"] or "")), zone)


def pull(
    client: TestClient, module: str, path: str, window: dict[str, str] = WINDOW
) -> list[dict[str, Any]]:
    return pull_pages(client, f"/{module}/api/v1/{path}", window, module, limit=10_000)[0]


def payload(record: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = record.get("data", record)
    return data


@pytest.fixture(scope="module")
def calm() -> Iterator[TestClient]:
    with TestClient(create_app(SimulatorConfig(seed=21, volume=VOLUME))) as client:
        yield client


def test_every_time_spelling_occurs(calm: TestClient) -> None:
    metrics = pull(calm, "observatory", "metrics")
    spellings = Counter(time_spelling(r["timestamp"]) for r in metrics)
    forms = {s[0] for s in spellings}
    assert forms == {"iso", "epoch_s", "epoch_s_float", "epoch_ms"}
    iso = [s for s in spellings if s[0] == "iso"]
    assert {s[1] for s in iso} == {"T", " ", "t"}
    assert {int(s[2]) for s in iso} == set(range(10))
    assert {s[3] for s in iso} == {"Z", "z", "+hh:mm", "+hhmm", "+hh", "none"}
    # e.g. the RFC 3339 space separator without fraction or zone: `2026-03-10 10:00:00`
    assert ("iso", " ", "0", "none") in spellings
    # ingested_at: always ISO, T, milliseconds, Z.
    ingested = {r.get("ingested_at") or r["ingestedAt"] for r in metrics}
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", t) for t in ingested)
    costs = pull(calm, "costops", "cost-data")
    starts = {
        time_spelling(r["data"].get("usage_start", r["data"].get("usageStart"))) for r in costs
    }
    assert ("iso", "T", "0", "none") in starts  # New York wall time, whole hour


def test_every_time_reads_back_to_the_same_instant() -> None:
    """Each spelling of a time, whatever the zone or the digits drawn, is exact."""
    rng = np.random.default_rng(3)
    start = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp()) * 1_000_000
    times = start + rng.integers(0, 400 * 86_400_000, 20_000) * 1000
    times[::3] -= times[::3] % 1_000_000  # whole seconds
    times[::7] -= times[::7] % 3_600_000_000  # whole hours
    for zone in ("UTC", "America/New_York"):
        rendered = render_times(times, TimeVariants.draw(rng, len(times)), zone)
        back = [parse_time(value, zone) for value in rendered]
        expected = [
            datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(t)) for t in times
        ]
        assert back == expected


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
    ).astype(np.int64)
    rendered = render_times(
        times, TimeVariants.fixed(len(times), zone=ZONE_LOCAL), "America/New_York"
    )
    zoneless = 0
    for value, expected_us in zip(rendered, times.tolist(), strict=True):
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            zoneless += 1
            first = moment.replace(tzinfo=new_york, fold=0)
            assert first.utcoffset() == moment.replace(tzinfo=new_york, fold=1).utcoffset(), value
            assert int(first.timestamp() * 1e6) == expected_us
        else:
            assert int(moment.timestamp() * 1e6) == expected_us
    assert 0 < zoneless < len(times)


def _spellings(records: list[dict[str, Any]], module: str, entity: str, name: str) -> set[str]:
    names = wire_names(spec_of(module, entity).field(name))
    return {key for r in records for key in payload(r) if key in names}


def test_payload_and_state_fields_come_in_both_casings_mixed_within_a_page(
    calm: TestClient,
) -> None:
    page = orjson.loads(
        calm.get(
            "/observatory/api/v1/metrics",
            params={**WINDOW, "limit": 500},
            headers=auth("observatory"),
        ).content
    )["data"]
    for name in ("request_id", "asset_id", "input_tokens", "output_tokens", "status"):
        spelled = _spellings(page, "observatory", "metrics", name)
        assert {name, camel(name)} <= spelled, name
    families = _spellings(page, "observatory", "metrics", "latency_ms")
    assert {"total_latency_ms", "totalLatencyMs", "total_latency_ns", "totalLatencyNs"} <= families
    assert {"responseSizeKib", "response_size_kib", "responseBytes"} <= _spellings(
        page, "observatory", "metrics", "response_bytes"
    )
    keys = [set(r["data"]) for r in page]
    assert any("inputTokens" in k and "output_tokens" in k for k in keys)  # mixed in one record
    assert any(k >= {"requestId", "inputTokens"} for k in keys)
    assert any(k >= {"request_id", "input_tokens"} for k in keys)

    renamed = {
        ("registry", "events", "asset_id"): {"asset_id", "assetId", "asset_uid", "assetUid"},
        ("sentinel", "security-events", "threat_level"): {"riskLevel", "risk_level", "threatLevel"},
        ("costops", "cost-data", "cost_record_id"): {"recordId", "costRecordId", "record_id"},
        ("costops", "cost-data", "usage_start"): {"usageStart", "usage_start"},
        ("policy", "evaluations", "duration_ms"): {"durationMs", "duration_ms", "durationUs"},
    }
    for (module, entity, name), expected in renamed.items():
        records = pull(calm, module, MODULE_SPECS[module].entity(entity).path.rsplit("/", 1)[1])
        assert expected <= _spellings(records, module, entity, name), name

    for module, path, name in (
        ("registry", "assets", "asset_id"),
        ("marketplace", "extensions", "extension_id"),
        ("costops", "budgets", "alert_threshold_percent"),
    ):
        # The current state listing (the fan-out's parent: it follows the wall clock, so
        # only the parents, whose listings are large) and a window of changes.
        if path != "budgets":
            listing = pull_pages(calm, f"/{module}/api/v1/{path}", {}, module)[0]
            assert {name, camel(name)} <= _spellings(listing, module, path, name), path
        changes = pull(calm, module, path, LONG_WINDOW)
        assert {name, camel(name)} <= _spellings(changes, module, path, name), path


def test_observatory_values_travel_in_the_envelope_tags(calm: TestClient) -> None:
    metrics = pull(calm, "observatory", "metrics")
    for name in ("region", "service", "model_id"):
        in_data = [
            bool(set(wire_names(spec_of("observatory", "metrics").field(name))) & set(r["data"]))
            for r in metrics
        ]
        in_tags = [name in r.get("tags", {}) for r in metrics]
        placements = Counter(zip(in_data, in_tags, strict=True))
        assert placements[(False, True)] > 0, name  # only in the tags
        assert placements[(True, True)] > 0 and placements[(True, False)] > 0, name
        # Nowhere: an optional field left out; the required model_id never (at chaos 0).
        assert (placements[(False, False)] > 0) == (name != "model_id"), name
    assert any("tags" not in r for r in metrics) or any(r["tags"] == {} for r in metrics)


@pytest.mark.parametrize(("module", "entity"), ENTITIES)
def test_optional_fields_are_sometimes_absent_required_ones_never(
    calm: TestClient, module: str, entity: str
) -> None:
    spec = MODULE_SPECS[module].entity(entity)
    path = spec.path.rsplit("/", 1)[1]
    window = LONG_WINDOW if spec.kind == "state" else WINDOW
    if spec.partition is not None:
        records = [
            r
            for extension in _extension_ids(calm)
            for r in pull_pages(
                calm, f"/{module}/api/v1/extensions/{extension}/usage", window, module
            )[0]
        ]
    else:
        records = pull(calm, module, path, window)
    tags = TAGS.get((module, entity), {})
    for field in spec.fields:
        names = set(wire_names(field))
        sent = [
            bool(names & set(payload(r)))
            or (field.name in r.get("tags", {}) and field.name in tags)
            for r in records
        ]
        if (
            field.name in REQUIRED[(module, entity)]
            and FROM_PATH.get((module, entity)) != field.name
        ):
            assert all(sent), field.name
        else:
            assert 0 < sum(sent) < len(sent), field.name


def _extension_ids(client: TestClient) -> list[str]:
    listing = pull_pages(client, "/marketplace/api/v1/extensions", {}, "marketplace")[0]
    return [r.get("extension_id") or r["extensionId"] for r in listing]


def test_fan_out_children_may_leave_out_their_parent_id(calm: TestClient) -> None:
    extensions = _extension_ids(calm)
    assert len(extensions) == 20
    without = with_id = 0
    for extension in extensions[:5]:
        usage = pull_pages(
            calm, f"/marketplace/api/v1/extensions/{extension}/usage", WINDOW, "marketplace"
        )[0]
        for record in usage:
            sent = record["data"].get("extension_id", record["data"].get("extensionId"))
            assert sent in (None, extension)
            without += sent is None
            with_id += sent is not None
    assert without and with_id

    assets = pull_pages(calm, "/registry/api/v1/assets", {}, "registry")[0]
    versions = [
        v
        for asset in assets[:10]
        for v in pull_pages(
            calm,
            f"/registry/api/v1/assets/{asset.get('asset_id') or asset['assetId']}/versions",
            {},
            "registry",
        )[0]
    ]
    keys = Counter(k for v in versions for k in v)
    assert keys["asset_id"] + keys["assetId"] < len(versions)  # sometimes left out
    assert keys["asset_id"] and keys["assetId"] and keys["publishedAt"] and keys["published_at"]
    assert keys["version"] == len(versions)
    assert 0 < keys["updated_at"] + keys["updatedAt"] < len(versions)  # optional
    # Which statuses exist follows the wall clock (staged lasts 3 days); that some
    # version leaves the optional status out does not.
    statuses = {v.get("status") for v in versions}
    assert None in statuses and statuses - {None} <= {"staged", "production", "retired"}


SPARSE_NIGHTS = [f"2026-03-{day:02d}" for day in range(1, 15)]
# The windows the hub's integration tests (and these) expect data in, with their seeds.
BUSY_WINDOWS = [
    (5, "2026-11-25T10:00:00Z", "2026-11-25T12:00:00Z"),  # integration: ingest against truth
    (8, "2026-11-23T10:00:00Z", "2026-11-23T12:00:00Z"),  # integration: warehouse against truth
    (21, "2026-11-24T06:00:00Z", "2026-11-24T08:00:00Z"),  # integration: ingest DAGs
    (11, "2026-11-25T10:00:00Z", "2026-11-25T11:00:00Z"),  # quality: lake gate
    (12, "2026-11-25T10:00:00Z", "2026-11-25T11:00:00Z"),  # quality: replay
    (5, "2026-03-10T10:00:00Z", "2026-03-10T14:00:00Z"),  # these tests
    (21, "2026-03-10T10:00:00Z", "2026-03-10T14:00:00Z"),
]


def test_sparse_streams_have_empty_windows_at_night(calm: TestClient) -> None:
    for day in SPARSE_NIGHTS:
        night = {"from": f"{day}T00:00:00Z", "to": f"{day}T04:00:00Z"}
        response = calm.get("/policy/api/v1/audit-trail", params=night, headers=auth("policy"))
        assert orjson.loads(response.content)["data"] == [], day
        assert pull(calm, "policy", "audit-trail", {**night, "to": f"{day}T05:00:00Z"})
    for module, path in (
        ("registry", "events"),
        ("registry", "assets"),
        ("marketplace", "extensions"),
        ("costops", "budgets"),
    ):
        hours = []
        for day in SPARSE_NIGHTS[:4]:
            midnight = datetime.fromisoformat(f"{day}T00:00:00+00:00")
            for hour in range(24):
                begin, end = (midnight + timedelta(hours=hour + h) for h in (0, 1))
                window = {"from": begin.isoformat(), "to": end.isoformat()}
                hours.append(len(pull(calm, module, path, window)))
        quiet = [n == 0 for n in hours]
        assert any(quiet), path
        assert not any(quiet[h] for h in range(len(hours)) if h % 24 >= 6), path


@pytest.mark.parametrize(("seed", "start", "end"), BUSY_WINDOWS)
def test_daytime_windows_have_data_in_every_entity(seed: int, start: str, end: str) -> None:
    config = SimulatorConfig(seed=seed, chaos=0.3)
    begin, finish = (datetime.fromisoformat(t) for t in (start, end))
    for module, entity in ENTITIES:
        assert compute_truth(config, module, entity, begin, finish)["valid"] > 0, (module, entity)


def test_records_within_a_page_come_in_no_particular_order(
    make_client: Callable[..., TestClient],
) -> None:
    params: dict[str, Any] = {**WINDOW, "limit": 300}
    pages = [
        make_client(seed=4, volume={"observatory": 2000}).get(
            "/observatory/api/v1/metrics", params=params, headers=auth("observatory")
        )
        for _ in range(2)
    ]
    assert pages[0].content == pages[1].content  # a re-pull is byte-identical
    page = orjson.loads(pages[0].content)["data"]
    ingested = [r.get("ingested_at") or r["ingestedAt"] for r in page]
    assert ingested != sorted(ingested)
