"""The declarative table of upstream modules: what the hub pulls, when, and how it reads it.

Every module of the platform is a row of ``MODULES``; every endpoint it serves is an
``Entity`` with its canonical fields. The connectors, the normalizer, the lake and the
DAG factory read this table, so adding a module or a field is an edit here, not new code.
The wire names follow ``docs/wire-contract.md``.

What the hub requires is the contract's or the fact's need, never one implementation's
habit: a field is required only with a reason (``Field.why``); every other field may be
absent. Every field is read under its snake_case and its camelCase name, per record.
Closed vocabularies (the contract's complete lists) are ``Kind.ENUM``; open ones (asset
and extension categories, violation and threat types, event types) are plain strings.
"""

from __future__ import annotations

import sys
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
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def both_casings(names: tuple[str, ...]) -> tuple[str, ...]:
    """Each wire name and its camelCase spelling (the contract allows either, per field)."""
    return tuple(dict.fromkeys(spelling for n in names for spelling in (n, camel_case(n))))


@dataclass(frozen=True)
class Field:
    """A canonical column and the wire names it may arrive under."""

    name: str
    kind: Kind = Kind.STRING
    wire: tuple[str, ...] = ()  # snake_case wire names, or unit-family prefixes; default (name,)
    why: str | None = None  # why the field is required; None: it may be absent
    values: tuple[str, ...] = ()  # accepted values of a closed enum
    minimum: float | None = None
    maximum: float | None = None
    default: str | None = None
    in_envelope: bool = False  # top level of the record rather than its ``data`` payload
    tag: str | None = None  # the envelope tag that carries the value when the payload lacks it

    @property
    def required(self) -> bool:
        return self.why is not None

    @property
    def wire_units(self) -> tuple[tuple[str, str], ...]:
        """Every name the field may arrive under (each alias and unit, in both casings),
        each with its unit suffix (``""`` for a field that is not a unit family)."""
        names = self.wire or (self.name,)
        units: tuple[str, ...] = ("",)
        if self.kind is Kind.DURATION_MS:
            units = tuple(DURATION_UNITS)
        elif self.kind is Kind.SIZE_BYTES:
            units = tuple(SIZE_UNITS)
        return tuple(
            dict.fromkeys(
                (spelling, unit)
                for prefix in names
                for unit in units
                for spelling in both_casings((f"{prefix}_{unit}" if unit else prefix,))
            )
        )

    @property
    def wire_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.wire_units)


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
    parent_key: str  # snake_case wire field of the parent holding the id (either casing read)
    parent_windowed: bool  # whether the parent list is restricted to the window
    child_field: str  # the canonical field the parent's id fills where a record lacks it


@dataclass(frozen=True)
class Volume:
    """How many records a window of an entity may hold.

    ``sparse``: the stream has quiet windows (no changes, no audit at night), so an empty
    or collapsed window only warns. Otherwise, once ``min_history`` past windows are
    known, a collapse against them blocks; before that, nothing is expected.
    """

    sparse: bool = False
    min_history: int = 3


SPARSE = Volume(sparse=True)
FLOWING = Volume(sparse=False)


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
    volume: Volume = SPARSE

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
    return Field(name, kind, wire, in_envelope=True, **kw)  # type: ignore[arg-type]


ENVELOPE: tuple[Field, ...] = (
    _envelope("event_id", Kind.STRING, why="the identity every deduplication uses"),
    _envelope("event_time", Kind.TIMESTAMP, "timestamp", why="facts are placed by it"),
    _envelope("ingested_at", Kind.TIMESTAMP, why="the window selects on it"),
    _envelope("source_module", Kind.STRING, "source_module", "source"),
    _envelope("event_type", Kind.STRING, why="the contract's envelope: what happened"),
    _envelope("schema_version", Kind.STRING, "schema_version", "version"),
    _envelope("event_severity", Kind.ENUM, "severity", values=SEVERITIES),
    _envelope("environment", Kind.ENUM, values=("production", "staging", "dev")),
    _envelope("tags", Kind.TAGS),
)

NON_NEGATIVE = {"minimum": 0}


def _req(name: str, kind: Kind = Kind.STRING, *wire: str, why: str, **kw: object) -> Field:
    return Field(name, kind, wire, why=why, **kw)  # type: ignore[arg-type]


def _opt(name: str, kind: Kind = Kind.STRING, *wire: str, **kw: object) -> Field:
    return Field(name, kind, wire, **kw)  # type: ignore[arg-type]


# Why a field is required: said once, used by every entity it applies to.
STATE_ID = "the state's identity"
STATE_TIME = "the state's time: the window selects on it and the history orders by it"
FAN_OUT_ID = "the record's parent (taken from the fan-out path where the record lacks it)"

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
                _req("asset_id", Kind.STRING, "asset_id", "asset_uid", why="events are per asset"),
                _opt("asset_name"),
                _opt("version"),
                _opt("actor"),
                # the asset's state, where an event carries it: a state of the asset history
                _opt("category"),
                _opt("owner"),
            ),
        ),
        Entity(
            "assets",
            "/api/v1/assets",
            time_series=False,
            key=("asset_id", "updated_at"),
            fields=(
                _req("asset_id", why=STATE_ID),
                _opt("asset_name"),
                _opt("category"),
                _opt("owner"),
                _opt("tags", Kind.JSON),
                _opt("created_at", Kind.TIMESTAMP),
                _req("updated_at", Kind.TIMESTAMP, why=STATE_TIME),
            ),
        ),
        Entity(
            "versions",
            "/api/v1/assets/{id}/versions",
            time_series=False,
            key=("asset_id", "version"),
            windowed=False,
            fan_out=FanOut(
                "/api/v1/assets", "asset_id", parent_windowed=True, child_field="asset_id"
            ),
            fields=(
                _req("asset_id", why=FAN_OUT_ID),
                _req("version", why="the version's identity within its asset"),
                _opt("status", Kind.ENUM, values=("staged", "production", "retired")),
                _opt("published_at", Kind.TIMESTAMP),
                _opt("updated_at", Kind.TIMESTAMP),
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
                _opt("evaluation_id"),
                _opt("policy_id"),
                _opt("asset_id"),
                _req(
                    "result",
                    Kind.ENUM,
                    values=("compliant", "non_compliant"),
                    why="the compliance rate counts it",
                ),
                _opt("duration_ms", Kind.DURATION_MS, "duration", **NON_NEGATIVE),
            ),
        ),
        Entity(
            "violations",
            "/api/v1/violations",
            time_series=True,
            key=("event_id",),
            fields=(
                _req(
                    "violation_id",
                    why="exactly-once: each violation is counted once by it, however delivered",
                ),
                _opt("policy_id"),
                _opt("asset_id"),
                _opt("violation_severity", Kind.ENUM, "severity", values=LEVELS),
                _opt("violation_type"),
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
                _opt("audit_id"),
                _opt("policy_id"),
                _opt("action"),
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
                _req("extension_id", why=STATE_ID),
                _opt("name"),
                _opt("publisher"),
                _opt("version"),
                _opt("category"),
                _opt("installs", Kind.INT, **NON_NEGATIVE),
                _req("updated_at", Kind.TIMESTAMP, why=STATE_TIME),
            ),
        ),
        Entity(
            "usage",
            "/api/v1/extensions/{id}/usage",
            time_series=True,
            key=("event_id",),
            fan_out=FanOut(
                "/api/v1/extensions",
                "extension_id",
                parent_windowed=False,
                child_field="extension_id",
            ),
            fields=(
                _req("extension_id", why=FAN_OUT_ID),
                _req("period_start", Kind.TIMESTAMP, why="the usage fact is placed by it"),
                _opt("invocations", Kind.INT, **NON_NEGATIVE),
                _opt("active_tenants", Kind.INT, **NON_NEGATIVE),
            ),
        ),
        Entity(
            "revenue",
            "/api/v1/revenue",
            time_series=True,
            key=("event_id",),
            fields=(
                _req("extension_id", why="revenue is per extension"),
                _req(
                    "period_start",
                    Kind.TIMESTAMP,
                    why="the revenue fact is placed by it, and converted at its day's rate",
                ),
                _req("amount", Kind.FLOAT, why="the measure", **NON_NEGATIVE),
                _req(
                    "currency",
                    Kind.ENUM,
                    values=("USD", "EUR", "GBP"),
                    why="the amount's currency: no USD without it",
                ),
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
            volume=FLOWING,
            fields=(
                _opt("request_id"),
                _req(
                    "model_id",
                    Kind.STRING,
                    "model_id",
                    "model",
                    tag="model_id",
                    why="the latency rollups are per model",
                ),
                _opt("asset_id"),
                _opt("region", tag="region"),
                _opt("service", tag="service"),
                _req(
                    "latency_ms",
                    Kind.DURATION_MS,
                    "total_latency",
                    why="the measure",
                    **NON_NEGATIVE,
                ),
                _opt("ttft_ms", Kind.DURATION_MS, "ttft", **NON_NEGATIVE),
                _opt("input_tokens", Kind.INT, **NON_NEGATIVE),
                _opt("output_tokens", Kind.INT, **NON_NEGATIVE),
                _opt("status", Kind.ENUM, values=("ok", "error")),
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
                _opt("threat_id"),
                _opt("security_type", Kind.ENUM, values=("threat", "vulnerability", "anomaly")),
                _opt("threat_type"),
                _opt("threat_level", Kind.ENUM, "threat_level", "risk_level", values=LEVELS),
                _opt("severity_score", Kind.FLOAT, minimum=0, maximum=10),
                _opt("mitigation_status", Kind.ENUM, values=("blocked", "flagged", "allowed")),
                _opt("asset_id"),
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
            volume=FLOWING,
            fields=(
                _req(
                    "cost_record_id",
                    Kind.STRING,
                    "cost_record_id",
                    "record_id",
                    why="a corrected record replaces the one of the same id",
                ),
                _opt("account_id"),
                _opt("asset_id"),
                _opt("model_id"),
                _req(
                    "usage_start",
                    Kind.TIMESTAMP,
                    why="the cost fact is placed by it, and converted at its day's rate",
                ),
                _opt("usage_end", Kind.TIMESTAMP),
                _opt("input_tokens", Kind.INT, **NON_NEGATIVE),
                _opt("output_tokens", Kind.INT, **NON_NEGATIVE),
                _req("cost", Kind.FLOAT, why="the measure", **NON_NEGATIVE),
                _req(
                    "cost_unit",
                    Kind.ENUM,
                    values=("USD", "cents", "micro-USD", "EUR", "GBP"),
                    why="the cost's unit: no USD without it",
                ),
                _req(
                    "record_version",
                    Kind.INT,
                    minimum=1,
                    why="the latest version of a corrected record wins",
                ),
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
                _req("budget_id", why=STATE_ID),
                _req("account_id", why="a budget caps one account's spend"),
                _opt("period", Kind.ENUM, values=("monthly",), default="monthly"),
                _req("limit", Kind.FLOAT, why="the budget itself", **NON_NEGATIVE),
                _req(
                    "currency",
                    Kind.ENUM,
                    values=("USD", "EUR", "GBP"),
                    why="the limit's currency: no USD without it",
                ),
                _opt(
                    "alert_threshold_percent",
                    Kind.FLOAT,
                    minimum=0,
                    maximum=100,
                    default="80",
                ),
                _req("updated_at", Kind.TIMESTAMP, why=STATE_TIME),
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


def fields_markdown() -> str:
    """The field table of every entity, as ``docs/wire-contract.md`` shows it (generated
    from this table so the two cannot disagree: ``python -m analytics_hub.sources``)."""
    header = [
        "| canonical | wire (snake_case; camelCase too) | kind | required because |",
        "| --- | --- | --- | --- |",
    ]
    lines: list[str] = ["### The envelope of every time-series record", "", *header]
    lines += [_field_row(f) for f in ENVELOPE] + [""]
    for module in MODULES.values():
        for entity in module.entities:
            kind = "time series" if entity.time_series else "state"
            volume = "sparse" if entity.volume.sparse else "flowing"
            lines += [
                f"### {module.name}.{entity.name}: `GET {entity.path}`",
                "",
                f"{kind}; key ({', '.join(entity.key)}); volume {volume}; "
                f"zone of zoneless times {module.local_timezone}"
                + (f"; bulk `GET {entity.bulk_path}`" if entity.bulk_path else "")
                + (
                    f"; fan-out over `{entity.fan_out.parent_path}` "
                    f"(`{entity.fan_out.child_field}` from the path where a record lacks it)"
                    if entity.fan_out
                    else ""
                ),
                "",
                *header,
            ]
            lines += [_field_row(f) for f in entity.fields] + [""]
    return "\n".join(lines).rstrip() + "\n"


def _field_row(f: Field) -> str:
    wire = ", ".join(f"`{n}`" for n in (f.wire or (f.name,)))
    if f.kind in (Kind.DURATION_MS, Kind.SIZE_BYTES):
        units = DURATION_UNITS if f.kind is Kind.DURATION_MS else SIZE_UNITS
        wire += " + `_" + "`/`_".join(units) + "`"
    if f.tag:
        wire += f", else tag `{f.tag}`"
    detail = f.kind.value
    if f.values:
        detail += " (closed: " + ", ".join(f.values) + ")"
    if f.minimum is not None or f.maximum is not None:
        low = "" if f.minimum is None else f"{f.minimum:g}"
        high = "" if f.maximum is None else f"{f.maximum:g}"
        detail += f" [{low}..{high}]"
    if f.default is not None:
        detail += f", default {f.default}"
    return f"| {f.name} | {wire} | {detail} | {f.why or 'optional'} |"


if __name__ == "__main__":
    sys.stdout.write(fields_markdown())
