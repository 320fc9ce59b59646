"""The module contract as data, written from MODULES.md and the hub's field policy alone.

This is the conformance suite's own reading of the contract: which endpoints each module
serves, which fields each record carries, which are required, which vocabularies are
closed, how units and money convert. It deliberately does not import the hub's source
table (``analytics_hub.sources``) nor its normalizer: the expected rows are computed
here, from canonical records, with the standard library only.

Canonical values are already in the hub's output units: timestamps are aware UTC
datetimes, durations ``Decimal`` milliseconds, sizes ``int`` bytes, amounts ``Decimal``
in the record's own unit (converted to USD by ``usd``), closed enums their contract
spelling, the envelope's ``tags`` a ``dict``, an asset's ``tags`` a ``list``.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[2]
FX_CSV = PROJECT / "include" / "analytics_hub" / "reference" / "fx_rates.csv"

SERVICES = {
    "registry": "llm-registry",
    "policy": "llm-policy-engine",
    "marketplace": "llm-marketplace",
    "observatory": "llm-observatory",
    "sentinel": "llm-sentinel",
    "costops": "llm-costops",
}
ID_PREFIX = {
    "registry": "reg-",
    "policy": "pol-",
    "marketplace": "mkt-",
    "observatory": "obs-",
    "sentinel": "sec-",
    "costops": "cost-",
}
# "A zoneless timestamp is in the module's configured local zone (costops:
# America/New_York; others: UTC)."
LOCAL_ZONE = {"costops": "America/New_York"}
# Modules that may deliver a record more than once (all but the at-most-once observatory).
REDELIVERING = {"registry", "policy", "marketplace", "sentinel", "costops"}

SEVERITIES = ("debug", "info", "warning", "error", "critical")
LEVELS = ("low", "medium", "high", "critical")
CURRENCIES = ("USD", "EUR", "GBP")
COST_UNITS = ("USD", "cents", "micro-USD", "EUR", "GBP")

DURATION_UNITS = {
    "ms": Decimal(1),
    "s": Decimal(1000),
    "us": Decimal("0.001"),
    "ns": Decimal("1e-6"),
}
SIZE_UNITS = {"bytes": 1, "kb": 1000, "kib": 1024, "mb": 1_000_000}


class Kind(StrEnum):
    ID = "id"  # an identifier: text, never padded
    TEXT = "text"  # free text
    OPEN = "open"  # an open vocabulary: any value lands as sent, trimmed
    ENUM = "enum"  # a closed vocabulary, matched case-insensitively
    INT = "int"
    FLOAT = "float"
    TIME = "time"
    DURATION = "duration"  # *_ms/_s/_us/_ns → ms
    SIZE = "size"  # *_bytes/_kb/_kib/_mb → bytes
    PERSONAL = "personal"  # HMAC-SHA256 hex with HUB_PSEUDONYM_KEY
    LIST = "list"  # a JSON list (an asset's tags)
    TAGS = "tags"  # the envelope's string map


@dataclass(frozen=True)
class Spec:
    """One canonical column and how it may arrive."""

    name: str
    kind: Kind
    wire: tuple[str, ...] = ()  # snake_case names (renames by schema version); default (name,)
    required: bool = False
    values: tuple[str, ...] = ()  # a closed vocabulary
    low: Decimal | None = None  # inclusive minimum
    high: Decimal | None = None  # inclusive maximum
    default: Any = None  # what the hub fills in where the field is absent
    envelope: bool = False
    tag: str | None = None  # the envelope tag that may carry the value instead
    from_path: bool = False  # a fan-out child's parent id, taken from the path when absent

    @property
    def names(self) -> tuple[str, ...]:
        return self.wire or (self.name,)

    @property
    def unit_names(self) -> tuple[tuple[str, Any], ...]:
        """(wire name, unit factor) of a unit family; names carry the unit as a suffix."""
        units: dict[str, Any] = DURATION_UNITS if self.kind is Kind.DURATION else SIZE_UNITS
        return tuple(
            (f"{prefix}_{unit}", factor) for prefix in self.names for unit, factor in units.items()
        )


def _env(name: str, kind: Kind, *wire: str, **kw: Any) -> Spec:
    return Spec(name, kind, wire, envelope=True, **kw)


ENVELOPE = (
    _env("event_id", Kind.ID, required=True),
    _env("event_time", Kind.TIME, "timestamp", required=True),
    _env("ingested_at", Kind.TIME, required=True),
    _env("source_module", Kind.TEXT, "source_module", "source"),
    _env("event_type", Kind.OPEN, required=True),
    _env("schema_version", Kind.TEXT, "schema_version", "version"),
    _env("event_severity", Kind.ENUM, "severity", values=SEVERITIES),
    _env("environment", Kind.ENUM, values=("production", "staging", "dev")),
    _env("tags", Kind.TAGS),
)

ZERO = Decimal(0)


def _f(name: str, kind: Kind = Kind.TEXT, *wire: str, **kw: Any) -> Spec:
    return Spec(name, kind, wire, **kw)


@dataclass(frozen=True)
class Money:
    output: str
    amount: str
    unit: str
    on_date: str  # the field whose UTC day picks the rate
    factors: dict[str, tuple[str, Decimal]] = field(hash=False)  # unit → (currency, scale)
    minor: str | None = None  # a field that says 'minor': hundredths of the unit


MAJOR = {c: (c, Decimal(1)) for c in CURRENCIES}


@dataclass(frozen=True)
class Entity:
    module: str
    name: str  # the hub's lake name of the entity
    path: str  # the endpoint, ``{id}`` for a fan-out parent id
    series: bool  # envelope records windowed on ingested_at; else state objects
    fields: tuple[Spec, ...]
    key: tuple[str, ...]
    money: tuple[Money, ...] = ()
    parent: str | None = None  # the entity listing a fan-out's ids
    parent_windowed: bool = True  # whether the parent is listed for the window only
    windowed: bool = True  # whether the endpoint takes the window

    @property
    def id(self) -> str:
        return f"{self.module}.{self.name}"

    @property
    def specs(self) -> tuple[Spec, ...]:
        return (ENVELOPE + self.fields) if self.series else self.fields

    def spec(self, name: str) -> Spec:
        return next(s for s in self.specs if s.name == name)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.specs) + tuple(m.output for m in self.money)

    @property
    def window_field(self) -> str | None:
        if not self.windowed:
            return None
        return "ingested_at" if self.series else "updated_at"

    @property
    def record_id(self) -> str:
        """The field naming one record in a dead letter."""
        return "event_id" if self.series else self.key[0]


NN = {"low": ZERO}

ENTITIES: tuple[Entity, ...] = (
    Entity(
        "registry",
        "events",
        "/api/v1/events",
        True,
        (
            _f("asset_id", Kind.ID, "asset_id", "asset_uid", required=True),
            _f("asset_name"),
            _f("version"),
            _f("actor"),
            _f("category", Kind.OPEN),
            _f("owner"),
        ),
        key=("event_id",),
    ),
    Entity(
        "registry",
        "assets",
        "/api/v1/assets",
        False,
        (
            _f("asset_id", Kind.ID, required=True),
            _f("asset_name"),
            _f("category", Kind.OPEN),
            _f("owner"),
            _f("tags", Kind.LIST),
            _f("created_at", Kind.TIME),
            _f("updated_at", Kind.TIME, required=True),
        ),
        key=("asset_id", "updated_at"),
    ),
    Entity(
        "registry",
        "versions",
        "/api/v1/assets/{id}/versions",
        False,
        (
            _f("asset_id", Kind.ID, required=True, from_path=True),
            _f("version", Kind.ID, required=True),
            _f("status", Kind.ENUM, values=("staged", "production", "retired")),
            _f("published_at", Kind.TIME),
            _f("updated_at", Kind.TIME),
        ),
        key=("asset_id", "version"),
        parent="assets",
        windowed=False,
    ),
    Entity(
        "policy",
        "evaluations",
        "/api/v1/evaluations",
        True,
        (
            _f("evaluation_id", Kind.ID),
            _f("policy_id", Kind.ID),
            _f("asset_id", Kind.ID),
            _f("result", Kind.ENUM, values=("compliant", "non_compliant"), required=True),
            _f("duration_ms", Kind.DURATION, "duration", **NN),
        ),
        key=("event_id",),
    ),
    Entity(
        "policy",
        "violations",
        "/api/v1/violations",
        True,
        (
            _f("violation_id", Kind.ID, required=True),
            _f("policy_id", Kind.ID),
            _f("asset_id", Kind.ID),
            _f("violation_severity", Kind.ENUM, "severity", values=LEVELS),
            _f("violation_type", Kind.OPEN),
            _f("description"),
            _f("user_id", Kind.PERSONAL),
        ),
        key=("event_id",),
    ),
    Entity(
        "policy",
        "audit",
        "/api/v1/audit-trail",
        True,
        (
            _f("audit_id", Kind.ID),
            _f("policy_id", Kind.ID),
            _f("action", Kind.OPEN),
            _f("actor_id", Kind.PERSONAL),
            _f("resource"),
        ),
        key=("event_id",),
    ),
    Entity(
        "marketplace",
        "extensions",
        "/api/v1/extensions",
        False,
        (
            _f("extension_id", Kind.ID, required=True),
            _f("name"),
            _f("publisher"),
            _f("version"),
            _f("category", Kind.OPEN),
            _f("installs", Kind.INT, **NN),
            _f("updated_at", Kind.TIME, required=True),
        ),
        key=("extension_id", "updated_at"),
    ),
    Entity(
        "marketplace",
        "usage",
        "/api/v1/extensions/{id}/usage",
        True,
        (
            _f("extension_id", Kind.ID, required=True, from_path=True),
            _f("period_start", Kind.TIME, required=True),
            _f("invocations", Kind.INT, **NN),
            _f("active_tenants", Kind.INT, **NN),
        ),
        key=("event_id",),
        # usage goes on for extensions that did not change: every extension is listed
        parent="extensions",
        parent_windowed=False,
    ),
    Entity(
        "marketplace",
        "revenue",
        "/api/v1/revenue",
        True,
        (
            _f("extension_id", Kind.ID, required=True),
            _f("period_start", Kind.TIME, required=True),
            _f("amount", Kind.FLOAT, required=True, **NN),
            _f("currency", Kind.ENUM, values=CURRENCIES, required=True),
            _f("amount_unit", Kind.ENUM, values=("major", "minor"), default="major"),
        ),
        key=("event_id",),
        money=(
            Money("amount_usd", "amount", "currency", "period_start", MAJOR, minor="amount_unit"),
        ),
    ),
    Entity(
        "observatory",
        "metrics",
        "/api/v1/metrics",
        True,
        (
            _f("request_id", Kind.ID),
            _f("model_id", Kind.ID, "model_id", "model", required=True, tag="model_id"),
            _f("asset_id", Kind.ID),
            _f("region", Kind.TEXT, tag="region"),
            _f("service", Kind.TEXT, tag="service"),
            _f("latency_ms", Kind.DURATION, "total_latency", required=True, **NN),
            _f("ttft_ms", Kind.DURATION, "ttft", **NN),
            _f("input_tokens", Kind.INT, **NN),
            _f("output_tokens", Kind.INT, **NN),
            _f("status", Kind.ENUM, values=("ok", "error")),
            _f("error_code"),
            _f("response_bytes", Kind.SIZE, "response", "response_size", **NN),
        ),
        key=("event_id",),
    ),
    Entity(
        "sentinel",
        "security_events",
        "/api/v1/security-events",
        True,
        (
            _f("threat_id", Kind.ID),
            _f("security_type", Kind.ENUM, values=("threat", "vulnerability", "anomaly")),
            _f("threat_type", Kind.OPEN),
            _f("threat_level", Kind.ENUM, "threat_level", "risk_level", values=LEVELS),
            _f("severity_score", Kind.FLOAT, low=ZERO, high=Decimal(10)),
            _f("mitigation_status", Kind.ENUM, values=("blocked", "flagged", "allowed")),
            _f("asset_id", Kind.ID),
            _f("source_ip", Kind.PERSONAL),
            _f("user_id", Kind.PERSONAL),
        ),
        key=("event_id",),
    ),
    Entity(
        "costops",
        "cost_records",
        "/api/v1/cost-data",
        True,
        (
            _f("cost_record_id", Kind.ID, "cost_record_id", "record_id", required=True),
            _f("account_id", Kind.ID),
            _f("asset_id", Kind.ID),
            _f("model_id", Kind.ID),
            _f("usage_start", Kind.TIME, required=True),
            _f("usage_end", Kind.TIME),
            _f("input_tokens", Kind.INT, **NN),
            _f("output_tokens", Kind.INT, **NN),
            _f("cost", Kind.FLOAT, required=True, **NN),
            _f("cost_unit", Kind.ENUM, values=COST_UNITS, required=True),
            _f("record_version", Kind.INT, required=True, low=Decimal(1)),
        ),
        key=("cost_record_id", "record_version"),
        money=(
            Money(
                "cost_usd",
                "cost",
                "cost_unit",
                "usage_start",
                {**MAJOR, "cents": ("USD", Decimal("0.01")), "micro-USD": ("USD", Decimal("1e-6"))},
            ),
        ),
    ),
    Entity(
        "costops",
        "budgets",
        "/api/v1/budgets",
        False,
        (
            _f("budget_id", Kind.ID, required=True),
            _f("account_id", Kind.ID, required=True),
            _f("period", Kind.ENUM, values=("monthly",), default="monthly"),
            _f("limit", Kind.FLOAT, required=True, **NN),
            _f("currency", Kind.ENUM, values=CURRENCIES, required=True),
            _f(
                "alert_threshold_percent",
                Kind.FLOAT,
                low=ZERO,
                high=Decimal(100),
                default=Decimal(80),
            ),
            _f("updated_at", Kind.TIME, required=True),
        ),
        key=("budget_id", "updated_at"),
        money=(Money("limit_usd", "limit", "currency", "updated_at", MAJOR),),
    ),
)

BY_ID = {e.id: e for e in ENTITIES}


def entity(module: str, name: str) -> Entity:
    return BY_ID[f"{module}.{name}"]


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


# --- Money ----------------------------------------------------------------------------


class FxTable:
    """USD per unit of each currency by day, read from the hub's reference CSV.

    A day after the table's last one takes the latest earlier rate; a day before its first
    has no rate (the record dead-letters with ``no_fx_rate``).
    """

    def __init__(self, path: Path = FX_CSV):
        rates: dict[str, dict[date, Decimal]] = {}
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                day = date.fromisoformat(row["date"])
                rates.setdefault(row["currency"], {})[day] = Decimal(row["usd_per_unit"])
        self.days = {c: sorted(by_day) for c, by_day in rates.items()}
        self.rates = rates

    @property
    def first_day(self) -> date:
        return min(days[0] for days in self.days.values())

    @property
    def last_day(self) -> date:
        return max(days[-1] for days in self.days.values())

    def rate(self, currency: str, day: date) -> Decimal | None:
        if currency == "USD":
            return Decimal(1)
        days = self.days.get(currency, [])
        at = bisect.bisect_right(days, day)
        return self.rates[currency][days[at - 1]] if at else None


FX = FxTable()
SIX_PLACES = Decimal("0.000001")


def usd(money: Money, values: dict[str, Any]) -> Decimal | None:
    """The record's amount in USD, 6 decimals (half to even), or None without a rate."""
    amount, unit, moment = values[money.amount], values[money.unit], values[money.on_date]
    currency, scale = money.factors[unit]
    if money.minor and values.get(money.minor) == "minor":
        scale = scale * Decimal("0.01")
    rate = FX.rate(currency, moment.astimezone(UTC).date())
    if rate is None:
        return None
    return (amount * scale * rate).quantize(SIX_PLACES, rounding=ROUND_HALF_EVEN)


def pseudonym(value: str, key: str) -> str:
    """HMAC-SHA256 (hex) of the value, keyed with HUB_PSEUDONYM_KEY's text as UTF-8."""
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()


# --- Expected rows ----------------------------------------------------------------------


def expected_row(ent: Entity, values: dict[str, Any], key: str) -> dict[str, Any]:
    """The normalized row of a well-formed canonical record, by canonical column."""
    row: dict[str, Any] = {}
    for spec in ent.specs:
        value = values.get(spec.name)
        if value is None and spec.default is not None:
            value = spec.default
        if value is not None and spec.kind is Kind.PERSONAL:
            value = pseudonym(value, key)
        if spec.kind is Kind.OPEN and value is not None:
            value = value.strip()
        row[spec.name] = value
    for money in ent.money:
        row[money.output] = usd(money, row)
    return row


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]
