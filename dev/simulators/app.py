"""The HTTP service: all six modules under their prefixes, the feed receivers and `/_sim` tools."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from simulators.config import SimulatorConfig
from simulators.engine import Engine, Segment, Window
from simulators.faults import FaultInjector
from simulators.specs import MODULE_SPECS, EntitySpec
from simulators.truth import compute_truth, to_us
from simulators.world import build_world

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1_000
JSON = "application/json"
ERROR_CODES = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "bad_request",
    409: "conflict",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}
# (receiver path, token holder, feed name shown by /_sim/received/{feed})
FEED_RECEIVERS = (
    ("/governance/api/v1/feeds/compliance", "governance", "governance-compliance"),
    ("/governance/api/v1/feeds/violations", "governance", "governance-violations"),
    ("/governance/api/v1/feeds/audit", "governance", "governance-audit"),
    ("/policy/api/v1/compliance/report", "policy", "policy-compliance-report"),
    ("/costops/api/v1/usage/report", "costops", "costops-usage-report"),
)


class ContractError(Exception):
    """A request the contract answers with a 4xx error body."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def error_response(
    status_code: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    body = {
        "status": "error",
        "error": {
            "code": ERROR_CODES.get(status_code, "bad_request"),
            "message": message,
            "status_code": status_code,
        },
    }
    return Response(orjson.dumps(body), status_code=status_code, media_type=JSON, headers=headers)


def success_response(data: object) -> Response:
    return Response(orjson.dumps({"status": "success", "data": data}), media_type=JSON)


def parse_bound(name: str, text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ContractError(400, f"'{name}' is not an ISO-8601 time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return to_us(moment)


def parse_window(request: Request, required: bool) -> tuple[int, int] | None:
    start, end = request.query_params.get("from"), request.query_params.get("to")
    if start is None and end is None and not required:
        return None
    if start is None or end is None:
        raise ContractError(400, "both 'from' (inclusive) and 'to' (exclusive) are required")
    start_us, end_us = parse_bound("from", start), parse_bound("to", end)
    if start_us >= end_us:
        raise ContractError(400, f"empty window: 'from' ({start}) must be before 'to' ({end})")
    return start_us, end_us


def parse_limit(request: Request) -> int:
    text = request.query_params.get("limit", str(DEFAULT_LIMIT))
    try:
        limit = int(text)
    except ValueError:
        raise ContractError(400, f"'limit' must be an integer, got {text!r}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ContractError(400, f"'limit' must be within 1..{MAX_LIMIT}, got {limit}")
    return limit


def _digest(*parts: object) -> str:
    return hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=6).hexdigest()


def encode_token(offset: int, window_digest: str) -> str:
    return base64.urlsafe_b64encode(f"{offset}.{window_digest}".encode()).decode().rstrip("=")


def decode_token(token: str | None, window_digest: str) -> int:
    if token is None:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        offset_text, digest = text.split(".")
        offset = int(offset_text)
    except ValueError:
        raise ContractError(400, "unreadable 'page_token'") from None
    if digest != window_digest or offset < 0:
        raise ContractError(400, "'page_token' belongs to another query")
    return offset


class ReceivedFeeds:
    """Pushed reports by feed and report_id: a re-post replaces, never duplicates. Every
    accepted post is also kept in order (``posts``), so a test sees how often a report came."""

    def __init__(self) -> None:
        self.by_feed: dict[str, dict[str, Any]] = {name: {} for _, _, name in FEED_RECEIVERS}
        self.posts: dict[str, list[dict[str, Any]]] = {name: [] for _, _, name in FEED_RECEIVERS}

    def store(self, feed: str, body: dict[str, Any]) -> bool:
        reports = self.by_feed[feed]
        replaced = body["report_id"] in reports
        reports[body["report_id"]] = body
        self.posts[feed].append(body)
        return replaced


def create_app(config: SimulatorConfig) -> FastAPI:
    app = FastAPI(
        title="LLM DevOps module simulators",
        docs_url="/_sim/docs",
        openapi_url="/_sim/openapi.json",
    )
    engine = Engine(config)
    faults = FaultInjector(config.seed, config.rates)
    received = ReceivedFeeds()
    app.state.engine = engine
    app.state.received = received

    @app.exception_handler(StarletteHTTPException)
    async def contract_error(_: Request, exc: StarletteHTTPException) -> Response:
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(ContractError)
    async def bad_request(_: Request, exc: ContractError) -> Response:
        return error_response(exc.status_code, exc.message)

    def authorize(request: Request, holder: str) -> None:
        if request.headers.get("authorization") != f"Bearer {config.token_of(holder)}":
            raise ContractError(401, f"missing or wrong bearer token for {holder}")

    async def inject_fault(request_key: str) -> tuple[Response | None, str]:
        """A fault response (or a stall) for this attempt, and the attempt's request id."""
        attempt = faults.next_attempt(request_key)
        request_id = "req-" + _digest(config.seed, request_key, attempt)
        fault = faults.fault_for(request_key, attempt)
        if fault is None:
            return None, request_id
        retry_after = {"Retry-After": str(config.retry_after_seconds)}
        if fault.kind == "stall":
            await asyncio.sleep(config.rates.stall_seconds)
            return None, request_id
        if fault.kind == "rate_limited":
            return error_response(429, "rate limit exceeded, retry later", retry_after), request_id
        if fault.kind == "service_unavailable":
            return error_response(503, "service temporarily unavailable", retry_after), request_id
        return error_response(500, "internal error"), request_id

    def now_us() -> int:
        return to_us(config.now or datetime.now(UTC))

    def page_response(
        window: Window,
        offset: int,
        limit: int,
        window_digest: str,
        request_id: str,
        api: str,
        order_key: str,
    ) -> Response:
        if offset > window.total:
            raise ContractError(400, "'page_token' points past the end of the window")
        next_offset = offset + limit
        token = encode_token(next_offset, window_digest) if next_offset < window.total else None
        meta = orjson.dumps({"request_id": request_id, "api_version": api})
        body = b"".join(
            (
                b'{"status":"success","data":[',
                # the order within a page follows the query, not the time of the pull, so
                # a re-pull of an unchanged listing is the same bytes
                window.records(offset, limit, shuffle=f"{config.seed}|{order_key}"),
                b'],"next_page_token":',
                orjson.dumps(token),
                b',"meta":',
                meta,
                b"}",
            )
        )
        return Response(body, media_type=JSON)

    def list_endpoint(
        module: str, spec: EntitySpec
    ) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        api_version = MODULE_SPECS[module].api_version

        async def list_records(request: Request) -> Response:
            authorize(request, module)
            limit = parse_limit(request)
            bounds = parse_window(request, required=spec.kind == "series")
            partition = None
            if spec.partition is not None:
                partition = request.path_params[spec.partition]
                if partition not in set(build_world(config.seed).extension_ids.tolist()):
                    raise ContractError(404, f"no {spec.partition} {partition!r}")
            state_now = now_us() if bounds is None else None
            window_digest = _digest(module, spec.name, partition, bounds, state_now)
            order_key = _digest(module, spec.name, partition, bounds)
            offset = decode_token(request.query_params.get("page_token"), window_digest)
            fault, request_id = await inject_fault(f"{request.url.path}?{request.url.query}")
            if fault is not None:
                return fault
            if bounds is None:
                assert state_now is not None
                window = await run_in_threadpool(engine.current_state, module, spec.name, state_now)
            else:
                window = await run_in_threadpool(
                    engine.window, module, spec.name, *bounds, partition
                )
            return page_response(
                window, offset, limit, window_digest, request_id, api_version, order_key
            )

        list_records.__name__ = f"list_{module}_{spec.name}".replace("-", "_")
        return list_records

    for module, module_spec in MODULE_SPECS.items():
        for spec in module_spec.entities:
            app.add_api_route(f"/{module}{spec.path}", list_endpoint(module, spec), methods=["GET"])

    @app.get("/registry/api/v1/assets/{asset_id}/versions")
    async def list_asset_versions(request: Request, asset_id: str) -> Response:
        authorize(request, "registry")
        limit = parse_limit(request)
        state_now = now_us()
        window_digest = _digest("registry", "versions", asset_id, state_now)
        order_key = _digest("registry", "versions", asset_id)
        offset = decode_token(request.query_params.get("page_token"), window_digest)
        fault, request_id = await inject_fault(f"{request.url.path}?{request.url.query}")
        if fault is not None:
            return fault
        window = await run_in_threadpool(engine.asset_versions, asset_id, state_now)
        if window is None:
            raise ContractError(404, f"no asset {asset_id!r}")
        return page_response(window, offset, limit, window_digest, request_id, "v1", order_key)

    @app.get("/observatory/api/v1/metrics.ndjson")
    async def stream_metrics(request: Request) -> Response:
        authorize(request, "observatory")
        bounds = parse_window(request, required=True)
        assert bounds is not None
        fault, _ = await inject_fault(f"{request.url.path}?{request.url.query}")
        if fault is not None:
            return fault
        segments = engine.segments("observatory", "metrics", *bounds)

        async def chunks() -> AsyncIterator[memoryview]:
            while True:
                segment: Segment | None = await run_in_threadpool(next, segments, None)
                if segment is None:
                    return
                for chunk in Window([segment]).ndjson():
                    yield chunk

        return StreamingResponse(chunks(), media_type="application/x-ndjson")

    def feed_endpoint(holder: str, feed: str) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        async def receive_feed(request: Request) -> Response:
            authorize(request, holder)
            try:
                body = orjson.loads(await request.body())
            except orjson.JSONDecodeError:
                raise ContractError(400, "body is not JSON") from None
            if (
                not isinstance(body, dict)
                or not isinstance(body.get("report_id"), str)
                or not body["report_id"]
            ):
                raise ContractError(
                    400, "body must be a JSON object with a non-empty string 'report_id'"
                )
            fault, _ = await inject_fault(f"POST {request.url.path} {body['report_id']}")
            if fault is not None:
                return fault
            replaced = received.store(feed, body)
            return success_response({"report_id": body["report_id"], "replaced": replaced})

        receive_feed.__name__ = f"receive_{feed}".replace("-", "_")
        return receive_feed

    for path, holder, feed in FEED_RECEIVERS:
        app.add_api_route(path, feed_endpoint(holder, feed), methods=["POST"])

    @app.get("/_sim/received/{feed}")
    async def show_received(feed: str) -> Response:
        if feed not in received.by_feed:
            raise ContractError(404, f"unknown feed {feed!r}; known: {sorted(received.by_feed)}")
        return success_response(list(received.by_feed[feed].values()))

    @app.get("/_sim/posts/{feed}")
    async def show_posts(feed: str) -> Response:
        if feed not in received.posts:
            raise ContractError(404, f"unknown feed {feed!r}; known: {sorted(received.posts)}")
        return success_response(received.posts[feed])

    @app.delete("/_sim/received")
    async def forget_received() -> Response:
        for reports in received.by_feed.values():
            reports.clear()
        for posts in received.posts.values():
            posts.clear()
        return success_response({"cleared": True})

    @app.get("/{module}/_sim/truth/{entity}")
    async def truth(request: Request, module: str, entity: str) -> Response:
        spec = _entity_or_404(module, entity)
        bounds = parse_window(request, required=True)
        assert bounds is not None
        result = await run_in_threadpool(compute_truth, config, module, spec.name, *bounds)
        return Response(orjson.dumps(result), media_type=JSON)

    @app.post("/_sim/prerender")
    async def prerender(request: Request) -> Response:
        params = request.query_params
        spec = _entity_or_404(params.get("module", ""), params.get("entity", ""))
        bounds = parse_window(request, required=True)
        assert bounds is not None
        limit = parse_limit(request)
        started = time.perf_counter()
        window = await run_in_threadpool(engine.window, params["module"], spec.name, *bounds)
        return success_response(
            {
                "records": window.total,
                "bytes": window.nbytes,
                "pages": -(-window.total // limit),
                "seconds": round(time.perf_counter() - started, 3),
                "cache_bytes": engine.cache.nbytes,
            }
        )

    @app.get("/_sim/health")
    async def health() -> Response:
        return success_response({"healthy": True, "seed": config.seed, "chaos": config.chaos})

    return app


def _entity_or_404(module: str, entity: str) -> EntitySpec:
    if module not in MODULE_SPECS:
        raise ContractError(404, f"unknown module {module!r}")
    try:
        return MODULE_SPECS[module].entity(entity)
    except KeyError:
        names = [e.name for e in MODULE_SPECS[module].entities]
        raise ContractError(404, f"unknown entity {entity!r} of {module}; known: {names}") from None
