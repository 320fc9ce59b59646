"""The declarative table of upstream modules: what the hub pulls, when, and how it reads it.

Every module of the platform is a row of ``MODULES``; every endpoint it serves is an
``Entity`` with its canonical fields. The connectors, the normalizer, the lake and the
DAG factory read this table, so adding a module or a field is an edit here, not new code.
The wire names follow ``docs/wire-contract.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Literal


class Kind(StrEnum):
    STRING = "string"
    ENUM = "enum"
    INT = "int"
    FLOAT = "float"
    TIMESTAMP = "timestamp"
    DURATION_MS = "duration_ms"  # a family of *_ms/_s/_us/_ns wire fields → ms
    SIZE_BYTES = "size_bytes"  # a family of *_bytes/_kb/_kib/_mb wire fields → bytes
    PERSONAL = "personal"  # pseudonymized with a keyed hash on the way in
    JSON = "json"  # an object or a list, kept as JSON text
    TAGS = "tags"  # the envelope's string map, as a struct of the platform's tag keys


# The platform's low-cardinality tag keys. A key not listed here stays in the raw zone only;
# reading tags as a typed struct rather than JSON text halves the cost of parsing telemetry.
TAG_KEYS = ("region", "model_id", "service", "team", "tenant", "deployment")


DURATION_UNITS: dict[str, float] = {"ms": 1.0, "s": 1_000.0, "us": 0.001, "ns": 0.000_001}
SIZE_UNITS: dict[str, int] = {"bytes": 1, "kb": 1_000, "kib": 1_024, "mb": 1_000_000}


def camel_case(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@dataclass(frozen=True)
class Field:
    """A canonical column and the wire names it may arrive under."""

    name: str
    kind: Kind = Kind.STRING
    wire: tuple[str, ...] = ()  # wire names, or unit-family prefixes; default (name,)
    required: bool = False
    values: tuple[str, ...] = ()  # accepted values of an enum
    minimum: float | None = None
    maximum: float | None = None
    default: str | None = None
    in_envelope: bool = False  # top level of the record rather than its ``data`` payload

    @property
    def wire_names(self) -> tuple[str, ...]:
        names = self.wire or (self.name,)
        if self.kind is Kind.DURATION_MS:
            return tuple(f"{p}_{unit}" for p in names for unit in DURATION_UNITS)
        if self.kind is Kind.SIZE_BYTES:
            return tuple(f"{p}_{unit}" for p in names for unit in SIZE_UNITS)
        return names


@dataclass(frozen=True)
class Money:
    """An amount converted to USD with the rate of the day of another field."""

    output: str
    amount: str
    unit: str  # the column naming currency and scale (e.g. cost_unit, currency)
    on_date_of: str
    # unit code → (ISO currency, major units per unit)
    units: dict[str, tuple[str, Decimal]] = field(hash=False)
    minor_flag: str | None = field(default=None)  # 'minor' in this column means hundredths


@dataclass(frozen=True)
class FanOut:
    """An endpoint called once per id listed by another endpoint of the module."""

    parent_path: str  # e.g. /api/v1/assets
    parent_key: str  # wire field of the parent holding the id
    parent_windowed: bool  # whether the parent list is restricted to the window


@dataclass(frozen=True)
class Entity:
    name: str
    path: str  # may hold ``{id}`` for fan-out endpoints
    time_series: bool  # envelope records windowed on ingested_at; else state objects
    key: tuple[str, ...]
    fields: tuple[Field, ...]
    money: tuple[Money, ...] = ()
    fan_out: FanOut | None = None
    windowed: bool = True
    bulk_path: str | None = None  # an NDJSON endpoint streaming the whole window

    @property
    def all_fields(self) -> tuple[Field, ...]:
        return (ENVELOPE + self.fields) if self.time_series else self.fields

    @property
    def record_id_field(self) -> str:
        """The field that names one record: the envelope's event id, or the state's id."""
        return "event_id" if self.time_series else self.key[0]

    @property
    def has_personal_data(self) -> bool:
        return any(f.kind is Kind.PERSONAL for f in self.all_fields)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.all_fields) + tuple(m.output for m in self.money)


@dataclass(frozen=True)
class Module:
    name: str
    service: str  # the platform's name, as in ``source_module``
    id_prefix: str
    schedule: str  # cron, in UTC; each run pulls exactly its data interval
    delivery: Literal["at-least-once", "at-most-once", "exactly-once"]
    raw_retention: timedelta
    entities: tuple[Entity, ...]
    local_timezone: str = "UTC"  # the zone of zoneless timestamps
    description: str = ""
    tags: tuple[str, ...] = field(default=())

    @property
    def conn_id(self) -> str:
        return f"hub_{self.name}"

    def entity(self, name: str) -> Entity:
        for entity in self.entities:
            if entity.name == name:
                return entity
        raise KeyError(f"module {self.name!r} has no entity {name!r}")


SEVERITIES = ("debug", "info", "warning", "error", "critical")
LEVELS = ("low", "medium", "high", "critical")
USD_UNITS: dict[str, tuple[str, Decimal]] = {
    "USD": ("USD", Decimal(1)),
    "EUR": ("EUR", Decimal(1)),
    "GBP": ("GBP", Decimal(1)),
}


def _envelope(name: str, kind: Kind = Kind.STRING, *wire: str, **kw: object) -> Field:
    names = wire or (name,)
    aliases = tuple(dict.fromkeys([*names, *(camel_case(n) for n in names)]))
    return Field(name, kind, aliases, in_envelope=True, **kw)  # type: ignore[arg-type]


ENVELOPE: tuple[Field, ...] = (
    _envelope("event_id", Kind.STRING, required=True),
    _envelope("event_time", Kind.TIMESTAMP, "timestamp", required=True),
    _envelope("ingested_at", Kind.TIMESTAMP, required=True),
    _envelope("source_module", Kind.STRING, "source_module", "source"),
    _envelope("event_type", Kind.STRING, required=True),
    _envelope("schema_version", Kind.STRING, "schema_version", "version"),
    _envelope("event_severity", Kind.ENUM, "severity", values=SEVERITIES),
    _envelope("environment", Kind.ENUM, values=("production", "staging", "dev")),
    _envelope("tags", Kind.TAGS),
)

NON_NEGATIVE = {"minimum": 0}


def _req(name: str, kind: Kind = Kind.STRING, *wire: str, **kw: object) -> Field:
    return Field(name, kind, wire, required=True, **kw)  # type: ignore[arg-type]


def _opt(name: str, kind: Kind = Kind.STRING, *wire: str, **kw: object) -> Field:
    return Field(name, kind, wire, **kw)  # type: ignore[arg-type]


REGISTRY = Module(
    name="registry",
    service="llm-registry",
    id_prefix="reg-",
    schedule="0 * * * *",
    delivery="at-least-once",
    raw_retention=timedelta(days=30),
    description="Model registry: assets, their versions and lifecycle events.",
    entities=(
        Entity(
            "events",
            "/api/v1/events",
            time_series=True,
            key=("event_id",),
            fields=(
                _req("asset_id", Kind.STRING, "asset_id", "asset_uid"),
                _opt("asset_name"),
                _opt("version"),
                _opt("actor"),
            ),
        ),
        Entity(
            "assets",
            "/api/v1/assets",
            time_series=False,
            key=("asset_id", "updated_at"),
            fields=(
                _req("asset_id"),
                _req("asset_name"),
                _req(
                    "category",
                    Kind.ENUM,
                    values=(
                        "language-model",
                        "embedding",
                        "dataset",
                        "prompt-template",
                        "fine-tune",
                        "evaluation-suite",
                    ),
                ),
                _req("owner"),
                _opt("tags", Kind.JSON),
                _req("created_at", Kind.TIMESTAMP),
                _req("updated_at", Kind.TIMESTAMP),
            ),
        ),
        Entity(
            "versions",
            "/api/v1/assets/{id}/versions",
            time_series=False,
            key=("asset_id", "version", "updated_at"),
            windowed=False,
            fan_out=FanOut("/api/v1/assets", "asset_id", parent_windowed=True),
            fields=(
                _req("asset_id"),
                _req("version"),
                _req("status", Kind.ENUM, values=("staged", "production", "retired")),
                _req("published_at", Kind.TIMESTAMP),
                _req("updated_at", Kind.TIMESTAMP),
            ),
        ),
    ),
)

POLICY = Module(
    name="policy",
    service="llm-policy-engine",
    id_prefix="pol-",
    schedule="*/15 * * * *",
    delivery="exactly-once",
    raw_retention=timedelta(days=90),
    description="Policy engine: evaluations, violations and the audit trail.",
    entities=(
        Entity(
            "evaluations",
            "/api/v1/evaluations",
            time_series=True,
            key=("event_id",),
            fields=(
                _req("evaluation_id"),
                _req("policy_id"),
                _req("asset_id"),
                _req("result", Kind.ENUM, values=("compliant", "non_compliant")),
                _opt("duration_ms", Kind.DURATION_MS, "duration", **NON_NEGATIVE),
            ),
        ),
        Entity(
            "violations",
            "/api/v1/violations",
            time_series=True,
            key=("event_id",),
            fields=(
                _req("violation_id"),
                _req("policy_id"),
                _req("asset_id"),
                _req("violation_severity", Kind.ENUM, "severity", values=LEVELS),
                _req(
                    "violation_type",
                    Kind.ENUM,
                    values=(
                        "rate_limit",
                        "data_privacy",
                        "content_policy",
                        "access_control",
                        "cost_limit",
                        "model_usage",
                    ),
                ),
                _opt("description"),
                _opt("user_id", Kind.PERSONAL),
            ),
        ),
        Entity(
            "audit",
            "/api/v1/audit-trail",
            time_series=True,
            key=("event_id",),
            fields=(
                _req("audit_id"),
                _opt("policy_id"),
                _req("action"),
                _opt("actor_id", Kind.PERSONAL),
                _opt("resource"),
            ),
        ),
    ),
)

MARKETPLACE = Module(
    name="marketplace",
    service="llm-marketplace",
    id_prefix="mkt-",
    schedule="0 * * * *",
    delivery="at-least-once",
    raw_retention=timedelta(days=90),
    description="Marketplace: extensions (the hub's analytics plugins), usage and revenue.",
    entities=(
        Entity(
            "extensions",
            "/api/v1/extensions",
            time_series=False,
            key=("extension_id", "updated_at"),
            fields=(
                _req("extension_id"),
                _req("name"),
                _req("publisher"),
                _req("version"),
                _req(
                    "category",
                    Kind.ENUM,
                    values=("analytics", "security", "cost", "quality", "observability"),
                ),
                _req("installs", Kind.INT, **NON_NEGATIVE),
                _req("updated_at", Kind.TIMESTAMP),
            ),
        ),
        Entity(
            "usage",
            "/api/v1/extensions/{id}/usage",
            time_series=True,
            key=("event_id",),
            fan_out=FanOut("/api/v1/extensions", "extension_id", parent_windowed=False),
            fields=(
                _req("extension_id"),
                _req("period_start", Kind.TIMESTAMP),
                _req("invocations", Kind.INT, **NON_NEGATIVE),
                _req("active_tenants", Kind.INT, **NON_NEGATIVE),
            ),
        ),
        Entity(
            "revenue",
            "/api/v1/revenue",
            time_series=True,
            key=("event_id",),
            fields=(
                _req("extension_id"),
                _req("period_start", Kind.TIMESTAMP),
                _req("amount", Kind.FLOAT, **NON_NEGATIVE),
                _req("currency", Kind.ENUM, values=("USD", "EUR", "GBP")),
                _opt("amount_unit", Kind.ENUM, values=("major", "minor"), default="major"),
            ),
            money=(
                Money(
                    "amount_usd",
                    amount="amount",
                    unit="currency",
                    on_date_of="period_start",
                    units=USD_UNITS,
                    minor_flag="amount_unit",
                ),
            ),
        ),
    ),
)

OBSERVATORY = Module(
    name="observatory",
    service="llm-observatory",
    id_prefix="obs-",
    schedule="*/15 * * * *",
    delivery="at-most-once",
    raw_retention=timedelta(days=7),
    description="Observatory: per-request telemetry (latency, tokens, errors). The big one.",
    entities=(
        Entity(
            "metrics",
            "/api/v1/metrics",
            time_series=True,
            key=("event_id",),
            bulk_path="/api/v1/metrics.ndjson",
            fields=(
                _req("request_id"),
                _req("model_id", Kind.STRING, "model_id", "model"),
                _req("asset_id"),
                _req("region"),
                _req("service"),
                _req("latency_ms", Kind.DURATION_MS, "total_latency", **NON_NEGATIVE),
                _opt("ttft_ms", Kind.DURATION_MS, "ttft", **NON_NEGATIVE),
                _req("input_tokens", Kind.INT, **NON_NEGATIVE),
                _req("output_tokens", Kind.INT, **NON_NEGATIVE),
                _req("status", Kind.ENUM, values=("ok", "error")),
                _opt("error_code"),
                _opt(
                    "response_bytes", Kind.SIZE_BYTES, "response", "response_size", **NON_NEGATIVE
                ),
            ),
        ),
    ),
)

SENTINEL = Module(
    name="sentinel",
    service="llm-sentinel",
    id_prefix="sec-",
    schedule="*/15 * * * *",
    delivery="exactly-once",
    raw_retention=timedelta(days=365),
    description="Sentinel: security events (threats, vulnerabilities, anomalies).",
    entities=(
        Entity(
            "security_events",
            "/api/v1/security-events",
            time_series=True,
            key=("event_id",),
            fields=(
                _req("threat_id"),
                _req("security_type", Kind.ENUM, values=("threat", "vulnerability", "anomaly")),
                _req(
                    "threat_type",
                    Kind.ENUM,
                    values=(
                        "prompt_injection",
                        "jailbreak",
                        "data_exfiltration",
                        "pii_leak",
                        "model_theft",
                        "denial_of_service",
                    ),
                ),
                _req("threat_level", Kind.ENUM, "threat_level", "risk_level", values=LEVELS),
                _req("severity_score", Kind.FLOAT, minimum=0, maximum=10),
                _req("mitigation_status", Kind.ENUM, values=("blocked", "flagged", "allowed")),
                _req("asset_id"),
                _opt("source_ip", Kind.PERSONAL),
                _opt("user_id", Kind.PERSONAL),
            ),
        ),
    ),
)

COSTOPS = Module(
    name="costops",
    service="llm-costops",
    id_prefix="cost-",
    schedule="0 * * * *",
    delivery="at-least-once",
    raw_retention=timedelta(days=90),
    local_timezone="America/New_York",
    description="CostOps: hourly cost records and budgets.",
    entities=(
        Entity(
            "cost_records",
            "/api/v1/cost-data",
            time_series=True,
            key=("cost_record_id", "record_version"),
            fields=(
                _req("cost_record_id", Kind.STRING, "cost_record_id", "record_id"),
                _req("account_id"),
                _req("asset_id"),
                _req("model_id"),
                _req("usage_start", Kind.TIMESTAMP),
                _req("usage_end", Kind.TIMESTAMP),
                _req("input_tokens", Kind.INT, **NON_NEGATIVE),
                _req("output_tokens", Kind.INT, **NON_NEGATIVE),
                _req("cost", Kind.FLOAT, **NON_NEGATIVE),
                _req("cost_unit", Kind.ENUM, values=("USD", "cents", "micro-USD", "EUR", "GBP")),
                _req("record_version", Kind.INT, minimum=1),
            ),
            money=(
                Money(
                    "cost_usd",
                    amount="cost",
                    unit="cost_unit",
                    on_date_of="usage_start",
                    units={
                        **USD_UNITS,
                        "cents": ("USD", Decimal("0.01")),
                        "micro-USD": ("USD", Decimal("0.000001")),
                    },
                ),
            ),
        ),
        Entity(
            "budgets",
            "/api/v1/budgets",
            time_series=False,
            key=("budget_id", "updated_at"),
            fields=(
                _req("budget_id"),
                _req("account_id"),
                _req("period", Kind.ENUM, values=("monthly",)),
                _req("limit", Kind.FLOAT, **NON_NEGATIVE),
                _req("currency", Kind.ENUM, values=("USD", "EUR", "GBP")),
                _opt(
                    "alert_threshold_percent",
                    Kind.FLOAT,
                    minimum=0,
                    maximum=100,
                    default="80",
                ),
                _req("updated_at", Kind.TIMESTAMP),
            ),
            money=(
                Money(
                    "limit_usd",
                    amount="limit",
                    unit="currency",
                    on_date_of="updated_at",
                    units=USD_UNITS,
                ),
            ),
        ),
    ),
)

MODULES: dict[str, Module] = {
    m.name: m for m in (REGISTRY, POLICY, MARKETPLACE, OBSERVATORY, SENTINEL, COSTOPS)
}


def get_module(name: str) -> Module:
    try:
        return MODULES[name]
    except KeyError:
        raise KeyError(f"unknown module {name!r}; known: {', '.join(MODULES)}") from None
