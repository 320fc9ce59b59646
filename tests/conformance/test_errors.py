"""The hub against the contract's error rules: a 4xx other than 429 is not retried; 429
and 5xx are (with ``Retry-After`` where given), and the window still lands whole."""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conformance.checks import environment, land, land_and_check
from conformance.contract import entity
from conformance.server import ConformanceServer
from conformance.worlds import World, big_world

START = datetime(2026, 11, 24, 6, tzinfo=UTC)
END = START + timedelta(hours=1)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_retryable_answer_is_retried_and_the_window_lands_whole(
    hub: ConformanceServer, pseudonym_key: str, status: int
) -> None:
    ent = entity("sentinel", "security_events")
    world = big_world(seed=status, start=START, end=END)
    # a 500 has no Retry-After: the hub backs off (up to HUB_HTTP_MAX_BACKOFF_SECONDS, 1 s)
    world.transient_one_in, world.transient_statuses = (3 if status == 500 else 1), (status,)
    with hub.serving(world):
        found = land_and_check(ent, world, pseudonym_key)
        statuses = [entry.status for entry in hub.log if entry.module == "sentinel"]
    assert statuses.count(status) >= 1 and statuses[-1] == 200
    assert not found.by_category["ingest"], found.text("ingest")
    assert not found.by_category["rows"], found.text("rows")
    assert not found.by_category["manifest"], found.text("manifest")


def test_a_wrong_token_fails_at_once_naming_module_and_endpoint(hub: ConformanceServer) -> None:
    ent = entity("sentinel", "security_events")
    world = World(START, END, {}, seed=1)
    wrong = json.dumps(
        {"conn_type": "http", "host": hub.url("sentinel"), "password": "not-the-token"}
    )
    root = Path(tempfile.mkdtemp(prefix="conformance-lake-"))
    try:
        with hub.serving(world), environment(AIRFLOW_CONN_HUB_SENTINEL=wrong):
            with pytest.raises(Exception, match=r"401") as failure:
                land(ent, world, str(root / "lake"))
            requests = [entry for entry in hub.log if entry.module == "sentinel"]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert [entry.status for entry in requests] == [401]  # not retried
    assert "sentinel" in str(failure.value) and "/api/v1/security-events" in str(failure.value)
