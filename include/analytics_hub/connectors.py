"""HTTP pulls from the platform's modules: windows, paging, bearer auth and retries.

The contract: 429 and 5xx (and a stalled or dropped connection) are retried with
backoff, honouring ``Retry-After``; any other 4xx is not, since asking again cannot
help. A pull that finally fails raises ``PullError`` naming module, endpoint and window.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
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


class _RetryableError(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _error_message(response: httpx.Response) -> str:
    try:
        error = orjson.loads(response.content)["error"]
        return f"{response.status_code} {error['code']}: {error['message']}"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return f"{response.status_code} {response.text[:200]}"


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
        exponential = wait_exponential_jitter(multiplier=0.5, max=settings.http_max_backoff_seconds)

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, _RetryableError) and error.retry_after is not None:
                return min(error.retry_after, settings.http_max_backoff_seconds)
            return float(exponential(state))

        def log_retry(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            pause = state.next_action.sleep if state.next_action else 0.0
            log.warning(
                "%s: attempt %d failed (%s); retrying in %.1f s",
                module.service,
                state.attempt_number,
                error,
                pause,
            )

        self._retrying = Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, _RetryableError)),
            wait=wait,
            stop=stop_after_attempt(settings.http_max_attempts),
            before_sleep=log_retry,
            reraise=True,
        )

    def __enter__(self) -> ModuleClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def _describe(self, path: str, window: Window | None) -> str:
        span = f"window {window}" if window else "no window"
        return f"module {self.module.name!r} ({self.module.service}) GET {path}, {span}"

    def _get(self, path: str, params: dict[str, Any], window: Window | None) -> bytes:
        def attempt() -> bytes:
            try:
                response = self._http.get(path, params=params)
            except httpx.TransportError as exc:
                raise _RetryableError(f"{type(exc).__name__}: {exc}") from exc
            if response.status_code in RETRYABLE_STATUS:
                raise _RetryableError(_error_message(response), _retry_after(response))
            if response.is_error:
                raise PullError(
                    f"{self._describe(path, window)} failed: {_error_message(response)}"
                )
            return response.content

        try:
            return self._retrying(attempt)
        except _RetryableError as exc:
            raise PullError(
                f"{self._describe(path, window)} failed after "
                f"{self.settings.http_max_attempts} attempts: {exc}"
            ) from exc

    def pages(self, path: str, window: Window | None) -> Iterator[Page]:
        """Every page of a list endpoint, following ``next_page_token`` to the end."""
        params: dict[str, Any] = {"limit": self.settings.page_limit}
        if window is not None:
            params |= window.query()
        number = 0
        while True:
            body = self._get(path, params, window)
            yield Page(number, body, path)
            token = _next_page_token(body)
            if not token:
                return
            params = {**params, "page_token": token}
            number += 1

    def stream_lines(self, path: str, window: Window, chunk_bytes: int) -> Iterator[bytes]:
        """An NDJSON endpoint as chunks of whole lines of about ``chunk_bytes`` each.

        A stream cut midway is retried from the start only if nothing was yielded yet;
        afterwards it is a failure, since a partial window must not land as complete.
        """
        try:
            yield from self._stream_lines(path, window, chunk_bytes)
        except _RetryableError as exc:
            raise PullError(
                f"{self._describe(path, window)} failed after "
                f"{self.settings.http_max_attempts} attempts: {exc}"
            ) from exc

    def _stream_lines(self, path: str, window: Window, chunk_bytes: int) -> Iterator[bytes]:
        yielded = False
        for attempt in self._retrying:
            with attempt:
                try:
                    with self._http.stream("GET", path, params=window.query()) as response:
                        if response.status_code in RETRYABLE_STATUS:
                            response.read()
                            raise _RetryableError(_error_message(response), _retry_after(response))
                        if response.is_error:
                            response.read()
                            raise PullError(
                                f"{self._describe(path, window)} failed: {_error_message(response)}"
                            )
                        # a list, not bytes +=: re-concatenating a growing buffer is quadratic
                        parts: list[bytes] = []
                        size = 0
                        for block in response.iter_raw():
                            parts.append(block)
                            size += len(block)
                            if size >= chunk_bytes:
                                data = b"".join(parts)
                                cut = data.rfind(b"\n") + 1
                                if cut:
                                    yielded = True
                                    yield data[:cut]
                                    data = data[cut:]
                                parts, size = [data], len(data)
                        rest = b"".join(parts)
                        if rest.strip():
                            yield rest
                        return
                except httpx.TransportError as exc:
                    if yielded:
                        raise PullError(
                            f"{self._describe(path, window)}: stream broke midway: {exc}"
                        ) from exc
                    raise _RetryableError(f"{type(exc).__name__}: {exc}") from exc

    def list_ids(self, path: str, keys: tuple[str, ...], window: Window | None) -> list[str]:
        """The ids listed by a state endpoint (the parent of a fan-out), sorted.

        ``keys``: the names the id may come under (each casing); a record's first present
        one is its id, whatever the other records of the page use.

        A state listing comes in the order of last change, which moves between two pulls
        of the same window; sorted ids keep a re-pulled window's pages, and so its raw and
        normalized objects, identical.
        """
        ids: set[str] = set()
        for page in self.pages(path, window):
            for record in orjson.loads(page.body).get("data") or ():
                if not isinstance(record, dict):
                    continue
                found = next((record[k] for k in keys if record.get(k) not in (None, "")), None)
                if found is not None:
                    ids.add(str(found))
        return sorted(ids)


_NEXT_PAGE_TOKEN = re.compile(rb'"next_page_token"\s*:\s*(?:null|"((?:[^"\\]|\\.)*)")')


def _next_page_token(body: bytes) -> str | None:
    # The token is a top-level key: its last occurrence. Finding it there spares a second
    # full parse of a page of up to 10,000 records.
    at = body.rfind(b'"next_page_token"')
    match = _NEXT_PAGE_TOKEN.match(body, at) if at >= 0 else None
    if match is None or match.group(1) is None:
        return None
    token: str = orjson.loads(b'"' + match.group(1) + b'"')
    return token or None
