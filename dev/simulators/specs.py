"""Declarative description of every module and entity the simulator serves.

One `ModuleSpec` per module lists its entities; each `EntitySpec` names its
canonical fields (with their wire names, renames by schema version, and kinds
that decide how they are rendered and how they can be malformed), its key, the
generator of its canonical values and the sums its ground truth reports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from simulators.generators import HourContext

FieldKind = Literal[
    "id", "str", "enum", "int", "decimal", "time", "duration", "size", "money", "list"
]
Columns = dict[str, Any]

DURATION_SUFFIXES = ("ms", "s", "us", "ns")
# Share of well-formed records in which an optional field is absent on the wire (unless
# the field says otherwise, e.g. where its generator decides presence itself).
ABSENT_SHARE = 0.05


def camel_case(name: str) -> str:
    """`total_latency_ms` -> `totalLatencyMs`: the other spelling the contract allows."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@dataclass(frozen=True)
class Field:
    """A canonical payload field.

    Numeric columns hold integers; the canonical decimal value is the integer
    times 10**-scale (durations are integer microseconds, so scale 3 gives ms).
    `required` follows the hub's field policy: only a required field can be damaged by
    removing it. Every optional field has a `<name>__present` boolean column (drawn by
    its generator and/or with `absent` share by `build_hour`); where absent on the wire,
    its canonical value is `default` (or it does not count).
    """

    name: str
    kind: FieldKind
    required: bool = False
    wire: str | None = None
    renames: Mapping[str, str] = field(default_factory=dict)
    enum: tuple[str, ...] = ()
    # A closed enum's list is complete (another value is malformed); an open one is not.
    closed: bool = True
    scale: int = 0
    default: int | str | None = None
    # Share of records without the field (optional fields only); 0: its generator decides.
    absent: float = ABSENT_SHARE
    # The envelope tag that may carry the value instead of (or besides) the payload.
    tag: str | None = None
    # The fan-out path names the value: the record may leave it out, it still counts.
    from_path: bool = False
    # The field a state window selects on: never malformed, never shifted.
    window: bool = False
    # Size families: unit -> wire name (e.g. {"bytes": "response_bytes", "kb": "response_size_kb"}).
    size_names: Mapping[str, str] = field(default_factory=dict)

    def wire_name(self, version: str | None = None) -> str:
        if version is not None and version in self.renames:
            return self.renames[version]
        return self.wire or self.name

    @property
    def optional_share(self) -> float:
        """The share `build_hour` leaves out (generators may leave out more)."""
        if self.required or self.window or self.tag is not None:
            return 0.0
        return self.absent


@dataclass(frozen=True)
class QuietHours:
    """UTC hours of the day [start, end) in which an hour has no records with `share`
    probability (1.0: never any): sparse streams really are empty sometimes."""

    start: int
    end: int
    share: float = 1.0


@dataclass(frozen=True)
class EntitySpec:
    name: str
    path: str
    kind: Literal["series", "state"]
    fields: tuple[Field, ...]
    key: tuple[str, ...]
    generate: Callable[[HourContext], Columns]
    volume_share: float = 1.0
    # Entities with a fixed population per hour (usage: one record per extension).
    fixed_count: Callable[[], int] | None = None
    partition: str | None = None
    quiet: QuietHours | None = None
    # Canonical numeric outputs reported in the truth: (name, scale); columns of that name.
    sums: tuple[tuple[str, int], ...] = ()
    derive: Callable[[Columns], None] | None = None

    def field(self, name: str) -> Field:
        for candidate in self.fields:
            if candidate.name == name:
                return candidate
        raise KeyError(name)

    @property
    def enum_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.kind == "enum")


@dataclass(frozen=True)
class ModuleSpec:
    name: str
    source: str
    id_prefix: str
    zone: str
    versions: tuple[str, ...]
    camel_versions: frozenset[str]
    entities: tuple[EntitySpec, ...]
    api_version: str = "v1"
    # An at-most-once module (observatory) never delivers a record twice.
    redelivers: bool = True

    def entity(self, name: str) -> EntitySpec:
        for candidate in self.entities:
            if candidate.name == name:
                return candidate
        raise KeyError(name)


def _build_modules() -> dict[str, ModuleSpec]:
    from simulators import generators as g

    severity = ("low", "medium", "high", "critical")
    # Required-ness and closed/open vocabularies follow the hub's field policy
    # (docs/wire-contract.md): only what a fact cannot do without is required.
    return {
        "registry": ModuleSpec(
            name="registry",
            source="llm-registry",
            id_prefix="reg",
            zone="UTC",
            versions=("1.0.0", "2.0.0"),
            camel_versions=frozenset(),
            entities=(
                EntitySpec(
                    name="events",
                    path="/api/v1/events",
                    kind="series",
                    key=("event_id",),
                    generate=g.registry_events,
                    quiet=QuietHours(0, 6, 0.5),
                    fields=(
                        Field("asset_id", "id", required=True, renames={"2.0.0": "asset_uid"}),
                        Field("asset_name", "str"),
                        Field("version", "str"),
                        Field("actor", "str"),
                    ),
                ),
                EntitySpec(
                    name="assets",
                    path="/api/v1/assets",
                    kind="state",
                    key=("asset_id", "updated_at"),
                    generate=g.registry_assets,
                    volume_share=0.1,
                    quiet=QuietHours(0, 6, 0.6),
                    fields=(
                        Field("asset_id", "id", required=True),
                        Field("asset_name", "str"),
                        Field("category", "enum", enum=g.ASSET_CATEGORIES, closed=False),
                        Field("owner", "str"),
                        Field("tags", "list"),
                        Field("created_at", "time"),
                        Field("updated_at", "time", required=True, window=True),
                    ),
                ),
            ),
        ),
        "policy": ModuleSpec(
            name="policy",
            source="llm-policy-engine",
            id_prefix="pol",
            zone="UTC",
            versions=("1.2.0", "1.3.0"),
            camel_versions=frozenset({"1.2.0", "1.3.0"}),
            entities=(
                EntitySpec(
                    name="evaluations",
                    path="/api/v1/evaluations",
                    kind="series",
                    key=("event_id",),
                    generate=g.policy_evaluations,
                    sums=(("duration_ms", 3),),
                    fields=(
                        Field("evaluation_id", "id"),
                        Field("policy_id", "id"),
                        Field("asset_id", "id"),
                        Field("result", "enum", required=True, enum=("compliant", "non_compliant")),
                        Field("duration_ms", "duration", wire="duration", scale=3, absent=0.0),
                    ),
                ),
                EntitySpec(
                    name="violations",
                    path="/api/v1/violations",
                    kind="series",
                    key=("event_id",),
                    generate=g.policy_violations,
                    volume_share=0.2,
                    fields=(
                        Field("violation_id", "id", required=True),
                        Field("policy_id", "id"),
                        Field("asset_id", "id"),
                        Field("violation_severity", "enum", wire="severity", enum=severity),
                        Field("violation_type", "enum", enum=g.VIOLATION_TYPES, closed=False),
                        Field("description", "str"),
                        Field("user_id", "str", absent=0.0),
                    ),
                ),
                EntitySpec(
                    name="audit-trail",
                    path="/api/v1/audit-trail",
                    kind="series",
                    key=("event_id",),
                    generate=g.policy_audit,
                    volume_share=0.2,
                    # No audit at night: a window of these hours is empty.
                    quiet=QuietHours(0, 4),
                    fields=(
                        Field("audit_id", "id"),
                        Field("policy_id", "id", absent=0.0),
                        Field("action", "str"),
                        Field("actor_id", "str", absent=0.0),
                        Field("resource", "str"),
                    ),
                ),
            ),
        ),
        "marketplace": ModuleSpec(
            name="marketplace",
            source="llm-marketplace",
            id_prefix="mkt",
            zone="UTC",
            versions=("1.0.0",),
            camel_versions=frozenset(),
            entities=(
                EntitySpec(
                    name="extensions",
                    path="/api/v1/extensions",
                    kind="state",
                    key=("extension_id", "updated_at"),
                    generate=g.marketplace_extensions,
                    volume_share=0.05,
                    quiet=QuietHours(0, 6, 0.5),
                    sums=(("installs", 0),),
                    fields=(
                        Field("extension_id", "id", required=True),
                        Field("name", "str"),
                        Field("publisher", "str"),
                        Field("version", "str"),
                        Field("category", "enum", enum=g.EXTENSION_CATEGORIES, closed=False),
                        Field("installs", "int"),
                        Field("updated_at", "time", required=True, window=True),
                    ),
                ),
                EntitySpec(
                    name="usage",
                    path="/api/v1/extensions/{extension_id}/usage",
                    kind="series",
                    key=("event_id",),
                    generate=g.marketplace_usage,
                    fixed_count=g.extension_count,
                    partition="extension_id",
                    sums=(("invocations", 0), ("active_tenants", 0)),
                    fields=(
                        Field("extension_id", "id", required=True, from_path=True),
                        Field("period_start", "time", required=True),
                        Field("invocations", "int"),
                        Field("active_tenants", "int"),
                    ),
                ),
                EntitySpec(
                    name="revenue",
                    path="/api/v1/revenue",
                    kind="series",
                    key=("event_id",),
                    generate=g.marketplace_revenue,
                    volume_share=0.5,
                    sums=(("amount_usd", 6),),
                    derive=g.derive_amount_usd,
                    fields=(
                        Field("extension_id", "id", required=True),
                        Field("period_start", "time", required=True),
                        Field("amount", "money", required=True),
                        Field("currency", "enum", required=True, enum=g.CURRENCIES),
                        # Absent means major: its generator decides (the amount's scale follows).
                        Field(
                            "amount_unit",
                            "enum",
                            enum=("major", "minor"),
                            default="major",
                            absent=0.0,
                        ),
                    ),
                ),
            ),
        ),
        "observatory": ModuleSpec(
            name="observatory",
            source="llm-observatory",
            redelivers=False,
            id_prefix="obs",
            zone="UTC",
            versions=("1.4.0", "2.0.0"),
            camel_versions=frozenset({"2.0.0"}),
            entities=(
                EntitySpec(
                    name="metrics",
                    path="/api/v1/metrics",
                    kind="series",
                    key=("event_id",),
                    generate=g.observatory_metrics,
                    sums=(
                        ("latency_ms", 3),
                        ("ttft_ms", 3),
                        ("response_bytes", 0),
                        ("input_tokens", 0),
                        ("output_tokens", 0),
                    ),
                    fields=(
                        Field("request_id", "id"),
                        Field(
                            "model_id",
                            "str",
                            required=True,
                            renames={"2.0.0": "model"},
                            tag="model_id",
                        ),
                        Field("asset_id", "id"),
                        Field("region", "str", tag="region"),
                        Field("service", "str", tag="service"),
                        Field(
                            "latency_ms", "duration", required=True, wire="total_latency", scale=3
                        ),
                        Field("ttft_ms", "duration", wire="ttft", scale=3),
                        Field("input_tokens", "int"),
                        Field("output_tokens", "int"),
                        Field("status", "enum", enum=("ok", "error")),
                        Field("error_code", "str", absent=0.0),
                        Field(
                            "response_bytes",
                            "size",
                            absent=0.0,
                            size_names={
                                "bytes": "response_bytes",
                                "kb": "response_size_kb",
                                "kib": "response_size_kib",
                                "mb": "response_size_mb",
                            },
                        ),
                    ),
                ),
            ),
        ),
        "sentinel": ModuleSpec(
            name="sentinel",
            source="llm-sentinel",
            id_prefix="sec",
            zone="UTC",
            versions=("1.0.0", "1.1.0"),
            camel_versions=frozenset(),
            entities=(
                EntitySpec(
                    name="security-events",
                    path="/api/v1/security-events",
                    kind="series",
                    key=("event_id",),
                    generate=g.sentinel_events,
                    sums=(("severity_score", 1),),
                    # No payload field is required.
                    fields=(
                        Field("threat_id", "id"),
                        Field("security_type", "enum", enum=("threat", "vulnerability", "anomaly")),
                        Field("threat_type", "enum", enum=g.THREAT_TYPES, closed=False),
                        Field(
                            "threat_level", "enum", enum=severity, renames={"1.1.0": "risk_level"}
                        ),
                        Field("severity_score", "decimal", scale=1),
                        Field("mitigation_status", "enum", enum=("blocked", "flagged", "allowed")),
                        Field("asset_id", "id"),
                        Field("source_ip", "str", absent=0.0),
                        Field("user_id", "str", absent=0.0),
                    ),
                ),
            ),
        ),
        "costops": ModuleSpec(
            name="costops",
            source="llm-costops",
            id_prefix="cost",
            zone="America/New_York",
            versions=("3.0.0", "3.1.0"),
            camel_versions=frozenset(),
            entities=(
                EntitySpec(
                    name="cost-data",
                    path="/api/v1/cost-data",
                    kind="series",
                    key=("cost_record_id", "record_version"),
                    generate=g.costops_cost_data,
                    sums=(("cost_usd", 6), ("input_tokens", 0), ("output_tokens", 0)),
                    derive=g.derive_cost_usd,
                    fields=(
                        Field(
                            "cost_record_id", "id", required=True, renames={"3.1.0": "record_id"}
                        ),
                        Field("account_id", "id"),
                        Field("asset_id", "id"),
                        Field("model_id", "str"),
                        Field("usage_start", "time", required=True),
                        Field("usage_end", "time"),
                        Field("input_tokens", "int"),
                        Field("output_tokens", "int"),
                        Field("cost", "money", required=True),
                        Field("cost_unit", "enum", required=True, enum=g.COST_UNITS),
                        Field("record_version", "int", required=True),
                    ),
                ),
                EntitySpec(
                    name="budgets",
                    path="/api/v1/budgets",
                    kind="state",
                    key=("budget_id", "updated_at"),
                    generate=g.costops_budgets,
                    volume_share=0.05,
                    quiet=QuietHours(0, 6, 0.5),
                    sums=(("limit", 2), ("alert_threshold_percent", 0), ("limit_usd", 6)),
                    derive=g.derive_limit_usd,
                    fields=(
                        Field("budget_id", "id", required=True),
                        Field("account_id", "id", required=True),
                        Field("period", "enum", enum=("monthly",), default="monthly"),
                        Field("limit", "decimal", required=True, scale=2),
                        Field("currency", "enum", required=True, enum=g.CURRENCIES),
                        Field("alert_threshold_percent", "int", default=80, absent=0.0),
                        Field("updated_at", "time", required=True, window=True),
                    ),
                ),
            ),
        ),
    }


# Asset versions (served per asset, no truth): the hub keys them by (asset_id, version).
VERSIONS = EntitySpec(
    name="versions",
    path="/api/v1/assets/{asset_id}/versions",
    kind="state",
    key=("asset_id", "version"),
    generate=lambda ctx: {},
    fields=(
        Field("asset_id", "id", required=True, from_path=True),
        Field("version", "str", required=True),
        Field("status", "enum", enum=("staged", "production", "retired")),
        Field("published_at", "time"),
        Field("updated_at", "time"),
    ),
)

MODULE_SPECS: dict[str, ModuleSpec] = _build_modules()
