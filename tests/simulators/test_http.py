"""The HTTP surface: auth, validation, paging, NDJSON, faults, feed receivers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from itertools import pairwise
from typing import Any

import httpx
import orjson
from fastapi import FastAPI
from simulator_helpers import WINDOW, auth, pull_pages
from starlette.testclient import TestClient

from simulators import SimulatorConfig, SimulatorProcess, create_app

METRICS = "/observatory/api/v1/metrics"


def assert_error(response_body: bytes, status_code: int, code: str) -> None:
    body = orjson.loads(response_body)
    assert body["status"] == "error"
    assert body["error"]["code"] == code
    assert body["error"]["status_code"] == status_code
    assert isinstance(body["error"]["message"], str)


def test_wrong_or_missing_token_is_401(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    for headers in ({}, {"Authorization": "Bearer nope"}, auth("registry")):
        response = client.get(METRICS, params=WINDOW, headers=headers)
        assert response.status_code == 401
        assert_error(response.content, 401, "unauthorized")


def test_bad_windows_are_400_validation_errors(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    bad: list[dict[str, Any]] = [
        {"from": "2026-03-10T14:00:00Z", "to": "2026-03-10T14:00:00Z"},
        {"from": "2026-03-10T15:00:00Z", "to": "2026-03-10T14:00:00Z"},
        {"from": "yesterday", "to": "2026-03-10T14:00:00Z"},
        {"from": "2026-03-10T10:00:00Z"},
        {**WINDOW, "limit": 10_001},
        {**WINDOW, "page_token": "garbage"},
    ]
    for params in bad:
        response = client.get(METRICS, params=params, headers=auth("observatory"))
        assert response.status_code == 400, params
        assert_error(response.content, 400, "validation_error")


def test_same_seed_and_window_give_identical_bytes(make_client: Callable[..., TestClient]) -> None:
    _, first = pull_pages(make_client(seed=11), METRICS, WINDOW, "observatory", limit=150)
    _, second = pull_pages(make_client(seed=11), METRICS, WINDOW, "observatory", limit=150)
    _, other_seed = pull_pages(make_client(seed=12), METRICS, WINDOW, "observatory", limit=150)
    assert first == second
    assert first != other_seed


def ingested_at(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record.get("ingested_at") or record["ingestedAt"])


def in_window_order(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: (ingested_at(r), orjson.dumps(r)))


def test_paging_covers_the_window_exactly_once(make_client: Callable[..., TestClient]) -> None:
    client = make_client(chaos=0.4, fault_rate=0.0)
    records, bodies = pull_pages(client, METRICS, WINDOW, "observatory", limit=37)
    truth = client.get("/observatory/_sim/truth/metrics", params=WINDOW).json()
    assert len(records) == truth["pulled"]
    ids = [r.get("event_id") or r.get("eventId") for r in records]
    assert len(set(ids)) == truth["pulled"] - len(truth["duplicates"])
    start, end = (datetime.fromisoformat(WINDOW[bound]) for bound in ("from", "to"))
    assert all(start <= ingested_at(r) < end for r in records)
    # Pages follow each other in ingested_at order; within a page, no order is promised.
    pages = [[ingested_at(r) for r in orjson.loads(body)["data"]] for body in bodies]
    assert all(max(a) <= min(b) for a, b in pairwise(pages))
    assert any(page != sorted(page) for page in pages)
    # Split windows partition the records.
    middle = "2026-03-10T11:37:12.500Z"
    left, _ = pull_pages(client, METRICS, {"from": WINDOW["from"], "to": middle}, "observatory")
    right, _ = pull_pages(client, METRICS, {"from": middle, "to": WINDOW["to"]}, "observatory")
    assert in_window_order(left + right) == in_window_order(records)


def test_ndjson_streams_the_same_records_as_the_pages(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(chaos=0.3, fault_rate=0.0, volume={"observatory": 3000})
    records, _ = pull_pages(client, METRICS, WINDOW, "observatory", limit=10_000)
    response = client.get(METRICS + ".ndjson", params=WINDOW, headers=auth("observatory"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = response.content.splitlines()
    streamed = [orjson.loads(line) for line in lines]
    assert in_window_order(streamed) == in_window_order(records)
    times = [ingested_at(r) for r in streamed]
    assert times == sorted(times)  # the stream keeps the window's order
    assert len(lines) == 4 * 3000  # four hours; at-most-once observatory never redelivers


def test_faulted_pages_carry_retry_after_and_succeed_within_three_attempts(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(fault_rate=1.0, stall_seconds=0.0, retry_after_seconds=2)
    for hour in range(10, 20):
        params = {"from": f"2026-03-10T{hour}:00:00Z", "to": f"2026-03-10T{hour + 1}:00:00Z"}
        statuses = []
        for _ in range(3):
            response = client.get(METRICS, params=params, headers=auth("observatory"))
            statuses.append(response.status_code)
            if response.status_code in (429, 503):
                assert response.headers["Retry-After"] == "2"
            if response.status_code != 200:
                code = {429: "rate_limited", 503: "service_unavailable", 500: "internal_error"}
                assert_error(response.content, response.status_code, code[response.status_code])
        assert statuses == [statuses[0], statuses[1], 200]
        assert statuses[0] != 200


def test_faults_are_deterministic_per_request_and_attempt() -> None:
    def statuses() -> list[int]:
        client = TestClient(create_app_with(fault_rate=0.5, stall_seconds=0.0))
        seen = []
        for minute in range(20):
            params = {"from": f"2026-03-10T10:{minute:02d}:00Z", "to": "2026-03-10T11:00:00Z"}
            seen += [
                client.get(METRICS, params=params, headers=auth("observatory")).status_code
                for _ in range(3)
            ]
        return seen

    first = statuses()
    assert first == statuses()
    assert set(first) > {200}


def create_app_with(**overrides: Any) -> FastAPI:
    return create_app(SimulatorConfig(**overrides))


def test_feed_receivers_store_idempotently_by_report_id(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client()
    path = "/governance/api/v1/feeds/compliance"
    first = {"report_id": "hub-2026-03-10T10", "compliance_rate": 0.9}
    assert client.post(path, json=first).status_code == 401
    assert (
        client.post(path, json=first, headers=auth("governance")).json()["data"]["replaced"]
        is False
    )
    again = {**first, "compliance_rate": 0.95}
    assert (
        client.post(path, json=again, headers=auth("governance")).json()["data"]["replaced"] is True
    )
    other = {"report_id": "hub-2026-03-10T11", "compliance_rate": 0.8}
    client.post(path, json=other, headers=auth("governance"))
    stored = client.get("/_sim/received/governance-compliance").json()["data"]
    assert stored == [again, other]
    missing_id = client.post(path, json={"compliance_rate": 1}, headers=auth("governance"))
    assert missing_id.status_code == 400
    for receiver, holder, feed in (
        ("/policy/api/v1/compliance/report", "policy", "policy-compliance-report"),
        ("/costops/api/v1/usage/report", "costops", "costops-usage-report"),
        ("/governance/api/v1/feeds/audit", "governance", "governance-audit"),
    ):
        for _ in range(2):
            assert (
                client.post(receiver, json={"report_id": "r1"}, headers=auth(holder)).status_code
                == 200
            )
        assert client.get(f"/_sim/received/{feed}").json()["data"] == [{"report_id": "r1"}]


def either(record: dict[str, Any], name: str) -> Any:
    """A field under its snake_case or camelCase name."""
    head, *rest = name.split("_")
    return record.get(name, record.get(head + "".join(p.capitalize() for p in rest)))


def test_state_endpoints_and_fan_out(make_client: Callable[..., TestClient]) -> None:
    client = make_client(
        now=SimulatorConfig.from_cli_args(["--now", "2026-03-10T12:00:00+00:00"]).now
    )
    assets, _ = pull_pages(client, "/registry/api/v1/assets", {}, "registry", limit=7)
    assert len(assets) == 50
    assert len({either(a, "asset_id") for a in assets}) == 50
    versions, _ = pull_pages(
        client, f"/registry/api/v1/assets/{either(assets[0], 'asset_id')}/versions", {}, "registry"
    )
    assert versions
    assert {v.get("status") for v in versions} <= {"staged", "production", "retired", None}
    assert {either(v, "asset_id") for v in versions} <= {either(assets[0], "asset_id"), None}
    missing = client.get("/registry/api/v1/assets/reg-nope/versions", headers=auth("registry"))
    assert missing.status_code == 404
    assert_error(missing.content, 404, "not_found")
    extensions, _ = pull_pages(client, "/marketplace/api/v1/extensions", {}, "marketplace")
    assert len(extensions) == 20
    extension = either(extensions[0], "extension_id")
    usage, _ = pull_pages(
        client, f"/marketplace/api/v1/extensions/{extension}/usage", WINDOW, "marketplace"
    )
    assert len(usage) == 4
    assert {either(u["data"], "extension_id") for u in usage} <= {extension, None}
    windowed, _ = pull_pages(client, "/registry/api/v1/assets", WINDOW, "registry")
    assert len(windowed) == 4 * 5


def test_the_process_announces_its_url_and_stops() -> None:
    with SimulatorProcess(SimulatorConfig(seed=3)) as sim:
        assert sim.url.startswith("http://127.0.0.1:")
        assert httpx.get(sim.url + "/_sim/health").json()["data"]["seed"] == 3
        process = sim._process
    assert process is not None
    assert process.poll() is not None
