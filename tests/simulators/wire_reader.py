"""A reference reader of the wire, written from the hub's field policy (not from the simulator).

It reads one wire record the way a correct hub does: every field under its snake_case or
camelCase name (unit families and renamed names too), a tag-carried value from the
envelope's `tags` when the payload lacks it, a fan-out parent's id from the path, every
time spelling the contract allows, numbers as JSON numbers or numeric strings. It returns
the record's canonical values (as `compute_records` spells them) and the faults it finds
(`kind:field`, as the truth's `malformed` names them). Imported by name: pytest puts this
folder on sys.path.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from simulators.fx import FX_TABLE_PATH
from simulators.specs import DURATION_SUFFIXES, MODULE_SPECS, VERSIONS, EntitySpec, Field

# The hub's field policy (docs/wire-contract.md): required fields, open vocabularies,
# defaults. Everything else is optional.
REQUIRED: dict[tuple[str, str], set[str]] = {
    ("registry", "events"): {"asset_id"},
    ("registry", "assets"): {"asset_id", "updated_at"},
    ("registry", "versions"): {"asset_id", "version"},
    ("policy", "evaluations"): {"result"},
    ("policy", "violations"): {"violation_id"},
    ("policy", "audit-trail"): set(),
    ("marketplace", "extensions"): {"extension_id", "updated_at"},
    ("marketplace", "usage"): {"extension_id", "period_start"},
    ("marketplace", "revenue"): {"extension_id", "period_start", "amount", "currency"},
    ("observatory", "metrics"): {"model_id", "latency_ms"},
    ("sentinel", "security-events"): set(),
    ("costops", "cost-data"): {
        "cost_record_id",
        "record_version",
        "usage_start",
        "cost",
        "cost_unit",
    },
    ("costops", "budgets"): {"budget_id", "account_id", "limit", "currency", "updated_at"},
}
OPEN_VOCABULARIES = {"category", "violation_type", "threat_type"}
DEFAULTS: dict[str, Any] = {
    "period": "monthly",
    "alert_threshold_percent": 80,
    "amount_unit": "major",
}
TAGS = {
    ("observatory", "metrics"): {"model_id": "model_id", "region": "region", "service": "service"}
}
FROM_PATH = {("marketplace", "usage"): "extension_id", ("registry", "versions"): "asset_id"}
ZONES = {"costops": "America/New_York"}

DURATION_TO_MS = {
    "ms": Decimal(1),
    "s": Decimal(1000),
    "us": Decimal("0.001"),
    "ns": Decimal("1e-6"),
}
SIZE_TO_BYTES = {"bytes": 1, "kb": 1000, "kib": 1024, "mb": 1_000_000}
ISO = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|z|[+-]\d\d(?::?\d\d)?)?$"
)
INGESTED_AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICRO = Decimal("0.000001")


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def spec_of(module: str, entity: str) -> EntitySpec:
    return VERSIONS if entity == "versions" else MODULE_SPECS[module].entity(entity)


def wire_names(field: Field) -> dict[str, str]:
    """Every name the field may arrive under (both casings) -> its unit ("" if none)."""
    if field.kind == "duration":
        snake = {f"{field.wire_name()}_{suffix}": suffix for suffix in DURATION_SUFFIXES}
    elif field.kind == "size":
        snake = {name: unit for unit, name in field.size_names.items()}
    else:
        snake = dict.fromkeys([field.wire_name(), *field.renames.values()], "")
    return {**snake, **{camel(name): unit for name, unit in snake.items()}}


def parse_time(value: object, zone: str) -> datetime | None:
    """Any spelling the contract allows, exactly (to the microsecond); None if unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        micros = number * (10**6 if number < Decimal("1e11") else 10**3)
        return EPOCH + timedelta(microseconds=int(micros.to_integral_value()))
    match = ISO.match(str(value))
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, suffix = match.groups()
    fraction = (fraction or "").ljust(9, "0")
    assert fraction[6:] == "000", value  # no precision beyond microseconds
    try:
        wall = datetime(  # noqa: DTZ001 (the zone is applied below)
            int(year), int(month), int(day), int(hour), int(minute), int(second), int(fraction[:6])
        )
    except ValueError:
        return None
    if suffix in ("Z", "z"):
        return wall.replace(tzinfo=UTC)
    if suffix is None:
        local = ZoneInfo(zone)
        first, second = wall.replace(tzinfo=local, fold=0), wall.replace(tzinfo=local, fold=1)
        assert first.utcoffset() == second.utcoffset(), f"ambiguous local time {value}"
        return first.astimezone(UTC)
    sign = 1 if suffix[0] == "+" else -1
    digits = suffix[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + (int(digits[2:]) if len(digits) > 2 else 0)
    return (wall - sign * timedelta(minutes=minutes)).replace(tzinfo=UTC)


def parse_number(value: object) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return Decimal(repr(value))
    try:
        return Decimal(value) if isinstance(value, int | str) else None
    except InvalidOperation:
        return None


@cache
def _rates() -> dict[tuple[str, str], Decimal]:
    rates = {}
    for line in FX_TABLE_PATH.read_text().splitlines()[1:]:
        day, currency, rate = line.split(",")
        rates[(day, currency)] = Decimal(rate)
    return rates


def usd(amount: Decimal, currency: str, moment: datetime) -> Decimal:
    rate = Decimal(1) if currency == "USD" else _rates()[(moment.date().isoformat(), currency)]
    return (amount * rate).quantize(MICRO, rounding=ROUND_HALF_EVEN)


def read(
    module: str, entity: str, record: dict[str, Any], parent_id: str | None = None
) -> tuple[dict[str, Any], set[str]]:
    """(canonical values, faults) of one wire record."""
    spec = spec_of(module, entity)
    zone = ZONES.get(module, "UTC")
    required = REQUIRED[(module, entity)]
    tags_of = TAGS.get((module, entity), {})
    out: dict[str, Any] = {}
    faults: set[str] = set()
    payload = record
    if spec.kind == "series":
        payload = record["data"]
        out["event_id"] = record.get("event_id", record.get("eventId"))
        out["event_type"] = record.get("event_type", record.get("eventType"))
        out["event_time"] = parse_time(record["timestamp"], zone)
        if out["event_time"] is None:
            faults.add("unparseable_time:event_time")
        ingested = str(record.get("ingested_at", record.get("ingestedAt")))
        assert INGESTED_AT.match(ingested), ingested
        out["ingested_at"] = parse_time(ingested, "UTC")
    for field in spec.fields:
        if field.kind == "list":
            continue
        name = field.name
        found = [(key, unit) for key, unit in wire_names(field).items() if key in payload]
        assert len(found) <= 1, (name, found)
        raw = payload[found[0][0]] if found else None
        unit = found[0][1] if found else ""
        if raw is None and name in tags_of:
            raw = record.get("tags", {}).get(tags_of[name])
        if raw is None and FROM_PATH.get((module, entity)) == name:
            raw = parent_id
        if raw is None:
            if name in required:
                faults.add(f"missing_required:{name}")
            default = DEFAULTS.get(name)
            out[name] = default
            continue
        value: Any = raw
        if field.kind == "time":
            value = parse_time(raw, zone)
            if value is None:
                faults.add(f"unparseable_time:{name}")
        elif field.kind in ("int", "decimal", "money", "duration", "size"):
            number = parse_number(raw)
            if number is None or (field.kind == "int" and number != number.to_integral_value()):
                faults.add(f"unparseable_number:{name}")
                value = None
            elif number < 0:
                faults.add(f"negative_number:{name}")
                value = None
            elif field.kind == "int":
                value = int(number)
            elif field.kind == "duration":
                value = number * DURATION_TO_MS[unit]
            elif field.kind == "size":
                value = Decimal((number * SIZE_TO_BYTES[unit]).to_integral_value())
            else:
                value = number
        elif field.kind == "enum" and name not in OPEN_VOCABULARIES and raw not in field.enum:
            faults.add(f"unknown_enum:{name}")
        out[name] = value
    if faults:
        return out, faults
    if (module, entity) == ("costops", "cost-data"):
        factor = {"cents": Decimal("0.01"), "micro-USD": MICRO}.get(out["cost_unit"], 1)
        currency = out["cost_unit"] if out["cost_unit"] in ("EUR", "GBP") else "USD"
        out["cost_usd"] = usd(out["cost"] * factor, currency, out["usage_start"])
    elif (module, entity) == ("marketplace", "revenue"):
        amount = out["amount"] / (100 if out["amount_unit"] == "minor" else 1)
        out["amount_usd"] = usd(amount, out["currency"], out["period_start"])
    elif (module, entity) == ("costops", "budgets"):
        out["limit_usd"] = usd(out["limit"], out["currency"], out["updated_at"])
    return out, faults
