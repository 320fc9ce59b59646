"""The connector against a real simulator process: auth, retries, Retry-After, clear failures.

The simulator counts attempts per request, so each test pulls a window of its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest

from analytics_hub.connectors import Endpoint, ModuleClient, PullError
from analytics_hub.settings import load_settings
from analytics_hub.sources import MODULES, both_casings
from analytics_hub.windows import Window
from simulators import SimulatorConfig, SimulatorProcess

WINDOW = Window(datetime(2026, 11, 25, 10, tzinfo=UTC), datetime(2026, 11, 25, 11, tzinfo=UTC))
SENTINEL = MODULES["sentinel"]
PATH = SENTINEL.entity("security_events").path


@pytest.fixture(scope="module")
def always_failing_twice() -> Iterator[SimulatorProcess]:
    """Every request fails on its first two attempts (429, 503 or 500), then succeeds."""
    config = SimulatorConfig(seed=3, fault_rate=1.0, stall_seconds=0.0, retry_after_seconds=1)
    with SimulatorProcess(config) as sim:
        yield sim


@pytest.fixture(scope="module")
def stalling() -> Iterator[SimulatorProcess]:
    config = SimulatorConfig(seed=4, fault_rate=1.0, stall_seconds=1.5)
    with SimulatorProcess(config) as sim:
        yield sim


def client(
    sim: SimulatorProcess, token: str = "sim-sentinel-token", **settings: object
) -> ModuleClient:
    endpoint = Endpoint(sim.module_url("sentinel"), token)
    return ModuleClient(SENTINEL, endpoint, load_settings(http_max_backoff_seconds=2, **settings))


def test_transient_failures_are_retried_until_the_page_comes(
    always_failing_twice: SimulatorProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="analytics_hub.connectors")
    with client(always_failing_twice) as pulling:
        pages = list(pulling.pages(PATH, WINDOW))
    assert len(pages) >= 1 and b'"status":"success"' in pages[0].body.replace(b" ", b"")
    retries = [r.getMessage() for r in caplog.records]
    assert len(retries) == 2 * len(pages), retries
    assert all("retrying in" in message for message in retries)


def test_retry_after_is_honoured(
    always_failing_twice: SimulatorProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="analytics_hub.connectors")
    with client(always_failing_twice) as pulling:
        list(pulling.pages(PATH, Window(WINDOW.end, datetime(2026, 11, 25, 14, tzinfo=UTC))))
    told = [m for m in caplog.records if "(429" in m.getMessage() or "(503" in m.getMessage()]
    assert told, "no 429/503 in this window: pick another seed"
    for record in told:
        assert record.getMessage().endswith("retrying in 1.0 s"), record.getMessage()


def test_giving_up_names_module_endpoint_and_window(always_failing_twice: SimulatorProcess) -> None:
    window = Window(datetime(2026, 11, 25, 20, tzinfo=UTC), datetime(2026, 11, 25, 21, tzinfo=UTC))
    with (
        client(always_failing_twice, http_max_attempts=2) as pulling,
        pytest.raises(PullError) as failure,
    ):
        list(pulling.pages(PATH, window))
    message = str(failure.value)
    assert "llm-sentinel" in message and PATH in message
    assert "2026-11-25T20:00:00Z" in message and "after 2 attempts" in message


def test_a_wrong_token_fails_at_once_without_retrying(
    always_failing_twice: SimulatorProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="analytics_hub.connectors")
    started = time.monotonic()
    with (
        client(always_failing_twice, token="wrong") as pulling,
        pytest.raises(PullError, match="401 unauthorized"),
    ):
        list(pulling.pages(PATH, WINDOW))
    assert caplog.records == []
    assert time.monotonic() - started < 1.0


def test_a_stalled_response_times_out_and_is_retried(stalling: SimulatorProcess) -> None:
    with client(stalling, http_timeout_seconds=0.5, http_max_attempts=4) as pulling:
        pages = list(pulling.pages(PATH, WINDOW))
    assert pages


def test_fan_out_ids_do_not_depend_on_when_they_are_listed() -> None:
    """The extension listing's order follows the last change, so it moves with the clock."""
    marketplace = MODULES["marketplace"]
    parent = marketplace.entity("usage").fan_out
    assert parent is not None
    keys = both_casings((parent.parent_key,))
    listed: dict[datetime, tuple[list[str], list[str]]] = {}
    for now in (datetime(2026, 11, 25, 9, tzinfo=UTC), datetime(2026, 11, 25, 12, tzinfo=UTC)):
        with SimulatorProcess(SimulatorConfig(seed=8, now=now)) as sim:
            endpoint = Endpoint(sim.module_url("marketplace"), "sim-marketplace-token")
            with ModuleClient(marketplace, endpoint, load_settings()) as pulling:
                as_served = [
                    str(next(record[k] for k in keys if k in record))
                    for page in pulling.pages(parent.parent_path, None)
                    for record in orjson.loads(page.body)["data"]
                ]
                ids = pulling.list_ids(parent.parent_path, keys, None)
                listed[now] = (as_served, ids)
    (served_a, ids_a), (served_b, ids_b) = listed.values()
    assert served_a != served_b, "the simulator no longer reorders its listing: test nothing"
    assert ids_a == ids_b == sorted(set(served_a))


def test_the_simulators_bulk_stream_passes_the_checks(
    always_failing_twice: SimulatorProcess,
) -> None:
    observatory = MODULES["observatory"]
    bulk_path = observatory.entity("metrics").bulk_path
    assert bulk_path is not None
    endpoint = Endpoint(always_failing_twice.module_url("observatory"), "sim-observatory-token")
    settings = load_settings(http_max_backoff_seconds=2)
    with ModuleClient(observatory, endpoint, settings) as pulling:
        chunks = list(pulling.stream_lines(bulk_path, WINDOW, 4096))
    assert len(chunks) > 1 and all(chunk.endswith(b"\n") for chunk in chunks)
    assert all(orjson.loads(line) for line in chunks[0].splitlines())
