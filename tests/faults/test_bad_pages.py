"""The connector against a module that breaks the contract: every pull ends, and says why.

A page that is not what the contract says is a ``BadPageError`` naming module, endpoint,
window, page and cause, with what was received; a listing that would never end (a token
loop, endless pages, a trickle) ends with a ``PullError`` at the limit set in the settings.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from analytics_hub.connectors import BadPageError, Endpoint, ModuleClient, PullError
from analytics_hub.settings import load_settings
from analytics_hub.sources import MODULES
from analytics_hub.windows import Window
from faults.bad_upstream import (
    Answer,
    BadUpstream,
    Request,
    attempts,
    bad_byte_page,
    endless,
    error_page,
    html_page,
    json_page,
    listing,
    ndjson,
    padded_page,
    repeating_token,
    sample_records,
)

WINDOW = Window(datetime(2026, 11, 25, 10, tzinfo=UTC), datetime(2026, 11, 25, 11, tzinfo=UTC))
POLICY = MODULES["policy"]
PATH = POLICY.entity("violations").path
OBSERVATORY = MODULES["observatory"]
BULK = OBSERVATORY.entity("metrics").bulk_path or ""
PAGES = [sample_records(3, start=3 * n) for n in range(4)]


@pytest.fixture(scope="module")
def server() -> Iterator[BadUpstream]:
    with BadUpstream() as upstream:
        yield upstream


@pytest.fixture
def upstream(server: BadUpstream) -> BadUpstream:
    server.reset()
    return server


def client(upstream: BadUpstream, module: str = "policy", **settings: object) -> ModuleClient:
    endpoint = Endpoint(upstream.url, upstream.token or "")
    defaults: dict[str, object] = {"http_max_backoff_seconds": 0.1, "http_max_attempts": 2}
    return ModuleClient(MODULES[module], endpoint, load_settings(**(defaults | settings)))


def pull(upstream: BadUpstream, received: list[bytes] | None = None, **settings: object) -> None:
    with client(upstream, "policy", **settings) as pulling:
        for page in pulling.pages(PATH, WINDOW):
            if received is not None:
                received.append(page.body)


def assert_names_the_page(error: BadPageError, page: int, unit: str = "page") -> None:
    message = str(error)
    assert "module 'policy' (llm-policy-engine)" in message or "llm-observatory" in message
    assert f"GET {error.path}" in message
    assert str(WINDOW) in message
    assert f"{unit} {page}:" in message


# --- pages that are not pages --------------------------------------------------------------

BROKEN = [
    pytest.param(error_page(), "status_error", id="error-with-200"),
    pytest.param(json_page(PAGES[2], status="failure"), "status_error", id="status-not-success"),
    pytest.param(Answer(body=b'{"data": []}'), "status_error", id="no-status"),
    pytest.param(html_page(), "content_type", id="html"),
    pytest.param(json_page(PAGES[2]).typed("application/xml"), "content_type", id="xml"),
    pytest.param(html_page().typed("application/json"), "not_json", id="html-said-json"),
    pytest.param(json_page(PAGES[2], "page-3").cut(60), "not_json", id="truncated"),
    pytest.param(Answer(body=b""), "not_json", id="empty"),
    pytest.param(Answer(body=b"[1, 2]"), "not_an_object", id="array"),
    pytest.param(
        Answer(body=b'{"status": "success", "data": {"a": 1}}'), "data_not_list", id="data-object"
    ),
    pytest.param(Answer(body=b'{"status": "success"}'), "data_not_list", id="no-data"),
    pytest.param(
        Answer(body=b'{"status": "success", "data": [], "next_page_token": {"o": 1}}'),
        "bad_token",
        id="token-object",
    ),
]


@pytest.mark.parametrize(("answer", "cause"), BROKEN)
def test_a_broken_page_stops_the_listing_and_says_which(
    upstream: BadUpstream, answer: Answer, cause: str
) -> None:
    upstream.route(PATH, listing(PAGES, faults={2: answer}))
    received: list[bytes] = []
    with pytest.raises(BadPageError) as failure:
        pull(upstream, received)
    error = failure.value
    assert (error.cause, error.page, error.path) == (cause, 2, PATH)
    assert error.body == answer.body
    assert len(received) == 2, "the pages before the broken one are handed on"
    assert_names_the_page(error, 2)
    assert len(upstream.requests(PATH)) == 3, "a broken page is not asked again"


def test_the_message_says_what_is_wrong_in_words(upstream: BadUpstream) -> None:
    upstream.route(PATH, listing(PAGES, faults={1: error_page(200, "internal_error", "db down")}))
    with pytest.raises(BadPageError, match=r"page 1: status 'error' \(internal_error: db down\)"):
        pull(upstream)
    upstream.route(PATH, listing(PAGES, faults={1: json_page(PAGES[1]).cut(20)}))
    with pytest.raises(BadPageError, match=r"page 1: not JSON \(unexpected end of data"):
        pull(upstream)


def test_an_unwindowed_listing_says_no_window(upstream: BadUpstream) -> None:
    path = MODULES["marketplace"].entity("extensions").path
    upstream.route(path, listing(PAGES, faults={0: html_page()}))
    with client(upstream, "marketplace") as pulling, pytest.raises(BadPageError) as failure:
        list(pulling.pages(path, None))
    assert "GET /api/v1/extensions, no window, page 0: Content-Type" in str(failure.value)


def test_bad_page_error_survives_pickling(upstream: BadUpstream) -> None:
    upstream.route(PATH, listing(PAGES, faults={1: html_page()}))
    with pytest.raises(BadPageError) as failure:
        pull(upstream)
    copy = pickle.loads(pickle.dumps(failure.value))
    assert (copy.page, copy.path, copy.body, copy.cause, str(copy)) == (
        1,
        PATH,
        html_page().body,
        "content_type",
        str(failure.value),
    )


# --- what the contract allows is taken ------------------------------------------------------

GOOD = [
    pytest.param(json_page(PAGES[1], "page-2", status="SUCCESS"), id="status-uppercase"),
    pytest.param(json_page(PAGES[1], "page-2", camel=True), id="camel-token"),
    pytest.param(json_page(PAGES[1], "page-2").typed(None), id="no-content-type"),
    pytest.param(
        json_page(PAGES[1], "page-2").typed("application/json; charset=utf-8"), id="charset"
    ),
    pytest.param(json_page(PAGES[1], "page-2").typed("application/vnd.api+json"), id="plus-json"),
    pytest.param(json_page(PAGES[1], "page-2").typed("text/plain"), id="text-plain"),
    pytest.param(json_page([None, *PAGES[1], None], "page-2"), id="null-records"),
    pytest.param(bad_byte_page(PAGES[1], "page-2", record=1), id="bad-byte-in-a-record"),
    pytest.param(json_page(PAGES[1], "page-2").chunked(7), id="chunked"),
]


@pytest.mark.parametrize("answer", GOOD)
def test_what_the_contract_allows_is_a_good_page(upstream: BadUpstream, answer: Answer) -> None:
    upstream.route(PATH, listing(PAGES, faults={1: answer}))
    received: list[bytes] = []
    pull(upstream, received)
    assert len(received) == 4
    assert received[1] == answer.body, "a page is handed on as received"
    assert [r.page_token for r in upstream.requests(PATH)] == [None, "page-1", "page-2", "page-3"]


def test_an_empty_token_ends_the_listing(upstream: BadUpstream) -> None:
    upstream.route(PATH, json_page(PAGES[0], ""))
    received: list[bytes] = []
    pull(upstream, received)
    assert len(received) == 1


# --- listings that would not end ------------------------------------------------------------


def test_a_repeated_token_is_a_bad_page(upstream: BadUpstream) -> None:
    upstream.route(PATH, repeating_token(PAGES[0], token="again"))
    received: list[bytes] = []
    with pytest.raises(BadPageError) as failure:
        pull(upstream, received)
    error = failure.value
    assert (error.cause, error.page) == ("repeated_token", 1)
    assert "'again' repeats the one of page 0" in str(error)
    assert_names_the_page(error, 1)
    assert len(received) == 1 and len(upstream.requests(PATH)) == 2


def test_a_token_that_comes_back_later_is_a_bad_page(upstream: BadUpstream) -> None:
    pages = {None: "t1", "t1": "t2", "t2": "t3", "t3": "t1"}

    def cycling(request: Request) -> Answer:
        return json_page(PAGES[0], pages[request.page_token])

    upstream.route(PATH, cycling)
    with pytest.raises(BadPageError) as failure:
        pull(upstream)
    assert (failure.value.cause, failure.value.page) == ("repeated_token", 3)
    assert "repeats the one of page 0" in str(failure.value)


def test_endless_pages_stop_at_the_page_cap(upstream: BadUpstream) -> None:
    upstream.route(PATH, endless(PAGES[0]))
    received: list[bytes] = []
    with pytest.raises(PullError, match="still more pages after 5 \\(HUB_HTTP_MAX_PAGES\\)") as e:
        pull(upstream, received, http_max_pages=5)
    assert not isinstance(e.value, BadPageError)
    assert "llm-policy-engine" in str(e.value) and str(WINDOW) in str(e.value)
    assert len(received) == 5 and len(upstream.requests(PATH)) == 5


def test_endless_pages_stop_at_the_listing_deadline(upstream: BadUpstream) -> None:
    upstream.route(PATH, endless(PAGES[0], delay=0.1))
    with pytest.raises(PullError, match="HUB_PULL_DEADLINE_SECONDS") as failure:
        pull(upstream, pull_deadline_seconds=1)
    assert not isinstance(failure.value, BadPageError)
    assert f"GET {PATH}, window {WINDOW}" in str(failure.value)


def test_the_callers_own_time_does_not_count_against_the_listing(upstream: BadUpstream) -> None:
    upstream.route(PATH, listing(PAGES))
    received = 0
    with client(upstream, pull_deadline_seconds=1) as pulling:
        for _ in pulling.pages(PATH, WINDOW):
            time.sleep(0.4)  # a slow write downstream, not the module's fault
            received += 1
    assert received == 4


def test_a_trickling_page_is_retried_then_fails(upstream: BadUpstream) -> None:
    upstream.route(PATH, listing(PAGES, faults={1: json_page(PAGES[1], "page-2").trickled(0.2)}))
    received: list[bytes] = []
    with pytest.raises(PullError) as failure:
        pull(upstream, received, http_request_deadline_seconds=1, http_timeout_seconds=5)
    message = str(failure.value)
    assert not isinstance(failure.value, BadPageError)
    assert "failed after 2 attempts" in message and "HUB_HTTP_REQUEST_DEADLINE_SECONDS" in message
    assert f"GET {PATH}, window {WINDOW}" in message
    assert len(received) == 1
    assert [r.page_token for r in upstream.requests(PATH)] == [None, "page-1", "page-1"]


def test_a_page_that_trickles_once_comes_on_the_retry(upstream: BadUpstream) -> None:
    slow = json_page(PAGES[1], "page-2").trickled(0.2)
    upstream.route(PATH, listing(PAGES, faults={1: attempts(slow, json_page(PAGES[1], "page-2"))}))
    received: list[bytes] = []
    pull(upstream, received, http_request_deadline_seconds=1, http_timeout_seconds=5)
    assert len(received) == 4


# --- size ------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_page_over_the_cap_is_too_large(upstream: BadUpstream, chunked: bool) -> None:
    big = padded_page(5_000, "page-2")
    upstream.route(PATH, listing(PAGES, faults={1: big.chunked(500) if chunked else big}))
    with pytest.raises(BadPageError) as failure:
        pull(upstream, http_max_page_bytes=2_000)
    error = failure.value
    assert (error.cause, error.page) == ("too_large", 1)
    assert_names_the_page(error, 1)
    assert "larger than 2000 bytes" in str(error)
    # without a declared length, what was read stops at the cap; with one, nothing is read
    assert error.body == (big.body[:2_000] if chunked else b"")


def test_a_page_at_the_cap_is_fine(upstream: BadUpstream) -> None:
    page = json_page(PAGES[0])
    upstream.route(PATH, page.chunked(10))
    received: list[bytes] = []
    pull(upstream, received, http_max_page_bytes=len(page.body))
    assert received == [page.body]


# --- what stays as it was --------------------------------------------------------------------


def test_a_401_midway_fails_at_once_with_the_modules_message(upstream: BadUpstream) -> None:
    expired = error_page(401, "unauthorized", "token expired")
    upstream.route(PATH, listing(PAGES, faults={2: expired}))
    with pytest.raises(PullError, match="401 unauthorized: token expired") as failure:
        pull(upstream, http_max_attempts=4)
    assert not isinstance(failure.value, BadPageError)
    assert len(upstream.requests(PATH)) == 3


def test_transient_faults_are_still_retried(upstream: BadUpstream) -> None:
    busy = error_page(503, "service_unavailable", "busy").with_headers(Retry_After="0")
    good = json_page(PAGES[1], "page-2")
    upstream.route(
        PATH, listing(PAGES, faults={1: attempts(busy, html_page(502), good.dropped(10), good)})
    )
    received: list[bytes] = []
    pull(upstream, received, http_max_attempts=4)
    assert len(received) == 4
    assert [r.page_token for r in upstream.requests(PATH)].count("page-1") == 4


# --- fan-out parents -------------------------------------------------------------------------


def test_list_ids_reads_checked_pages(upstream: BadUpstream) -> None:
    path = MODULES["marketplace"].entity("extensions").path
    pages: list[list[object]] = [
        [{"extension_id": "b"}, None, {"extensionId": "a"}],
        [{"extension_id": "c"}],
    ]
    upstream.route(path, listing(pages))
    keys = ("extension_id", "extensionId")
    with client(upstream, "marketplace") as pulling:
        assert pulling.list_ids(path, keys, None) == ["a", "b", "c"]
    upstream.route(path, listing(pages, faults={1: error_page()}))
    with client(upstream, "marketplace") as pulling, pytest.raises(BadPageError) as failure:
        pulling.list_ids(path, keys, None)
    assert (failure.value.cause, failure.value.page) == ("status_error", 1)
    assert "no window, page 1" in str(failure.value)
    upstream.route(path, repeating_token(pages[0]))
    with client(upstream, "marketplace") as pulling, pytest.raises(BadPageError) as failure:
        pulling.list_ids(path, keys, None)
    assert failure.value.cause == "repeated_token"


# --- the NDJSON stream -----------------------------------------------------------------------

LINES = sample_records(200)


def stream(
    upstream: BadUpstream,
    chunk_bytes: int = 1_000,
    received: list[bytes] | None = None,
    **settings: object,
) -> list[bytes]:
    received = [] if received is None else received
    with client(upstream, "observatory", **settings) as pulling:
        for chunk in pulling.stream_lines(BULK, WINDOW, chunk_bytes):
            received.append(chunk)
    return received


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/json",
        "text/plain; charset=utf-8",
        None,
    ],
)
def test_a_stream_under_any_json_type_is_read(
    upstream: BadUpstream, content_type: str | None
) -> None:
    answer = ndjson(LINES, content_type=content_type, chunk_size=333)
    upstream.route(BULK, answer)
    chunks = stream(upstream)
    assert len(chunks) > 1 and all(chunk.endswith(b"\n") for chunk in chunks)
    assert b"".join(chunks) == answer.body


def test_a_stream_that_is_html_is_refused(upstream: BadUpstream) -> None:
    upstream.route(BULK, html_page())
    with pytest.raises(BadPageError) as failure:
        stream(upstream)
    error = failure.value
    assert (error.cause, error.page, error.path, error.body) == (
        "content_type",
        0,
        BULK,
        html_page().body,
    )
    assert_names_the_page(error, 0, unit="chunk")


def test_a_stream_that_is_an_error_with_200_is_refused(upstream: BadUpstream) -> None:
    upstream.route(BULK, error_page(200, "internal_error", "no data").typed("application/x-ndjson"))
    with pytest.raises(BadPageError, match="internal_error: no data") as failure:
        stream(upstream)
    assert (failure.value.cause, failure.value.page) == ("status_error", 0)


def test_a_line_over_the_cap_is_too_large(upstream: BadUpstream) -> None:
    long_line = [{"event_id": "obs-long", "padding": "x" * 5_000}]
    upstream.route(BULK, ndjson(LINES + long_line + LINES, chunk_size=256))
    with pytest.raises(BadPageError) as failure:
        stream(upstream, chunk_bytes=1_000, http_max_page_bytes=2_000)
    error = failure.value
    assert error.cause == "too_large" and error.page > 0
    assert len(error.body) <= 2_000
    assert_names_the_page(error, error.page, unit="chunk")


def test_a_long_stream_of_short_lines_is_not_too_large(upstream: BadUpstream) -> None:
    answer = ndjson(LINES, chunk_size=100)
    upstream.route(BULK, answer)
    assert b"".join(stream(upstream, http_max_page_bytes=200)) == answer.body


def test_a_trickling_stream_is_retried_then_fails(upstream: BadUpstream) -> None:
    upstream.route(BULK, ndjson(LINES).trickled(0.2))
    with pytest.raises(PullError) as failure:
        stream(upstream, http_request_deadline_seconds=1, http_timeout_seconds=5)
    assert "failed after 2 attempts" in str(failure.value)
    assert "HUB_HTTP_REQUEST_DEADLINE_SECONDS" in str(failure.value)
    assert len(upstream.requests(BULK)) == 2


def test_a_stream_that_trickles_midway_fails_without_retry(upstream: BadUpstream) -> None:
    upstream.route(BULK, ndjson(LINES).trickled(0.2, after=3_000))
    received: list[bytes] = []
    with pytest.raises(PullError, match="stream broke midway"):
        stream(upstream, 1_000, received, http_request_deadline_seconds=1, http_timeout_seconds=5)
    assert received, "the chunks before the trickle were handed on"
    assert len(upstream.requests(BULK)) == 1


def test_a_stream_stops_at_the_listing_deadline(upstream: BadUpstream) -> None:
    upstream.route(BULK, ndjson(LINES).trickled(0.05))
    with pytest.raises(PullError, match="HUB_PULL_DEADLINE_SECONDS") as failure:
        stream(upstream, pull_deadline_seconds=1, http_timeout_seconds=5)
    assert f"GET {BULK}, window {WINDOW}" in str(failure.value)
