"""A misbehaving module: one HTTP server on 127.0.0.1 that answers each path as it is told.

The simulators and the conformance server keep the contract; this one breaks it on
purpose, one way per path, so a test can point the hub at a page that is HTML, truncated,
an error with status 200, a token loop, a trickle, and see what the hub makes of it::

    with BadUpstream() as upstream:
        upstream.route(PATH, listing([[rec_a], [rec_b], [rec_c]], faults={1: html_page()}))
        endpoint = Endpoint(upstream.url, upstream.token)
        ...  # the hub pulls PATH: page 0 is fine, page 1 is HTML
        assert [r.page_token for r in upstream.requests(PATH)] == [None, "page-1"]

Three kinds of pieces:

- ``Answer``: one HTTP answer (status, Content-Type, headers, body) and how its bytes go
  out: at once, after a ``delay``, in chunks (``chunked``), byte by byte (``trickled``),
  or cut off by a dropped connection (``dropped``). Built by ``json_page``,
  ``error_page``, ``html_page``, ``ndjson``, ``bad_byte_page``, ``padded_page``; varied
  by its methods (``cut``, ``typed``, ``trickled``, ...).
- ``Request``: what a handler is given: path, query, headers, and ``attempt``, the number
  of earlier requests with the same path and query (0 the first time), so a handler can
  fail the first tries and then answer.
- a handler, ``Callable[[Request], Answer]``, set per path with ``BadUpstream.route``.
  Ready-made ones: ``always``, ``attempts``, ``listing`` (pages linked by tokens
  ``page-1``, ``page-2``, ... with any page replaced by a fault), ``repeating_token``,
  ``endless`` and ``by_window`` (a handler per window, keyed by the ``from`` parameter).

A path with no route answers 404, a wrong bearer token 401, a handler that raises 500;
all three in the contract's error shape. Each request is logged (``requests``) as it
comes, before it is answered, so a trickle still being sent is in the log.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

__all__ = [
    "Answer",
    "BadUpstream",
    "Handler",
    "Request",
    "always",
    "attempts",
    "bad_byte_page",
    "by_window",
    "endless",
    "error_page",
    "html_page",
    "json_page",
    "listing",
    "ndjson",
    "padded_page",
    "page_body",
    "repeating_token",
    "sample_records",
]

DEFAULT_TOKEN = "bad-upstream-token"
_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


# --- answers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One HTTP answer and the way its bytes are sent.

    ``content_type`` None sends no Content-Type header. The body goes out with a
    Content-Length, or chunked when ``chunk_size`` is set. ``delay`` waits before the
    status line (a stall), ``byte_seconds`` before each byte of the body from byte
    ``trickle_from`` on (a trickle; the bytes before it go at once), and ``drop_after`` closes the connection after that many body bytes although more
    were announced (a dropped connection, unlike ``cut``, which is a short but complete
    answer).
    """

    status: int = 200
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    byte_seconds: float = 0.0
    trickle_from: int = 0
    chunk_size: int | None = None
    drop_after: int | None = None

    def typed(self, content_type: str | None) -> Answer:
        """The same answer under another Content-Type (None: no header at all)."""
        return replace(self, content_type=content_type)

    def with_headers(self, **headers: str) -> Answer:
        """Extra headers; ``Retry_After="1"`` is sent as ``Retry-After: 1``."""
        extra = tuple((name.replace("_", "-"), value) for name, value in headers.items())
        return replace(self, headers=self.headers + extra)

    def cut(self, keep: int) -> Answer:
        """Only the first ``keep`` bytes of the body, as a complete answer of that length."""
        return replace(self, body=self.body[:keep])

    def delayed(self, seconds: float) -> Answer:
        return replace(self, delay=seconds)

    def trickled(self, seconds_per_byte: float = 1.0, *, after: int = 0) -> Answer:
        """Byte by byte, ``seconds_per_byte`` apart, once the first ``after`` bytes are out."""
        return replace(self, byte_seconds=seconds_per_byte, trickle_from=after)

    def chunked(self, size: int = 64 * 1024) -> Answer:
        return replace(self, chunk_size=size)

    def dropped(self, after: int) -> Answer:
        return replace(self, drop_after=after)


def sample_records(count: int, *, start: int = 0, prefix: str = "rec") -> list[dict[str, Any]]:
    """``count`` small distinct records: ``{"event_id": "rec-0", "n": 0}``, ..."""
    return [{"event_id": f"{prefix}-{n}", "n": n} for n in range(start, start + count)]


def page_body(
    records: Sequence[object],
    next_token: str | None = None,
    *,
    status: str = "success",
    camel: bool = False,
) -> bytes:
    """A contract page (``camel``: ``nextPageToken`` instead of ``next_page_token``)."""
    token_key = "nextPageToken" if camel else "next_page_token"
    page = {
        "status": status,
        "data": list(records),
        token_key: next_token,
        "meta": {"request_id": "bad-upstream", "api_version": "v1"},
    }
    return orjson.dumps(page)


def json_page(
    records: Sequence[object] = (),
    next_token: str | None = None,
    *,
    status: str = "success",
    camel: bool = False,
) -> Answer:
    return Answer(body=page_body(records, next_token, status=status, camel=camel))


def error_page(
    http_status: int = 200, code: str = "internal_error", message: str = "something broke"
) -> Answer:
    """The contract's error body; with the default status 200, an error that claims success."""
    error = {"code": code, "message": message, "status_code": http_status}
    return Answer(http_status, orjson.dumps({"status": "error", "error": error}))


def html_page(http_status: int = 200) -> Answer:
    """What a proxy or a login wall sends instead of the module."""
    body = b"<!DOCTYPE html><html><body><h1>Sign in</h1><p>Session expired.</p></body></html>"
    return Answer(http_status, body, "text/html; charset=utf-8")


def ndjson(
    records: Sequence[object],
    *,
    content_type: str | None = "application/x-ndjson",
    final_newline: bool = True,
    chunk_size: int | None = 64 * 1024,
) -> Answer:
    """Newline-delimited records, chunked like a stream unless ``chunk_size`` is None."""
    body = b"\n".join(orjson.dumps(record) for record in records)
    if final_newline and body:
        body += b"\n"
    return Answer(body=body, content_type=content_type, chunk_size=chunk_size)


_MARK = "@@bad-byte@@"


def bad_byte_page(
    records: Sequence[dict[str, Any]],
    next_token: str | None = None,
    *,
    record: int = 0,
    key: str = "note",
) -> Answer:
    """A page whose one record has a byte that is not UTF-8 (0xE9, Latin-1 é) under ``key``."""
    marked = [dict(r) for r in records]
    marked[record][key] = f"caf{_MARK}"
    return Answer(body=page_body(marked, next_token).replace(_MARK.encode(), b"\xe9"))


def padded_page(size: int, next_token: str | None = None) -> Answer:
    """A valid page of one record, padded to at least ``size`` bytes."""
    return json_page([{"event_id": "rec-padded", "padding": "x" * size}], next_token)


# --- handlers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    attempt: int  # earlier requests with the same path and query

    @property
    def page_token(self) -> str | None:
        return self.query.get("page_token")


Handler = Callable[[Request], Answer]


def always(answer: Answer) -> Handler:
    return lambda request: answer


def attempts(*answers: Answer) -> Handler:
    """The n-th try of a request gets ``answers[n]``; the last one answers every later try."""
    if not answers:
        raise ValueError("attempts() needs at least one answer")
    return lambda request: answers[min(request.attempt, len(answers) - 1)]


def _token(number: int) -> str:
    return f"page-{number}"


def listing(
    pages: Sequence[Sequence[object]],
    *,
    faults: Mapping[int, Answer | Handler] | None = None,
    camel: bool = False,
) -> Handler:
    """Pages in order, page n reached with token ``page-n`` (page 0 without one).

    ``faults`` replaces page n by another answer, or by a handler (``attempts(...)`` for a
    page that fails a few times first). An unknown token is a 400.
    """
    faults = dict(faults or {})

    def answer(request: Request) -> Answer:
        token = request.page_token
        number = 0 if token is None else _page_number(token)
        if number is None or not 0 <= number < len(pages):
            return error_page(400, "bad_request", f"unknown page_token {token!r}")
        fault = faults.get(number)
        if isinstance(fault, Answer):
            return fault
        if fault is not None:
            return fault(request)
        following = _token(number + 1) if number + 1 < len(pages) else None
        return json_page(pages[number], following, camel=camel)

    return answer


def _page_number(token: str) -> int | None:
    prefix, _, number = token.partition("-")
    return int(number) if prefix == "page" and number.isdigit() else None


def repeating_token(records: Sequence[object], token: str = "again") -> Handler:
    """Every page names ``token`` as the next one: a listing that would loop forever."""
    return always(json_page(records, token))


def endless(records: Sequence[object], *, delay: float = 0.0) -> Handler:
    """Page n links to page n+1, each with a new token, without end; ``delay`` per page."""

    def answer(request: Request) -> Answer:
        token = request.page_token
        number = 0 if token is None else (_page_number(token) or 0)
        return json_page(records, _token(number + 1)).delayed(delay)

    return answer


def by_window(handlers: Mapping[str, Handler], default: Handler | None = None) -> Handler:
    """A handler per window, keyed by its ``from`` parameter as sent (``2026-11-25T10:00:00Z``).

    A window with no handler gets ``default``, or a 400 if there is none.
    """

    def answer(request: Request) -> Answer:
        handler = handlers.get(request.query.get("from", ""), default)
        if handler is None:
            return error_page(400, "bad_request", f"no answer set for window {request.query}")
        return handler(request)

    return answer


# --- the server ---------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a trickle still running must not hold up exit

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that hangs up on a trickle or a stall is what the tests provoke
        if not isinstance(sys.exc_info()[1], _GONE):
            super().handle_error(request, client_address)


@dataclass
class _Routes:
    handlers: dict[str, Handler] = field(default_factory=dict)
    seen: dict[tuple[str, tuple[tuple[str, str], ...]], int] = field(default_factory=dict)
    log: list[Request] = field(default_factory=list)


class BadUpstream:
    """The server; a context manager that starts it on a free port and stops it.

    ``token``: the bearer token it requires (None: any or none). ``url`` is the base URL
    to give the hub; routes are paths below it, such as ``/api/v1/violations``.
    """

    def __init__(self, token: str | None = DEFAULT_TOKEN):
        self.token = token
        self._routes = _Routes()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # so a trickle's bytes leave one by one

            def do_GET(self) -> None:
                upstream._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="bad-upstream", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> BadUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def route(self, path: str, handler: Handler | Answer) -> None:
        """Answer ``path`` (exact, without query) with ``handler`` from now on."""
        with self._lock:
            self._routes.handlers[path] = (
                always(handler) if isinstance(handler, Answer) else handler
            )

    def reset(self) -> None:
        """Forget every route, attempt count and logged request."""
        with self._lock:
            self._routes = _Routes()

    def requests(self, path: str | None = None) -> list[Request]:
        """The requests answered so far (to ``path`` only, if given), oldest first."""
        with self._lock:
            return [r for r in self._routes.log if path is None or r.path == path]

    # --- serving ------------------------------------------------------------------------

    def _handle(self, http: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(http.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        key = (parts.path, tuple(sorted(query.items())))
        with self._lock:
            routes = self._routes
            attempt = routes.seen.get(key, 0)
            routes.seen[key] = attempt + 1
            handler = routes.handlers.get(parts.path)
            request = Request(parts.path, query, dict(http.headers.items()), attempt)
            routes.log.append(request)
        if self.token is not None and http.headers.get("Authorization") != f"Bearer {self.token}":
            answer = error_page(401, "unauthorized", "missing or wrong bearer token")
        elif handler is None:
            answer = error_page(404, "not_found", f"no route for {parts.path}")
        else:
            try:
                answer = handler(request)
            except Exception:
                answer = error_page(500, "internal_error", traceback.format_exc(limit=3))
        try:
            self._send(http, answer)
        except _GONE:
            http.close_connection = True  # the client gave up first: what the test wanted

    def _send(self, http: BaseHTTPRequestHandler, answer: Answer) -> None:
        if answer.delay and self._stopping.wait(answer.delay):
            http.close_connection = True
            return
        http.send_response(answer.status)
        if answer.content_type is not None:
            http.send_header("Content-Type", answer.content_type)
        for name, value in answer.headers:
            http.send_header(name, value)
        if answer.chunk_size:
            http.send_header("Transfer-Encoding", "chunked")
        else:
            http.send_header("Content-Length", str(len(answer.body)))
        if answer.drop_after is not None:
            http.send_header("Connection", "close")
        http.end_headers()
        body = answer.body
        if answer.drop_after is not None:
            body = body[: answer.drop_after]
        for piece, trickling in self._pieces(answer, body):
            if trickling and self._stopping.wait(answer.byte_seconds):
                http.close_connection = True
                return
            if answer.chunk_size:
                http.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            else:
                http.wfile.write(piece)
        if answer.drop_after is not None:
            http.close_connection = True
        elif answer.chunk_size:
            http.wfile.write(b"0\r\n\r\n")

    @staticmethod
    def _pieces(answer: Answer, body: bytes) -> Iterator[tuple[bytes, bool]]:
        """The body's writes, each with whether it is a trickled byte."""
        size = answer.chunk_size or len(body) or 1
        at_once = body[: answer.trickle_from] if answer.byte_seconds else body
        for at in range(0, len(at_once), size):
            yield at_once[at : at + size], False
        for at in range(len(at_once), len(body)):
            yield body[at : at + 1], True
