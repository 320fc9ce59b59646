"""HTTP pulls from the platform's modules: windows, paging, bearer auth and retries.

The contract: 429 and 5xx (and a stalled, dropped or trickling connection) are retried with
backoff, honouring ``Retry-After``; any other 4xx is not, since asking again cannot
help. A pull that finally fails raises ``PullError`` naming module, endpoint and window.

A page is handed on only once it has been checked: a JSON object whose ``status`` is
"success", with a ``data`` list and a next token not seen before in the listing; anything
else is a ``BadPageError``, which carries what was received. Nothing a module sends is
unbounded: a page's (or an NDJSON line's) size, one request's time, and a listing's pages
and time all have a limit in the settings.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from analytics_hub.settings import HubSettings
from analytics_hub.sources import Module
from analytics_hub.windows import Window

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# An error envelope is a few hundred bytes; a proxy's error page past this is cut.
ERROR_BODY_BYTES = 64 * 1024
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoint:
    """Where a module answers, the token it expects, and the zone of its zoneless times."""

    base_url: str
    token: str = field(repr=False)
    local_timezone: str | None = None  # None: the module's default from the source table


@dataclass(frozen=True)
class Page:
    number: int
    body: bytes
    path: str


class PullError(RuntimeError):
    """A pull failed for good; the message says which module, endpoint and window."""


class BadPageError(PullError):
    """A page (or a chunk of an NDJSON stream) that breaks the contract; the listing stops.

    ``page`` is its 0-based number in the listing (for a stream, the chunk's), ``path``
    the endpoint, ``body`` what was received (cut at ``http_max_page_bytes``, empty when a
    declared length was over it) and ``cause`` one of: ``not_json``, ``not_an_object``,
    ``status_error``, ``data_not_list``, ``bad_token`` (a next token that is neither text
    nor a number), ``repeated_token``, ``content_type``, ``too_large``.
    """

    def __init__(self, message: str, *, page: int, path: str, body: bytes, cause: str):
        super().__init__(message)
        self.page = page
        self.path = path
        self.body = body
        self.cause = cause

    def __reduce__(self) -> tuple[Any, ...]:
        # The attributes are keyword-only, which the default pickling of exceptions loses.
        rebuild = functools.partial(
            BadPageError, page=self.page, path=self.path, body=self.body, cause=self.cause
        )
        return (rebuild, (str(self),))


class RetryableError(Exception):
    """An answer or failure worth another attempt (429, 5xx, a timeout, a dropped
    connection); ``retry_after``: the seconds the server asked for, if it did."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class _PageError(Exception):
    """A page's contract breach, before the client adds module, endpoint and page."""

    def __init__(self, cause: str, reason: str, body: bytes):
        super().__init__(reason)
        self.cause = cause
        self.reason = reason
        self.body = body


class _Clock:
    """What a listing has spent waiting on its module, against the two deadlines.

    The caller's time between two pages is not counted (``pause``/``resume``): a slow
    write downstream must not fail a healthy module.
    """

    def __init__(self, settings: HubSettings, listing: str):
        self.request_seconds = settings.http_request_deadline_seconds
        self.listing_seconds = settings.pull_deadline_seconds
        self.listing = listing
        self.spent = 0.0
        self.since = self.request_started = time.monotonic()

    def pause(self) -> None:
        self.spent += time.monotonic() - self.since

    def resume(self) -> None:
        self.since = self.request_started = time.monotonic()

    def start_request(self) -> None:
        self.request_started = time.monotonic()
        self.check()

    def check(self) -> None:
        now = time.monotonic()
        if self.spent + now - self.since > self.listing_seconds:
            raise PullError(
                f"{self.listing}: not finished after {self.listing_seconds:g} s of waiting "
                "on the module (HUB_PULL_DEADLINE_SECONDS)"
            )
        if now - self.request_started > self.request_seconds:
            raise RetryableError(
                f"response not complete after {self.request_seconds:g} s "
                "(HUB_HTTP_REQUEST_DEADLINE_SECONDS)"
            )


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def error_message(status: int, body: bytes) -> str:
    try:
        error = orjson.loads(body)["error"]
        return f"{status} {error['code']}: {error['message']}"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return f"{status} {body[:200].decode('utf-8', 'replace')}"


_NOT_JSON_KINDS = frozenset({"text", "image", "audio", "video", "font", "model", "multipart"})
_LIBERAL_TYPES = frozenset({"text/plain", "application/octet-stream"})


def _clearly_not_json(content_type: str | None) -> bool:
    # Modules label JSON and NDJSON in many ways (json, x-ndjson, jsonl, +json, text/plain,
    # none at all): refuse only what is plainly another format, such as a proxy's HTML page.
    media = (content_type or "").partition(";")[0].strip().lower()
    kind, _, subtype = media.partition("/")
    if not media or "json" in subtype or media in _LIBERAL_TYPES:
        return False
    return kind in _NOT_JSON_KINDS or subtype == "xml" or subtype.endswith(("+xml", "html"))


def _json_type(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"


def _parse(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    # A bad byte inside one record is that record's fault, which the parser downstream
    # dead-letters on its own: the page is bad only if it is not JSON even so.
    try:
        return orjson.loads(body.decode("utf-8", "replace"))
    except orjson.JSONDecodeError as exc:
        reason = f"not JSON ({exc.msg} at char {exc.pos} of {len(body)} bytes)"
        raise _PageError("not_json", reason, body) from None


def _status_fault(page: dict[str, Any], body: bytes) -> _PageError:
    status = page.get("status")
    reason = "no status" if status is None else f"status {status!r}"
    error = page.get("error")
    if isinstance(error, dict):
        reason += f" ({error.get('code')}: {error.get('message')})"
    return _PageError("status_error", f"{reason}, not 'success'", body)


def _check_page(body: bytes, on_records: Callable[[list[Any]], None] | None) -> str | None:
    """The next page token of a page that keeps the contract (None on the last page)."""
    page = _parse(body)
    if not isinstance(page, dict):
        raise _PageError("not_an_object", f"not a JSON object but {_json_type(page)}", body)
    status = page.get("status")
    if not (isinstance(status, str) and status.strip().lower() == "success"):
        raise _status_fault(page, body)
    data = page.get("data")
    if not isinstance(data, list):
        shape = "no 'data'" if "data" not in page else f"'data' is {_json_type(data)}"
        raise _PageError("data_not_list", f"{shape}, not a list of records", body)
    if on_records is not None:
        on_records(data)
    token = page.get("next_page_token")
    if token is None or token == "":
        token = page.get("nextPageToken")
    if token is None or token == "":
        return None
    if isinstance(token, str):
        return token
    if isinstance(token, int) and not isinstance(token, bool):
        return str(token)
    raise _PageError("bad_token", f"next_page_token is {_json_type(token)}, not text", body)


def _error_envelope(lines: bytes) -> _PageError | None:
    """The error a stream sent as its first line with status 200, if it did."""
    first = lines.partition(b"\n")[0]
    try:
        line = orjson.loads(first)
    except orjson.JSONDecodeError:
        return None  # a bad record, for the parser downstream
    if (
        isinstance(line, dict)
        and isinstance(line.get("status"), str)
        and line["status"].strip().lower() == "error"
        and isinstance(line.get("error"), dict)
    ):
        return _status_fault(line, lines)
    return None


def _shorten(text: str, most: int = 80) -> str:
    return text if len(text) <= most else text[: most - 3] + "..."


def http_retrying(settings: HubSettings, who: str) -> Retrying:
    """The retry policy of every HTTP call the hub makes: a ``RetryableError`` is tried
    again up to ``http_max_attempts`` in all, after the answer's Retry-After or an
    exponential backoff with jitter, capped at ``http_max_backoff_seconds``."""
    exponential = wait_exponential_jitter(multiplier=0.5, max=settings.http_max_backoff_seconds)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetryableError) and error.retry_after is not None:
            return min(error.retry_after, settings.http_max_backoff_seconds)
        return float(exponential(state))

    def log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        pause = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s: attempt %d failed (%s); retrying in %.1f s",
            who,
            state.attempt_number,
            error,
            pause,
        )

    return Retrying(
        retry=retry_if_exception(lambda e: isinstance(e, RetryableError)),
        wait=wait,
        stop=stop_after_attempt(settings.http_max_attempts),
        before_sleep=log_retry,
        reraise=True,
    )


class ModuleClient:
    """Pulls one module's endpoints; one instance per task, closed when done."""

    def __init__(self, module: Module, endpoint: Endpoint, settings: HubSettings):
        self.module = module
        self.endpoint = endpoint
        self.settings = settings
        self._http = httpx.Client(
            base_url=endpoint.base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {endpoint.token}", "Accept": "application/json"},
            timeout=settings.http_timeout_seconds,
        )
        self._retrying = http_retrying(settings, module.service)

    def __enter__(self) -> ModuleClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def _describe(self, path: str, window: Window | None) -> str:
        span = f"window {window}" if window else "no window"
        return f"module {self.module.name!r} ({self.module.service}) GET {path}, {span}"

    def _bad(
        self, fault: _PageError, path: str, window: Window | None, number: int, unit: str
    ) -> BadPageError:
        return BadPageError(
            f"{self._describe(path, window)}, {unit} {number}: {fault.reason}",
            page=number,
            path=path,
            body=fault.body,
            cause=fault.cause,
        )

    def _gave_up(self, path: str, window: Window | None, exc: RetryableError) -> PullError:
        return PullError(
            f"{self._describe(path, window)} failed after "
            f"{self.settings.http_max_attempts} attempts: {exc}"
        )

    def _receive(self, response: httpx.Response, most: int, clock: _Clock) -> tuple[bytes, bool]:
        """The body, and whether it was whole: reading stops past ``most`` bytes."""
        # a list, not bytes +=: re-concatenating a growing buffer is quadratic
        parts: list[bytes] = []
        room = most
        for block in response.iter_bytes():
            clock.check()
            if len(block) > room:
                parts.append(block[:room])
                return b"".join(parts), False
            parts.append(block)
            room -= len(block)
        return b"".join(parts), True

    def _refuse(
        self, response: httpx.Response, path: str, window: Window | None, clock: _Clock
    ) -> None:
        """Raise what an answer that is an error, or plainly not JSON, amounts to."""
        clock.check()
        if response.is_error:
            body, _ = self._receive(response, ERROR_BODY_BYTES, clock)
            message = error_message(response.status_code, body)
            if response.status_code in RETRYABLE_STATUS:
                raise RetryableError(message, retry_after(response))
            raise PullError(f"{self._describe(path, window)} failed: {message}")
        content_type = response.headers.get("Content-Type")
        if _clearly_not_json(content_type):
            body, _ = self._receive(response, self.settings.http_max_page_bytes, clock)
            raise _PageError("content_type", f"Content-Type {content_type!r} is not JSON", body)

    def _get(
        self, path: str, params: dict[str, Any], window: Window | None, clock: _Clock
    ) -> bytes:
        most = self.settings.http_max_page_bytes
        too_large = f"larger than {most} bytes (HUB_HTTP_MAX_PAGE_BYTES)"

        def attempt() -> bytes:
            clock.start_request()
            try:
                with self._http.stream("GET", path, params=params) as response:
                    self._refuse(response, path, window, clock)
                    declared = response.headers.get("Content-Length", "")
                    if declared.isdigit() and int(declared) > most:
                        raise _PageError("too_large", f"{too_large}: {declared} declared", b"")
                    body, whole = self._receive(response, most, clock)
                    if not whole:
                        raise _PageError("too_large", too_large, body)
                    return body
            except httpx.TransportError as exc:
                raise RetryableError(f"{type(exc).__name__}: {exc}") from exc

        try:
            return self._retrying(attempt)
        except RetryableError as exc:
            raise self._gave_up(path, window, exc) from exc

    def pages(self, path: str, window: Window | None) -> Iterator[Page]:
        """Every page of a list endpoint, each checked, following its next token to the end."""
        yield from self._checked_pages(path, window, None)

    def _checked_pages(
        self,
        path: str,
        window: Window | None,
        on_records: Callable[[list[Any]], None] | None,
    ) -> Iterator[Page]:
        params: dict[str, Any] = {"limit": self.settings.page_limit}
        if window is not None:
            params |= window.query()
        clock = _Clock(self.settings, self._describe(path, window))
        seen: dict[str, int] = {}  # token -> the page that gave it
        number = 0
        while True:
            if number >= self.settings.http_max_pages:
                raise PullError(
                    f"{self._describe(path, window)}: still more pages after "
                    f"{self.settings.http_max_pages} (HUB_HTTP_MAX_PAGES); the listing "
                    "does not end"
                )
            try:
                body = self._get(path, params, window, clock)
                token = _check_page(body, on_records)
                if token is not None and token in seen:
                    raise _PageError(
                        "repeated_token",
                        f"next_page_token {_shorten(token)!r} repeats the one of page "
                        f"{seen[token]}, so the listing would loop",
                        body,
                    )
            except _PageError as fault:
                raise self._bad(fault, path, window, number, "page") from None
            clock.pause()
            yield Page(number, body, path)
            clock.resume()
            if token is None:
                return
            seen[token] = number
            params = {**params, "page_token": token}
            number += 1

    def stream_lines(self, path: str, window: Window, chunk_bytes: int) -> Iterator[bytes]:
        """An NDJSON endpoint as chunks of whole lines of about ``chunk_bytes`` each.

        A stream cut midway is retried from the start only if nothing was yielded yet;
        afterwards it is a failure, since a partial window must not land as complete.
        ``http_request_deadline_seconds`` bounds the wait for each chunk, and
        ``http_max_page_bytes`` the length of a line.
        """
        try:
            yield from self._stream_lines(path, window, chunk_bytes)
        except RetryableError as exc:
            raise self._gave_up(path, window, exc) from exc

    def _stream_lines(self, path: str, window: Window, chunk_bytes: int) -> Iterator[bytes]:
        most = self.settings.http_max_page_bytes
        clock = _Clock(self.settings, self._describe(path, window))
        yielded = 0

        def checked(lines: bytes) -> bytes:
            fault = _error_envelope(lines) if yielded == 0 else None
            if fault is not None:
                raise fault
            return lines

        for attempt in self._retrying:
            with attempt:
                clock.start_request()
                try:
                    with self._http.stream("GET", path, params=window.query()) as response:
                        self._refuse(response, path, window, clock)
                        parts: list[bytes] = []
                        size = 0
                        line = 0  # bytes since the last newline: the line being received
                        for block in response.iter_bytes():
                            clock.check()
                            parts.append(block)
                            size += len(block)
                            newline = block.rfind(b"\n")
                            line = line + len(block) if newline < 0 else len(block) - newline - 1
                            if line > most:
                                raise _PageError(
                                    "too_large",
                                    f"a line longer than {most} bytes (HUB_HTTP_MAX_PAGE_BYTES)",
                                    b"".join(parts)[:most],
                                )
                            if size >= chunk_bytes and line < size:
                                data = b"".join(parts)
                                cut = size - line
                                lines = checked(data[:cut])
                                parts, size = [data[cut:]], line
                                del data
                                clock.pause()
                                yield lines
                                clock.resume()
                                yielded += 1
                        rest = b"".join(parts)
                        if rest.strip():
                            yield checked(rest)
                        return
                except _PageError as fault:
                    raise self._bad(fault, path, window, yielded, "chunk") from None
                except (httpx.TransportError, RetryableError) as exc:
                    if yielded:
                        raise PullError(
                            f"{self._describe(path, window)}: stream broke midway: {exc}"
                        ) from exc
                    if isinstance(exc, RetryableError):
                        raise
                    raise RetryableError(f"{type(exc).__name__}: {exc}") from exc

    def list_ids(self, path: str, keys: tuple[str, ...], window: Window | None) -> list[str]:
        """The ids listed by a state endpoint (the parent of a fan-out), sorted.

        ``keys``: the names the id may come under (each casing); a record's first present
        one is its id, whatever the other records of the page use.

        A state listing comes in the order of last change, which moves between two pulls
        of the same window; sorted ids keep a re-pulled window's pages, and so its raw and
        normalized objects, identical.
        """
        ids: set[str] = set()

        def collect(records: list[Any]) -> None:
            for record in records:
                if not isinstance(record, dict):
                    continue
                found = next((record[k] for k in keys if record.get(k) not in (None, "")), None)
                if found is not None:
                    ids.add(str(found))

        for _ in self._checked_pages(path, window, collect):
            pass
        return sorted(ids)
