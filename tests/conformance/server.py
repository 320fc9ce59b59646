"""A second implementation of the six modules' HTTP API, written from MODULES.md alone.

One threaded HTTP server on 127.0.0.1 (a free port) serves every module under its own base
URL, ``http://127.0.0.1:<port>/<module>``, with the module's bearer token (401 otherwise).
What it serves is the installed ``World``; how it serves it varies where the contract
leaves room, deterministically from the world's seed:

- page sizes are random and may be below the requested ``limit`` (even empty pages that
  carry a ``next_page_token``), records are shuffled across pages and, within a page,
  kept, reversed or shuffled;
- page tokens are opaque (base64, with ``+``, ``/`` and ``=``);
- the page object's keys come in any order, compact or indented, ASCII-escaped or not;
- with ``transient_one_in``, the first attempt of some requests answers 429 or 503 with
  ``Retry-After: 0``;
- ``/metrics.ndjson`` streams the window in chunks (``Transfer-Encoding: chunked``), in
  any order, with or without a final newline.
"""

from __future__ import annotations

import base64
import random
import re
import secrets
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from conformance.contract import ENTITIES, SERVICES, Entity
from conformance.wire import dumps
from conformance.worlds import Served, World

ERROR_CODES = {429: "rate_limited", 500: "internal_error", 503: "service_unavailable"}
MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1_000


@dataclass(frozen=True)
class Route:
    entity: Entity
    pattern: re.Pattern[str]
    ndjson: bool = False


def _routes() -> dict[str, list[Route]]:
    routes: dict[str, list[Route]] = {}
    for ent in ENTITIES:
        regex = "^" + re.escape(ent.path).replace(r"\{id\}", "([^/]+)") + "$"
        routes.setdefault(ent.module, []).append(Route(ent, re.compile(regex)))
        if ent.id == "observatory.metrics":
            routes[ent.module].append(
                Route(ent, re.compile("^" + re.escape(ent.path + ".ndjson") + "$"), ndjson=True)
            )
    return routes


ROUTES = _routes()


class RequestError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code = status, code


@dataclass
class Logged:
    module: str
    path: str
    query: dict[str, str]
    status: int


@dataclass
class _State:
    world: World | None = None
    served: dict[str, list[Served]] = field(default_factory=dict)
    cursors: dict[str, tuple[tuple[Any, ...], int]] = field(default_factory=dict)
    plans: dict[tuple[Any, ...], tuple[list[list[dict[str, Any]]], list[str], random.Random]] = (
        field(default_factory=dict)
    )
    failed_once: set[tuple[Any, ...]] = field(default_factory=set)
    log: list[Logged] = field(default_factory=list)


class ConformanceServer:
    """The six modules, served from one installed ``World`` at a time."""

    def __init__(self) -> None:
        self.tokens = {module: f"conf-{module}-{secrets.token_hex(6)}" for module in SERVICES}
        self._state = _State()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in separate writes

            def do_GET(self) -> None:
                server._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, module: str) -> str:
        return f"http://127.0.0.1:{self.port}/{module}"

    def __enter__(self) -> ConformanceServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def install(self, world: World) -> None:
        with self._lock:
            self._state = _State(world=world, served=world.served())

    @contextmanager
    def serving(self, world: World) -> Iterator[ConformanceServer]:
        self.install(world)
        try:
            yield self
        finally:
            with self._lock:
                self._state = _State()

    @property
    def log(self) -> list[Logged]:
        return list(self._state.log)

    # --- requests ---------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        module, _, rest = parts.path.lstrip("/").partition("/")
        status = 200
        try:
            if module not in self.tokens:
                raise RequestError(404, "not_found", f"no module at /{module}")
            if handler.headers.get("Authorization") != f"Bearer {self.tokens[module]}":
                raise RequestError(401, "unauthorized", "missing or wrong bearer token")
            route, parent = self._route(module, "/" + rest)
            with self._lock:
                state = self._state
            if state.world is None:
                raise RequestError(503, "service_unavailable", "no world installed")
            window = _window(query) if route.entity.windowed else None
            records = [
                s
                for s in state.served.get(route.entity.id, [])
                if (parent is None or s.parent == parent)
                and (window is None or s.at is None or window[0] <= s.at < window[1])
            ]
            key = (module, parts.path, query.get("from"), query.get("to"), query.get("limit"))
            rng = random.Random(f"{state.world.seed}|{key}")
            if self._fails_once(state, (*key, query.get("page_token")), rng):
                status = rng.choice(state.world.transient_statuses)
                raise RequestError(status, ERROR_CODES[status], "try again")
            if route.ndjson:
                self._stream(handler, records, rng)
            else:
                self._page(handler, state, key, query, records, rng)
        except RequestError as error:
            status = error.status
            self._error(handler, error)
        finally:
            with self._lock:
                self._state.log.append(Logged(module, parts.path, query, status))

    def _route(self, module: str, path: str) -> tuple[Route, str | None]:
        for route in ROUTES[module]:
            match = route.pattern.match(path)
            if match:
                return route, unquote(match.group(1)) if match.groups() else None
        raise RequestError(404, "not_found", f"{module} serves no {path}")

    def _fails_once(self, state: _State, key: tuple[Any, ...], rng: random.Random) -> bool:
        one_in = state.world.transient_one_in if state.world else 0
        with self._lock:
            if not one_in or key in state.failed_once:
                return False
            state.failed_once.add(key)
        return random.Random(f"fail|{key}|{rng.random()}").randrange(one_in) == 0

    def _page(
        self,
        handler: BaseHTTPRequestHandler,
        state: _State,
        key: tuple[Any, ...],
        query: dict[str, str],
        records: list[Served],
        rng: random.Random,
    ) -> None:
        limit = _limit(query)
        token = query.get("page_token")
        with self._lock:
            if token:
                if token not in state.cursors or state.cursors[token][0] != key:
                    raise RequestError(400, "bad_request", "unknown page_token")
                plan_key, index = state.cursors[token]
                pages, tokens, rng = state.plans[plan_key]
            else:
                pages = _split([s.wire for s in records], limit, rng)
                tokens = [base64.b64encode(rng.randbytes(10)).decode() for _ in pages]
                state.plans[key] = (pages, tokens, rng)
                for number, page_token in enumerate(tokens):
                    state.cursors[page_token] = (key, number)
                index = 0
        last = index == len(pages) - 1
        body = {
            "status": "success",
            "data": pages[index],
            "next_page_token": None if last else tokens[index + 1],
            "meta": {"request_id": str(uuid.UUID(int=rng.getrandbits(128))), "api_version": "v1"},
        }
        if rng.random() < 0.3:
            body["meta"]["count"] = len(pages[index])
        order = list(body)
        rng.shuffle(order)
        text = dumps(
            {k: body[k] for k in order},
            indent=rng.choice([None, None, 2]),
            ascii_only=rng.random() < 0.5,
            spaced=rng.random() < 0.5,
        )
        self._send(handler, 200, text.encode(), "application/json")

    def _stream(
        self, handler: BaseHTTPRequestHandler, records: list[Served], rng: random.Random
    ) -> None:
        wires = [s.wire for s in records]
        rng.shuffle(wires)
        lines = [dumps(w, ascii_only=rng.random() < 0.5) for w in wires]
        text = "\n".join(lines) + ("\n" if lines and rng.random() < 0.7 else "")
        data = text.encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/x-ndjson")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        at = 0
        while at < len(data):
            size = rng.randint(1, 4096)
            chunk = data[at : at + size]
            handler.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            at += size
        handler.wfile.write(b"0\r\n\r\n")

    def _error(self, handler: BaseHTTPRequestHandler, error: RequestError) -> None:
        body = dumps(
            {
                "status": "error",
                "error": {"code": error.code, "message": str(error), "status_code": error.status},
            }
        ).encode()
        headers = {"Retry-After": "0"} if error.status in (429, 503) else {}
        self._send(handler, error.status, body, "application/json", headers)

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)


def _window(query: dict[str, str]) -> tuple[datetime, datetime] | None:
    start, end = query.get("from"), query.get("to")
    if not start and not end:
        return None
    if not (start and end):
        raise RequestError(400, "validation_error", "give both from and to, or neither")
    try:
        bounds = datetime.fromisoformat(start), datetime.fromisoformat(end)
    except ValueError as exc:
        raise RequestError(400, "validation_error", f"bad window: {exc}") from exc
    if bounds[0].tzinfo is None or bounds[1].tzinfo is None or bounds[0] >= bounds[1]:
        raise RequestError(400, "validation_error", "from/to must be zoned, from < to")
    return bounds


def _limit(query: dict[str, str]) -> int:
    try:
        limit = int(query.get("limit", DEFAULT_LIMIT))
    except ValueError as exc:
        raise RequestError(400, "validation_error", "limit is not an integer") from exc
    if not 1 <= limit <= MAX_LIMIT:
        raise RequestError(400, "validation_error", f"limit must be 1..{MAX_LIMIT}")
    return limit


def _split(
    records: list[dict[str, Any]], limit: int, rng: random.Random
) -> list[list[dict[str, Any]]]:
    """Random pages (never above ``limit``), records shuffled; some pages empty."""
    records = list(records)
    rng.shuffle(records)
    pages: list[list[dict[str, Any]]] = []
    empty_pages = 0
    while records:
        size = min(limit, rng.choice([0, 1, 1, 2, 3, 5, 8]))
        if size == 0:
            if empty_pages >= 2:
                continue
            empty_pages += 1
        page, records = records[:size], records[size:]
        order = rng.choice(["kept", "reversed", "shuffled"])
        if order == "reversed":
            page.reverse()
        elif order == "shuffled":
            rng.shuffle(page)
        pages.append(page)
    if not pages or rng.random() < 0.2:
        pages.append([])  # an empty window, or an empty last page after a token
    return pages
