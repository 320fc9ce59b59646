"""Shared helpers of the simulator tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.testclient import TestClient

WINDOW = {"from": "2026-03-10T10:00:00Z", "to": "2026-03-10T14:00:00Z"}


def auth(module: str) -> dict[str, str]:
    return {"Authorization": f"Bearer sim-{module}-token"}


def pull_pages(
    client: TestClient, path: str, params: dict[str, Any], module: str, limit: int = 1000
) -> tuple[list[dict[str, Any]], list[bytes]]:
    """Every record of a paged list, and the raw page bodies."""
    records: list[dict[str, Any]] = []
    bodies: list[bytes] = []
    token = None
    while True:
        query = dict(params, limit=limit)
        if token:
            query["page_token"] = token
        response = client.get(path, params=query, headers=auth(module))
        assert response.status_code == 200, response.text
        bodies.append(response.content)
        page = orjson.loads(response.content)
        records += page["data"]
        token = page["next_page_token"]
        if token is None:
            return records, bodies
