"""Feeds out: the hub's reports, delivered to the platform's receivers (docs/feeds.md).

A feed sends one report per window, made from the rows of its report model (a dbt model
under ``models/reports``): ``deliver(conn, feed, window, receiver, settings)`` reads them,
makes the payload, and sends it unless the receiver already holds it in this form.

- The report id derives from the feed and the window only, so that a retry or a re-run
  replaces the report on the receiving side, never adds one.
- The revision is 1 for the first payload of a window, and one more each time the payload
  changes (late data rebuilt into the window); the same payload is never sent twice once
  a receiver has acknowledged it.
- 429 and 5xx answers, timeouts and dropped connections are retried (``connectors.
  http_retrying``: Retry-After honoured); any 2xx is success; another 4xx fails the
  delivery with an error naming the feed, the window, the status and the receiver's
  message.
- The delivery ledger (``hub_meta.feed_deliveries``) keeps one row per feed, window and
  revision: the report id, the payload's hash, the attempts, the status (``sent`` or
  ``failed``), the receiver's answer and when it was sent.

Deliveries of one feed run one at a time (a transaction-scoped advisory lock per feed), so
two runs that overlap cannot both send a revision.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import orjson
from psycopg.rows import dict_row

from analytics_hub.connectors import RetryableError, error_message, http_retrying, retry_after
from analytics_hub.settings import HubSettings
from analytics_hub.warehouse import LOADS_LEDGER, WarehouseConnection, landing_table
from analytics_hub.windows import Window

log = logging.getLogger(__name__)

LEDGER_SCHEMA = "hub_meta"
LEDGER = f"{LEDGER_SCHEMA}.feed_deliveries"
REPORTS_SCHEMA = "analytics"
# What the ledger keeps of a receiver's answer.
ANSWER_CHARS = 2000

Rows = list[dict[str, Any]]


class FeedError(RuntimeError):
    """A delivery that failed for good; the message names feed, window, status and the
    receiver's message."""


@dataclass(frozen=True)
class Source:
    """A landing table whose loads a feed's windows wait for. ``settle``: how long after a
    window the source still brings its data in the normal course (costops reports an
    hour's usage in the batch after it), which a window also waits for."""

    module: str
    entity: str
    settle: timedelta = timedelta(0)

    @property
    def table(self) -> str:
        return landing_table(self.module, self.entity)


@dataclass(frozen=True)
class Feed:
    """One report stream: its report model, its receiver's path, how it makes a payload,
    and the sources its windows wait for.

    ``body`` turns the model's rows of one window into the report's fields (the report
    id, revision and window are added around them).
    """

    name: str
    model: str
    path: str
    body: Callable[[Rows], dict[str, Any]]
    sources: tuple[Source, ...]
    width: timedelta = timedelta(hours=1)

    def report_id(self, window: Window) -> str:
        return f"hub:{self.name}:{_iso(window.start)}/{_iso(window.end)}"


@dataclass(frozen=True)
class Receiver:
    """Where a feed is posted: a base URL and the bearer token it expects."""

    base_url: str
    token: str

    def __repr__(self) -> str:
        return f"Receiver({self.base_url!r})"


@dataclass(frozen=True)
class Delivery:
    """What ``deliver`` did for one window: ``sent`` is False when the receiver already
    held this payload (nothing posted)."""

    feed: str
    window: Window
    report_id: str
    revision: int
    payload_hash: str
    sent: bool
    attempts: int


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def compliance_body(rows: Rows) -> dict[str, Any]:
    """The policy engine's compliance report for one hour (one row, or none: an hour
    without evaluations or violations reports zeros). The rate and the trend are absent,
    not zero, when there is nothing to compute them from."""
    row = rows[0] if rows else {}
    body: dict[str, Any] = {
        "total_evaluations": row.get("evaluations", 0),
        "compliant": row.get("compliant", 0),
        "non_compliant": row.get("non_compliant", 0),
        "violations": row.get("violations", 0),
        "by_type": row.get("violations_by_type", []),
        "by_severity": row.get("violations_by_severity", []),
    }
    for field, key in [
        ("compliance_rate", "compliance_rate"),
        ("previous_compliance_rate", "previous_compliance_rate"),
        ("trend", "compliance_rate_trend"),
    ]:
        if row.get(key) is not None:
            body[field] = row[key]  # a Decimal: JSON-encoded by _json_default
    return body


def usage_body(rows: Rows) -> dict[str, Any]:
    """Costops' usage report for one hour: per account and asset, requests and tokens; an
    unattributed row has ``account_id`` null."""
    usage = [
        {
            "account_id": row["account_id"],
            "asset_id": row["asset_id"],
            "requests": row["requests"],
            "input_tokens": row["input_tokens"],
            "output_tokens": row["output_tokens"],
        }
        for row in rows
    ]
    return {
        "usage": usage,
        "unattributed_requests": sum(u["requests"] for u in usage if u["account_id"] is None),
    }


FEEDS: Mapping[str, Feed] = {
    feed.name: feed
    for feed in [
        Feed(
            "policy_compliance",
            "rpt_policy_compliance_hourly",
            "/api/v1/compliance/report",
            compliance_body,
            (Source("policy", "evaluations"), Source("policy", "violations")),
        ),
        Feed(
            "costops_usage",
            "rpt_costops_usage_hourly",
            "/api/v1/usage/report",
            usage_body,
            (
                Source("observatory", "metrics"),
                Source("costops", "cost_records", settle=timedelta(hours=1)),
            ),
        ),
    ]
}


# The end of the unbroken run of a landing table's windows (from its first) that loaded
# no later than %(built)s; loaded windows never overlap (warehouse._refuse_overlaps).
LANDED_THROUGH = f"""
with loads as (
    select window_start, window_end,
        max(window_end) over (
            order by window_start rows between unbounded preceding and 1 preceding
        ) as reach
    from {LOADS_LEDGER}
    where table_name = %(table)s and loaded_at <= %(built)s
)
select coalesce(min(reach) filter (where reach < window_start), max(window_end)) from loads
"""


def complete_through(
    conn: WarehouseConnection, feed: Feed, built_through: datetime
) -> datetime | None:
    """Where the feed's complete windows end: a window is complete once every source's
    windows up to its end (and the source's settle past it) have landed, passed the lake
    gate (the load takes only approved windows) and been built, i.e. loaded no later than
    ``built_through``, the newest load the builds since have taken in. None until every
    source has such a load. A source's gap (a window that failed to land) holds every
    later window back until it is filled."""
    ends: list[datetime] = []
    for source in feed.sources:
        row = conn.execute(LANDED_THROUGH, {"table": source.table, "built": built_through})
        (landed,) = row.fetchone() or (None,)
        if not isinstance(landed, datetime):
            return None
        ends.append(landed - source.settle)
    return min(ends)


def ensure_ledger(conn: WarehouseConnection) -> None:
    conn.execute(f"create schema if not exists {LEDGER_SCHEMA}")
    conn.execute(
        f"""
        create table if not exists {LEDGER} (
            feed text not null,
            window_start timestamptz not null,
            window_end timestamptz not null,
            revision integer not null,
            report_id text not null,
            payload_hash text not null,
            attempts integer not null,
            status text not null check (status in ('sent', 'failed')),
            response text,
            built_through timestamptz,
            sent_at timestamptz not null default statement_timestamp(),
            primary key (feed, window_start, window_end, revision)
        )
        """
    )


def report_rows(conn: WarehouseConnection, feed: Feed, window: Window) -> Rows:
    """The report model's rows of the window, in a fixed order (the payload's hash must not
    depend on the order the warehouse returns them in)."""
    with conn.cursor(row_factory=dict_row) as cursor:
        cursor.execute(
            f"select * from {REPORTS_SCHEMA}.{feed.model}"
            " where hour >= %(start)s and hour < %(end)s",
            {"start": window.start, "end": window.end},
        )
        rows = [{k: v for k, v in row.items() if k != "_loaded_at"} for row in cursor]
    return sorted(rows, key=lambda row: orjson.dumps(row, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def payload(feed: Feed, window: Window, rows: Rows, revision: int) -> dict[str, Any]:
    return {
        "report_id": feed.report_id(window),
        "revision": revision,
        "window_start": _iso(window.start),
        "window_end": _iso(window.end),
        **feed.body(rows),
    }


def payload_hash(feed: Feed, window: Window, rows: Rows) -> str:
    """The hash of what a revision carries: the payload without its revision number."""
    content = payload(feed, window, rows, revision=0)
    del content["revision"]
    encoded = orjson.dumps(content, option=orjson.OPT_SORT_KEYS, default=_json_default)
    return hashlib.sha256(encoded).hexdigest()


def deliver(
    conn: WarehouseConnection,
    feed: Feed,
    window: Window,
    receiver: Receiver,
    settings: HubSettings,
    built_through: datetime | None = None,
) -> Delivery:
    """Send the window's report unless the receiver already holds this payload; record the
    outcome in the ledger (with ``built_through``, the newest load the builds behind it had
    taken in, when known). Raises ``FeedError`` when the receiver refuses it or does not
    answer within the retries; the ledger records that too."""
    ensure_ledger(conn)
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (LEDGER + feed.name,))
        rows = report_rows(conn, feed, window)
        digest = payload_hash(feed, window, rows)
        last = conn.execute(
            f"select revision, payload_hash, status from {LEDGER}"
            " where feed = %s and window_start = %s and window_end = %s"
            " order by revision desc limit 1",
            (feed.name, window.start, window.end),
        ).fetchone()
        revision = 1
        if last is not None:
            last_revision, last_hash, last_status = last
            if last_hash == digest and last_status == "sent":
                return Delivery(
                    feed.name, window, feed.report_id(window), last_revision, digest, False, 0
                )
            revision = last_revision if last_hash == digest else last_revision + 1
        body = payload(feed, window, rows, revision)
        attempts, status, answer, error = _post(feed, window, receiver, body, settings)
        conn.execute(
            f"""
            insert into {LEDGER} (feed, window_start, window_end, revision, report_id,
                                  payload_hash, attempts, status, response, built_through)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            on conflict (feed, window_start, window_end, revision) do update set
                attempts = {LEDGER}.attempts + excluded.attempts,
                status = excluded.status,
                response = excluded.response,
                built_through = excluded.built_through,
                sent_at = excluded.sent_at
            """,
            (
                feed.name,
                window.start,
                window.end,
                revision,
                body["report_id"],
                digest,
                attempts,
                status,
                answer[:ANSWER_CHARS],
                built_through,
            ),
        )
    if error is not None:
        raise error
    log.info("%s %s: revision %d sent", feed.name, body["report_id"], revision)
    return Delivery(feed.name, window, body["report_id"], revision, digest, True, attempts)


def _post(
    feed: Feed,
    window: Window,
    receiver: Receiver,
    body: dict[str, Any],
    settings: HubSettings,
) -> tuple[int, str, str, FeedError | None]:
    """POST the report, with retries: (attempts, status, the last answer, the error)."""
    what = f"feed {feed.name} {_iso(window.start)}/{_iso(window.end)} ({receiver.base_url})"
    attempts = 0
    content = orjson.dumps(body, default=_json_default)

    def attempt(http: httpx.Client) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        try:
            response = http.post(feed.path, content=content)
        except httpx.TransportError as exc:
            raise RetryableError(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise RetryableError(
                error_message(response.status_code, response.content), retry_after(response)
            )
        return response

    with httpx.Client(
        base_url=receiver.base_url.rstrip("/"),
        headers={
            "Authorization": f"Bearer {receiver.token}",
            "Content-Type": "application/json",
        },
        timeout=settings.http_timeout_seconds,
    ) as http:
        try:
            response = http_retrying(settings, what)(attempt, http)
        except RetryableError as exc:
            message = f"{what}: no success after {attempts} attempts: {exc}"
            return attempts, "failed", str(exc), FeedError(message)
    answer = response.text
    if response.is_success:
        return attempts, "sent", answer, None
    message = f"{what}: refused: {error_message(response.status_code, response.content)}"
    return attempts, "failed", answer, FeedError(message)


def pending_windows(
    conn: WarehouseConnection, feed: Feed, until: datetime, since: datetime | None
) -> list[Window]:
    """The feed's windows ending by ``until`` that may need sending: each one from the
    first its sources loaded that has no revision sent yet, and each one whose report rows
    a build changed after ``since`` (the newest load the last publish had seen)."""
    ensure_ledger(conn)
    width = feed.width
    rows = conn.execute(
        f"""
        with first as (
            select date_bin(%(width)s, min(window_start), timestamptz '2000-01-03Z') as start
            from {LOADS_LEDGER} where table_name = any(%(tables)s)
        ),
        unsent as (
            select generate_series(first.start, %(until)s - %(width)s, %(width)s) as start
            from first
        )
        select start from unsent
        where start is not null and not exists (
            select from {LEDGER}
            where feed = %(feed)s and window_start = unsent.start and status = 'sent'
        )
        union
        select distinct hour from {REPORTS_SCHEMA}.{feed.model}
        where _loaded_at > %(since)s and hour + %(width)s <= %(until)s
        order by 1
        """,
        {
            "width": width,
            "tables": [source.table for source in feed.sources],
            "until": until,
            "since": since or datetime.min.replace(tzinfo=until.tzinfo),
            "feed": feed.name,
        },
    ).fetchall()
    return [Window(start, start + width) for (start,) in rows]


def publish(
    conn: WarehouseConnection,
    feed: Feed,
    receiver: Receiver,
    settings: HubSettings,
    built_through: datetime,
) -> list[Delivery]:
    """Deliver every complete window of the feed that the receiver does not hold as it is
    now (``complete_through``, ``pending_windows``). A window that fails does not stop the
    others; the run then raises one ``FeedError`` naming every failed window."""
    until = complete_through(conn, feed, built_through)
    if until is None:
        return []
    ensure_ledger(conn)
    (since,) = conn.execute(
        f"select max(built_through) from {LEDGER} where feed = %s", (feed.name,)
    ).fetchone() or (None,)
    deliveries, failures = [], []
    for window in pending_windows(conn, feed, until, since):
        try:
            deliveries.append(deliver(conn, feed, window, receiver, settings, built_through))
        except FeedError as error:
            failures.append(str(error))
    if failures:
        raise FeedError(
            f"{len(failures)} window(s) of feed {feed.name} failed: " + "; ".join(failures)
        )
    return deliveries
