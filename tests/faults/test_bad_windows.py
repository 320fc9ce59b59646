"""A module that breaks the contract mid-window, seen through the whole stage → audit → publish.

``test_bad_pages`` shows what the connector makes of each bad answer; this shows what the
window becomes. The lake holds a published version of the window (30 violations, batch
``a``); the module then answers a re-pull of it (40 violations, batch ``b``) badly:

- a page that is not a page (an error with status 200, HTML, a truncated body, a token
  loop): the pull stops with a ``BadPageError`` naming module, endpoint, window and page;
  the pages before it and the bad page itself are kept in a staged version (the bad page
  in the raw zone and as a ``bad_page`` dead letter), which the lake gate never publishes;
- a pull that fails (a page that trickles, a 401 midway, a listing without end): a
  ``PullError`` naming module, endpoint and window, and nothing staged at all;
- records that are not records (a byte that is not UTF-8 in one, null entries): those are
  dead letters with their reason, the rest of the window is published, balanced.

Each ends with the published version as it was (byte for byte) until a good pull replaces
it, and with a retry against a healthy answer that publishes batch ``b`` exactly once.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from analytics_hub.connectors import BadPageError, PullError
from analytics_hub.lake import Zone
from analytics_hub.pipeline import Pipeline
from analytics_hub.quality.gate import WindowBlockedError
from analytics_hub.settings import HubSettings
from faults.bad_upstream import (
    Answer,
    BadUpstream,
    Handler,
    endless,
    error_page,
    html_page,
    json_page,
    listing,
    page_body,
    repeating_token,
)
from faults.support import (
    PATH,
    POLICY,
    VIOLATIONS,
    WINDOW,
    current,
    keys,
    land,
    landed_keys,
    local_settings,
    manifest,
    pages,
    pipeline,
    published,
    staged_files,
    staged_manifest,
    staged_table,
    violations,
)

pytestmark = pytest.mark.integration

A = violations(30, "a")
B = violations(40, "b")
B_PAGES = pages(B, 10)
OBJECTS = {"raw.parquet", "normalized.parquet", "deadletter.parquet", "manifests.json"}


@pytest.fixture(scope="module")
def published_a(bad_upstream_server: BadUpstream, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake where batch ``a`` is the window's published version, to copy for each test."""
    root = tmp_path_factory.mktemp("published-a")
    settings = local_settings(root)
    server = bad_upstream_server
    server.reset()
    server.route(PATH, listing(pages(A, 10)))
    assert land(pipeline(settings, root / "work"), server.url, server.token or "", settings)
    return root / "lake"


@dataclass
class Hub:
    pipeline: Pipeline
    settings: HubSettings
    upstream: BadUpstream

    @property
    def lake(self) -> Any:
        return self.pipeline.lake

    def land(self, handler: Handler) -> Any:
        self.upstream.route(PATH, handler)
        return land(self.pipeline, self.upstream.url, self.upstream.token or "", self.settings)


@pytest.fixture
def hub(published_a: Path, module_server: BadUpstream, tmp_path: Path) -> Hub:
    shutil.copytree(published_a, tmp_path / "lake")
    settings = local_settings(tmp_path)
    hub = Hub(pipeline(settings, tmp_path / "work"), settings, module_server)
    assert sorted(landed_keys(hub.lake)) == sorted(keys(A))
    return hub


def assert_retry_publishes_b(hub: Hub) -> None:
    """A healthy answer to the next pull: batch ``b`` is published, each record once."""
    result = hub.land(listing(B_PAGES))
    assert result.status == "passed"
    landed = landed_keys(hub.lake)
    assert len(landed) == len(set(landed)) == len(B) and set(landed) == keys(B)
    now = manifest(hub.lake)
    assert (now["pulled"], now["landed"], now["dead_lettered"]) == (len(B), len(B), 0)
    assert now["balanced"] and now["bad_pages"] == []


def assert_names_the_window(error: Exception) -> None:
    message = str(error)
    assert "module 'policy' (llm-policy-engine)" in message
    assert f"GET {PATH}" in message
    assert f"window {WINDOW}" in message


# --- pages that are not pages ---------------------------------------------------------------


@dataclass(frozen=True)
class BadPage:
    handler: Handler
    page: int  # the bad page's number
    body: bytes  # what the module sent as that page
    good: list[dict[str, Any]]  # the records of the pages before it


def _replaced(page: int, answer: Answer) -> BadPage:
    before = [r for p in B_PAGES[:page] for r in p]
    return BadPage(listing(B_PAGES, faults={page: answer}), page, answer.body, before)


BAD_PAGES = [
    pytest.param(_replaced(2, error_page()), "status_error", id="error-with-200"),
    pytest.param(_replaced(2, html_page()), "content_type", id="html"),
    pytest.param(_replaced(2, json_page(B_PAGES[2], "page-3").cut(60)), "not_json", id="truncated"),
    pytest.param(
        BadPage(
            repeating_token(B_PAGES[0], token="again"),
            1,
            page_body(B_PAGES[0], "again"),
            B_PAGES[0],
        ),
        "repeated_token",
        id="page-loop",
    ),
]


@pytest.mark.parametrize(("bad", "cause"), BAD_PAGES)
def test_a_bad_page_keeps_the_window_and_is_kept_itself(hub: Hub, bad: BadPage, cause: str) -> None:
    lake = hub.lake
    before = published(lake)

    with pytest.raises(BadPageError) as failure:
        hub.land(bad.handler)

    error = failure.value
    assert (error.cause, error.page, error.path, error.body) == (cause, bad.page, PATH, bad.body)
    assert_names_the_window(error)
    assert f"page {bad.page}:" in str(error)
    assert "the lake's current version is unchanged" in str(error)
    assert published(lake) == before

    # The staged version: the pages before the bad one, and the bad one as a dead letter.
    (version,) = lake.staged_versions(POLICY.name, VIOLATIONS.name, WINDOW)
    assert version in str(error)
    staged = staged_manifest(lake, version)
    assert staged["bad_pages"] == [{"page": bad.page, "path": PATH, "cause": cause}]
    assert staged["pulled"] == staged["landed"] == len(bad.good)
    assert set(staged_table(lake, Zone.NORMALIZED, version).column("event_id").to_pylist()) == (
        keys(bad.good)
    )
    raw = staged_table(lake, Zone.RAW, version)
    assert raw.column("page").to_pylist() == list(range(bad.page + 1))
    assert raw.column("body").to_pylist()[-1] == bad.body
    (letter,) = staged_table(lake, Zone.DEADLETTER, version).to_pylist()
    assert (letter["page"], letter["row"], letter["record_id"]) == (bad.page, None, None)
    assert (letter["reason_code"], letter["reason"]) == ("bad_page", f"bad_page:{cause}")
    assert letter["raw_record"] == bad.body.decode("utf-8", "replace")

    # The gate never publishes it, and says a new pull may do better.
    with pytest.raises(WindowBlockedError, match="ended on a bad page") as blocked:
        hub.pipeline.audit(POLICY, VIOLATIONS, WINDOW, version)
    assert blocked.value.expectations == ("bad_page",) and blocked.value.transient
    assert staged_manifest(lake, version)["quality"]["status"] == "blocked"
    assert published(lake) == before

    assert_retry_publishes_b(hub)
    # Left in staged/: only the blocked version, whole, for inspection.
    assert staged_files(lake) == {version: OBJECTS}


# --- pulls that fail ------------------------------------------------------------------------

FAILED_PULLS = [
    pytest.param(
        listing(B_PAGES, faults={2: json_page(B_PAGES[2], "page-3").trickled(0.2)}),
        {"http_request_deadline_seconds": 1.0},
        "failed after 2 attempts: response not complete after 1 s "
        "(HUB_HTTP_REQUEST_DEADLINE_SECONDS)",
        id="trickle",
    ),
    pytest.param(
        listing(B_PAGES, faults={2: error_page(401, "unauthorized", "token expired")}),
        {},
        "failed: 401 unauthorized: token expired",
        id="401-midway",
    ),
    pytest.param(
        endless(B_PAGES[0]),
        {"http_max_pages": 5},
        "still more pages after 5 (HUB_HTTP_MAX_PAGES)",
        id="endless",
    ),
]


@pytest.mark.parametrize(("handler", "limits", "says"), FAILED_PULLS)
def test_a_failed_pull_stages_nothing_and_keeps_the_window(
    hub: Hub, handler: Handler, limits: dict[str, Any], says: str, tmp_path: Path
) -> None:
    lake = hub.lake
    before = published(lake)
    hub.settings = local_settings(tmp_path, **limits)

    with pytest.raises(PullError) as failure:
        hub.land(handler)

    assert not isinstance(failure.value, BadPageError)
    assert_names_the_window(failure.value)
    assert says in str(failure.value)
    assert published(lake) == before
    # Every staged object was removed as its writer unwound: nothing half-written remains.
    assert lake.staged_versions(POLICY.name, VIOLATIONS.name, WINDOW) == []
    assert staged_files(lake) == {}

    assert_retry_publishes_b(hub)
    assert staged_files(lake) == {}


# --- records that are not records -----------------------------------------------------------

_MARK = b"@@not-utf8@@"


def _bad_byte(records: list[dict[str, Any]], index: int, next_token: str) -> Answer:
    """A page whose record ``index`` has the byte 0xE9 (Latin-1 é) in its description."""
    marked = [dict(r) for r in records]
    marked[index] = marked[index] | {
        "data": marked[index]["data"] | {"description": f"caf{_MARK.decode()}"}
    }
    return Answer(body=page_body(marked, next_token).replace(_MARK, b"\xe9"))


RECORD_FAULTS = [
    pytest.param(
        {1: _bad_byte(B_PAGES[1], 3, "page-2")},
        {B_PAGES[1][3]["event_id"]},
        [(1, 3, "invalid_utf8", "invalid_utf8:record")],
        id="not-utf8-byte",
    ),
    pytest.param(
        {2: json_page([None, *B_PAGES[2], None], "page-3")},
        set(),
        [(2, 0, "null_record", "null_record:record"), (2, 11, "null_record", "null_record:record")],
        id="null-entries",
    ),
]


@pytest.mark.parametrize(("faults", "lost", "letters"), RECORD_FAULTS)
def test_bad_records_are_dead_letters_and_the_rest_is_published(
    hub: Hub, faults: dict[int, Answer], lost: set[str], letters: list[tuple[Any, ...]]
) -> None:
    lake = hub.lake

    result = hub.land(listing(B_PAGES, faults=faults))

    assert result.status == "passed"
    landed = landed_keys(hub.lake)
    assert len(landed) == len(set(landed)) and set(landed) == keys(B) - lost
    now = manifest(lake)
    assert now["pulled"] == len(B) - len(lost) + len(letters)
    assert (now["landed"], now["dead_lettered"], now["deduplicated"]) == (
        len(B) - len(lost),
        len(letters),
        0,
    )
    assert now["balanced"]
    dead = pq.read_table(current(lake, Zone.DEADLETTER), filesystem=lake.fs)
    rows = dead.to_pylist()
    assert [(d["page"], d["row"], d["reason_code"], d["reason"]) for d in rows] == letters
    for letter, event_id in zip(rows, sorted(lost), strict=False):
        assert event_id in letter["raw_record"], "the record can be found again from its text"
    assert staged_files(lake) == {}
