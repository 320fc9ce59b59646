"""The conformance server itself keeps the contract: auth, errors, windows, paging, NDJSON."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from conformance.contract import ENTITIES, Entity, entity
from conformance.server import ConformanceServer
from conformance.wire import RandomChooser, render
from conformance.worlds import Gen, Pools, World, big_world, canonical_json

START = datetime(2026, 11, 24, 6, tzinfo=UTC)
END = START + timedelta(hours=1)
QUERY = {"from": "2026-11-24T06:00:00Z", "to": "2026-11-24T07:00:00Z"}


@pytest.fixture(scope="module")
def world() -> World:
    return big_world(seed=11, start=START, end=END)


@pytest.fixture
def served(conformance_server: ConformanceServer, world: World) -> Iterator[ConformanceServer]:
    with conformance_server.serving(world):
        yield conformance_server


def client(server: ConformanceServer, module: str, token: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=server.url(module),
        headers={"Authorization": f"Bearer {token or server.tokens[module]}"},
    )


def all_pages(http: httpx.Client, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    pages, params = [], dict(params)
    while True:
        response = http.get(path, params=params)
        if response.status_code in (429, 503):
            assert response.headers["Retry-After"] == "0"
            continue
        assert response.status_code == 200, response.text
        page = response.json()
        assert page.keys() == {"status", "data", "next_page_token", "meta"}
        assert page["status"] == "success" and {"request_id", "api_version"} <= page["meta"].keys()
        pages.append(page)
        if page["next_page_token"] is None:
            return pages
        params["page_token"] = page["next_page_token"]


def fetch(
    server: ConformanceServer, world: World, ent: Entity, limit: int = 10_000
) -> Counter[str]:
    with client(server, ent.module) as http:
        params = {**(QUERY if ent.windowed else {}), "limit": limit}
        if ent.parent is None:
            pages = all_pages(http, ent.path, params)
        else:
            parent = entity(ent.module, ent.parent)
            parent_params = {**(QUERY if ent.parent_windowed else {}), "limit": limit}
            ids = {
                record.get(parent.key[0], record.get("assetId", record.get("extensionId")))
                for page in all_pages(http, parent.path, parent_params)
                for record in page["data"]
            } - {None}
            pages = [
                page
                for parent_id in sorted(ids)
                for page in all_pages(http, ent.path.format(id=quote(parent_id, safe="")), params)
            ]
    assert all(len(page["data"]) <= limit for page in pages)
    return Counter(canonical_json(record) for page in pages for record in page["data"])


@pytest.mark.parametrize("ent", ENTITIES, ids=[e.id for e in ENTITIES])
def test_paged_pulls_serve_exactly_the_windows_records(
    served: ConformanceServer, world: World, ent: Entity
) -> None:
    expected = Counter(canonical_json(w) for rec in world.pulled(ent) for w in rec.wires)
    assert expected
    assert fetch(served, world, ent) == expected
    assert fetch(served, world, ent, limit=1) == expected


def test_the_bulk_stream_equals_the_pages(served: ConformanceServer, world: World) -> None:
    ent = entity("observatory", "metrics")
    with client(served, "observatory") as http:
        while (response := http.get("/api/v1/metrics.ndjson", params=QUERY)).status_code != 200:
            assert response.status_code in (429, 503)
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = [line for line in response.text.split("\n") if line]
    assert Counter(canonical_json(json.loads(line)) for line in lines) == fetch(served, world, ent)


def test_a_wrong_or_missing_token_is_401_with_the_error_body(served: ConformanceServer) -> None:
    with client(served, "costops", token="wrong") as http:
        response = http.get("/api/v1/budgets")
    assert response.status_code == 401
    assert response.json() == {
        "status": "error",
        "error": {
            "code": "unauthorized",
            "message": "missing or wrong bearer token",
            "status_code": 401,
        },
    }
    other = served.tokens["registry"]  # another module's token is wrong too
    with client(served, "costops", token=other) as http:
        assert http.get("/api/v1/budgets").status_code == 401
    assert httpx.get(served.url("costops") + "/api/v1/budgets").status_code == 401


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/api/v1/nothing", {}, 404, "not_found"),
        ("/api/v1/events", {"from": "2026-11-24T06:00:00Z"}, 400, "validation_error"),
        ("/api/v1/events", {**QUERY, "limit": 10_001}, 400, "validation_error"),
        ("/api/v1/events", {**QUERY, "page_token": "bm9wZQ=="}, 400, "bad_request"),
    ],
)
def test_bad_requests_answer_the_error_body(
    served: ConformanceServer, path: str, params: dict[str, Any], status: int, code: str
) -> None:
    with client(served, "registry") as http:
        response = http.get(path, params=params)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_windows_are_half_open_on_the_selection_time(conformance_server: ConformanceServer) -> None:
    ent = entity("sentinel", "security_events")
    gen = Gen(
        RandomChooser(random.Random(3)), Pools.draw(RandomChooser(random.Random(3))), START, END
    )
    edges = [START - timedelta(microseconds=1), START, END - timedelta(microseconds=1), END]
    recs = [gen.record(ent, at, bad=False) for at in edges]
    for rec in recs:
        rec.wires = [render(RandomChooser(random.Random(5)), rec)]
    world = World(START, END, {ent.id: recs}, seed=1)
    with conformance_server.serving(world):
        got = fetch(conformance_server, world, ent)
    assert got == Counter(canonical_json(r.wires[0]) for r in recs[1:3])


def test_a_transient_failure_answers_429_or_503_once(conformance_server: ConformanceServer) -> None:
    world = World(START, END, {}, seed=2, transient_one_in=1)
    with conformance_server.serving(world), client(conformance_server, "policy") as http:
        first = http.get("/api/v1/violations", params=QUERY)
        second = http.get("/api/v1/violations", params=QUERY)
    assert first.status_code in (429, 503) and first.headers["Retry-After"] == "0"
    assert first.json()["error"]["code"] in ("rate_limited", "service_unavailable")
    assert second.status_code == 200 and second.json()["data"] == []
