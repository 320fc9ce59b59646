"""Canonical values of one hour of one entity: the truth before any rendering mess.

Each generator receives an `HourContext` (RNG seeded from seed, module, entity
and hour; the record count; sorted ingest times) and returns columns keyed by
canonical field name. Optional fields come with a `<name>__present` mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from simulators.fx import FxTable
from simulators.world import (
    ASSET_CATEGORIES,
    ASSET_COUNT,
    CURRENCIES,
    EXTENSION_CATEGORIES,
    EXTENSION_COUNT,
    MODELS,
    REGIONS,
    SERVICES,
    TEAMS,
    US_PER_DAY,
    US_PER_HOUR,
    WORLD_START_US,
    World,
    uuid_like,
)

if TYPE_CHECKING:
    from simulators.specs import Columns, EntitySpec, ModuleSpec

__all__ = ["ASSET_CATEGORIES", "CURRENCIES", "EXTENSION_CATEGORIES", "HourContext", "make_context"]

VIOLATION_TYPES = (
    "rate_limit",
    "data_privacy",
    "content_policy",
    "access_control",
    "cost_limit",
    "model_usage",
)
THREAT_TYPES = (
    "prompt_injection",
    "jailbreak",
    "data_exfiltration",
    "pii_leak",
    "model_theft",
    "denial_of_service",
)
COST_UNITS = ("USD", "cents", "micro-USD", "EUR", "GBP")
# Powers of ten that turn a cost in its unit into USD (cents are 1e-2 USD, micro-USD 1e-6).
COST_UNIT_EXPONENT = {"USD": 0, "cents": 2, "micro-USD": 6, "EUR": 0, "GBP": 0}
LEVEL_TO_ENVELOPE_SEVERITY = {
    "low": "info",
    "medium": "warning",
    "high": "error",
    "critical": "critical",
}


@cache
def fx_table() -> FxTable:
    return FxTable()


@dataclass
class HourContext:
    seed: int
    module: ModuleSpec
    entity: EntitySpec
    module_index: int
    entity_index: int
    hour: int
    count: int
    world: World
    rng: np.random.Generator
    ingested_us: np.ndarray

    @property
    def start_us(self) -> int:
        return self.hour * US_PER_HOUR

    def pick(
        self, values: tuple[str, ...] | np.ndarray, p: list[float] | None = None
    ) -> np.ndarray:
        pool = np.asarray(values, dtype=object)
        if p is None:
            return pool[self.rng.integers(0, len(pool), self.count)]
        return pool[self.rng.choice(len(pool), self.count, p=p)]

    def ids(self, count: int | None = None) -> np.ndarray:
        return np.array(
            uuid_like(self.rng, self.module.id_prefix, self.count if count is None else count),
            dtype=object,
        )

    def present(self, share: float) -> np.ndarray:
        return self.rng.random(self.count) < share

    def for_hour(self, hour: int) -> HourContext:
        return make_context(
            self.seed,
            self.module,
            self.entity,
            self.module_index,
            self.entity_index,
            hour,
            self.count,
        )

    def state_times(self, population: int) -> tuple[int, np.ndarray]:
        """How many entities change this hour, and when (sorted), for state entities."""
        changed = min(self.count, population)
        offsets = np.sort(self.rng.integers(0, US_PER_HOUR // 1000, changed)) * 1000
        return changed, self.start_us + offsets.astype(np.int64)


def make_context(
    seed: int,
    module: ModuleSpec,
    entity: EntitySpec,
    module_index: int,
    entity_index: int,
    hour: int,
    count: int,
) -> HourContext:
    from simulators.world import build_world

    rng = np.random.default_rng([seed, module_index, entity_index, hour])
    # Millisecond precision: every wire time format can carry it except the whole-second ones.
    offsets_ms = np.sort(rng.integers(0, US_PER_HOUR // 1000, count))
    ingested = hour * US_PER_HOUR + offsets_ms.astype(np.int64) * 1000
    return HourContext(
        seed,
        module,
        entity,
        module_index,
        entity_index,
        hour,
        count,
        build_world(seed),
        rng,
        ingested,
    )


def _div_round_half_even(numerator: np.ndarray, denominator: np.ndarray | np.int64) -> np.ndarray:
    quotient, remainder = np.divmod(numerator, denominator)
    twice = 2 * remainder
    round_up = (twice > denominator) | ((twice == denominator) & (quotient % 2 == 1))
    rounded: np.ndarray = quotient + round_up.astype(np.int64)
    return rounded


def _object_array(items: list[object]) -> np.ndarray:
    """An object array of arbitrary items (np.array would turn equal-length lists into 2-D)."""
    array = np.empty(len(items), dtype=object)
    for index, item in enumerate(items):
        array[index] = item
    return array


def _epoch_days(times_us: np.ndarray) -> np.ndarray:
    days: np.ndarray = np.floor_divide(times_us, US_PER_DAY)
    return days


# --- registry -----------------------------------------------------------------------------


def registry_events(ctx: HourContext) -> Columns:
    types = (
        "asset.registered",
        "asset.updated",
        "asset.deprecated",
        "version.published",
        "version.promoted",
        "version.retired",
    )
    event_type = ctx.pick(types, p=[0.1, 0.35, 0.05, 0.25, 0.15, 0.1])
    asset = ctx.rng.integers(0, ASSET_COUNT, ctx.count)
    semver = ctx.rng.integers(0, 20, (ctx.count, 3))
    versions = np.array([f"{1 + a % 3}.{b}.{c}" for a, b, c in semver.tolist()], dtype=object)
    is_version_event = np.array([t.startswith("version.") for t in event_type.tolist()], dtype=bool)
    return {
        "event_type": event_type,
        "asset_id": ctx.world.asset_ids[asset],
        "asset_name": ctx.world.asset_names[asset],
        "version": versions,
        "version__present": is_version_event,
        "actor": ctx.pick((*TEAMS, "ci-bot", "release-bot")),
    }


def registry_assets(ctx: HourContext) -> Columns:
    changed, updated = ctx.state_times(ASSET_COUNT)
    world = ctx.world
    asset = ctx.rng.choice(ASSET_COUNT, changed, replace=False)
    keeps_owner = ctx.rng.random(changed) < 0.85
    other_owner = np.asarray(TEAMS, dtype=object)[ctx.rng.integers(0, len(TEAMS), changed)]
    return {
        "ingested_us": updated,
        "asset_id": world.asset_ids[asset],
        "asset_name": world.asset_names[asset],
        "category": world.asset_categories[asset],
        "owner": np.where(keeps_owner, world.asset_owners[asset], other_owner),
        "tags": _object_array([list(world.asset_tags[i]) for i in asset.tolist()]),
        "created_at": world.asset_created_us[asset],
        "updated_at": updated,
    }


def asset_versions(world: World, asset_index: int, now_us: int) -> list[dict[str, object]]:
    """Canonical versions of one asset as of `now_us`: staged for 3 days, then production
    until the next version is promoted, then retired."""
    created = int(world.asset_created_us[asset_index])
    interval = int(world.version_interval_us[asset_index])
    promote_after = 3 * US_PER_DAY
    published = [created + i * interval for i in range(max(0, (now_us - created) // interval) + 1)]
    published = [t for t in published if t <= now_us]
    versions = []
    for i, published_at in enumerate(published):
        promoted = published_at + promote_after
        retired = published[i + 1] + promote_after if i + 1 < len(published) else None
        if retired is not None and retired <= now_us:
            status, updated = "retired", retired
        elif promoted <= now_us:
            status, updated = "production", promoted
        else:
            status, updated = "staged", published_at
        versions.append(
            {
                "asset_id": world.asset_ids[asset_index],
                "version": f"{1 + i // 10}.{i % 10}.0",
                "status": status,
                "published_at": published_at,
                "updated_at": updated,
            }
        )
    return versions


# --- policy -------------------------------------------------------------------------------


def policy_evaluations(ctx: HourContext) -> Columns:
    result = ctx.pick(("compliant", "non_compliant"), p=[0.88, 0.12])
    return {
        "event_type": ctx.pick(("policy.evaluated", "compliance.verified"), p=[0.85, 0.15]),
        "event_severity": np.where(result == "compliant", "info", "warning").astype(object),
        "evaluation_id": ctx.ids(),
        "policy_id": ctx.pick(ctx.world.policy_ids),
        "asset_id": ctx.pick(ctx.world.asset_ids),
        "result": result,
        "duration_ms": ctx.rng.lognormal(8.3, 0.6, ctx.count).astype(np.int64) + 100,
        "duration_ms__present": ctx.present(0.95),
    }


def policy_violations(ctx: HourContext) -> Columns:
    severity = ctx.pick(("low", "medium", "high", "critical"), p=[0.4, 0.3, 0.2, 0.1])
    violation_type = ctx.pick(VIOLATION_TYPES)
    return {
        "event_type": np.full(ctx.count, "violation.detected", dtype=object),
        "event_severity": np.array(
            [LEVEL_TO_ENVELOPE_SEVERITY[s] for s in severity.tolist()], dtype=object
        ),
        "violation_id": ctx.ids(),
        "policy_id": ctx.pick(ctx.world.policy_ids),
        "asset_id": ctx.pick(ctx.world.asset_ids),
        "violation_severity": severity,
        "violation_type": violation_type,
        "description": np.array(
            [f"{t.replace('_', ' ')} rule breached" for t in violation_type.tolist()], dtype=object
        ),
        "user_id": ctx.pick(ctx.world.user_ids),
        "user_id__present": ctx.present(0.9),
    }


def policy_audit(ctx: HourContext) -> Columns:
    event_type = ctx.pick(("audit.logged", "policy.updated"), p=[0.8, 0.2])
    actions = ctx.pick(
        ("policy.create", "policy.delete", "export.requested", "access.granted", "access.revoked")
    )
    return {
        "event_type": event_type,
        "audit_id": ctx.ids(),
        "policy_id": ctx.pick(ctx.world.policy_ids),
        "policy_id__present": ctx.present(0.9),
        "action": np.where(event_type == "policy.updated", "policy.update", actions).astype(object),
        "actor_id": ctx.pick(ctx.world.user_ids),
        "actor_id__present": ctx.present(0.95),
        "resource": ctx.pick(
            ("dashboard/compliance", "export/violations", "policy-bundle/main", "asset-registry")
        ),
    }


# --- marketplace --------------------------------------------------------------------------


def extension_count() -> int:
    return EXTENSION_COUNT


def _installs(world: World, extension: np.ndarray, at_us: np.ndarray) -> np.ndarray:
    days = np.maximum(0, (at_us - WORLD_START_US) // US_PER_DAY)
    installs: np.ndarray = (
        world.extension_base_installs[extension]
        + world.extension_installs_per_day[extension] * days
    )
    return installs


def marketplace_extensions(ctx: HourContext) -> Columns:
    changed, updated = ctx.state_times(EXTENSION_COUNT)
    world = ctx.world
    extension = ctx.rng.choice(EXTENSION_COUNT, changed, replace=False)
    releases = ((updated - WORLD_START_US) // (30 * US_PER_DAY)).tolist()
    return {
        "ingested_us": updated,
        "extension_id": world.extension_ids[extension],
        "name": world.extension_names[extension],
        "publisher": world.extension_publishers[extension],
        "version": np.array(
            [f"{1 + r // 12}.{r % 12}.{ctx.hour % 7}" for r in releases], dtype=object
        ),
        "category": world.extension_categories[extension],
        "installs": _installs(world, extension, updated),
        "updated_at": updated,
    }


def marketplace_usage(ctx: HourContext) -> Columns:
    # Every extension reports its previous hour once per hour.
    extension = ctx.rng.permutation(EXTENSION_COUNT)[: ctx.count]
    expected = _installs(ctx.world, extension, ctx.ingested_us) / 5.0
    invocations = ctx.rng.poisson(expected).astype(np.int64)
    tenants = np.minimum(invocations, ctx.rng.poisson(expected / 20.0)).astype(np.int64)
    return {
        "event_type": np.full(ctx.count, "usage.reported", dtype=object),
        "extension_id": ctx.world.extension_ids[extension],
        "period_start": np.full(ctx.count, ctx.start_us - US_PER_HOUR, dtype=np.int64),
        "invocations": invocations,
        "active_tenants": tenants,
    }


def marketplace_revenue(ctx: HourContext) -> Columns:
    unit = ctx.pick(("major", "minor", "absent"), p=[0.6, 0.3, 0.1])
    # Cents either way: a major amount carries 2 decimals, a minor one none.
    return {
        "event_type": np.full(ctx.count, "revenue.recorded", dtype=object),
        "extension_id": ctx.pick(ctx.world.extension_ids),
        "period_start": np.full(ctx.count, ctx.start_us - US_PER_HOUR, dtype=np.int64),
        "amount": ctx.rng.integers(50, 50_000, ctx.count).astype(np.int64),
        "amount__scale": np.where(unit == "minor", 0, 2).astype(np.int64),
        "currency": ctx.pick(CURRENCIES, p=[0.6, 0.25, 0.15]),
        "amount_unit": np.where(unit == "absent", "major", unit).astype(object),
        "amount_unit__present": unit != "absent",
    }


def derive_amount_usd(columns: Columns) -> None:
    rate = fx_table().rate_micro(columns["currency"], _epoch_days(columns["period_start"]))
    # amount is in cents for both units, so USD micro = cents * rate_micro / 100.
    columns["amount_usd"] = _div_round_half_even(columns["amount"] * rate, np.int64(100))


# --- observatory --------------------------------------------------------------------------


def observatory_metrics(ctx: HourContext) -> Columns:
    rng, count = ctx.rng, ctx.count
    failed = rng.random(count) < 0.03
    latency = rng.lognormal(13.2, 0.7, count).astype(np.int64) + 5_000
    ttft = (latency * rng.uniform(0.05, 0.4, count)).astype(np.int64)
    input_tokens = rng.lognormal(6.0, 1.0, count).astype(np.int64)
    output_tokens = np.where(failed, 0, rng.lognormal(5.5, 0.9, count).astype(np.int64))
    return {
        "event_type": np.where(failed, "request.failed", "request.completed").astype(object),
        "event_severity": np.where(failed, "error", "info").astype(object),
        "request_id": ctx.ids(),
        "model_id": ctx.pick(MODELS),
        "asset_id": ctx.pick(ctx.world.asset_ids),
        "region": ctx.pick(REGIONS),
        "service": ctx.pick(SERVICES),
        "latency_ms": latency,
        "ttft_ms": ttft,
        "ttft_ms__present": ~failed & (rng.random(count) < 0.85),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "status": np.where(failed, "error", "ok").astype(object),
        "error_code": ctx.pick(("timeout", "rate_limited", "upstream_5xx", "content_filtered")),
        "error_code__present": failed,
        "response_bytes": output_tokens * 4 + rng.integers(200, 900, count),
        "response_bytes__present": rng.random(count) < 0.95,
    }


# --- sentinel -----------------------------------------------------------------------------


def sentinel_events(ctx: HourContext) -> Columns:
    rng, count = ctx.rng, ctx.count
    kind = rng.choice(3, count, p=[0.5, 0.2, 0.3])
    level_index = rng.choice(4, count, p=[0.35, 0.35, 0.2, 0.1])
    levels = np.asarray(("low", "medium", "high", "critical"), dtype=object)[level_index]
    # Score bands per level, in tenths: low 0.0-3.9, medium 4.0-6.9, high 7.0-8.9, critical 9.0-10.0.
    low_bound = np.array([0, 40, 70, 90])[level_index]
    high_bound = np.array([40, 70, 90, 101])[level_index]
    octets = rng.integers(1, 255, (count, 4)).tolist()
    return {
        "event_type": np.asarray(
            ("threat.detected", "vulnerability.found", "anomaly.detected"), dtype=object
        )[kind],
        "event_severity": np.array(
            [LEVEL_TO_ENVELOPE_SEVERITY[v] for v in levels.tolist()], dtype=object
        ),
        "threat_id": ctx.ids(),
        "security_type": np.asarray(("threat", "vulnerability", "anomaly"), dtype=object)[kind],
        "threat_type": ctx.pick(THREAT_TYPES),
        "threat_level": levels,
        "severity_score": rng.integers(low_bound, high_bound).astype(np.int64),
        "mitigation_status": ctx.pick(("blocked", "flagged", "allowed"), p=[0.5, 0.3, 0.2]),
        "asset_id": ctx.pick(ctx.world.asset_ids),
        "source_ip": np.array([f"{a}.{b}.{c}.{d}" for a, b, c, d in octets], dtype=object),
        "source_ip__present": ctx.present(0.9),
        "user_id": ctx.pick(ctx.world.user_ids),
        "user_id__present": ctx.present(0.7),
    }


# --- costops ------------------------------------------------------------------------------


def _corrections_in(count: int) -> int:
    """A corrected record (record_version 2) re-sends about 3% of the previous hour."""
    return count // 33


def _cost_base(ctx: HourContext, count: int) -> Columns:
    rng, world = ctx.rng, ctx.world
    model = rng.integers(0, len(MODELS), count)
    input_tokens = rng.lognormal(10.5, 1.0, count).astype(np.int64)
    output_tokens = rng.lognormal(9.5, 1.0, count).astype(np.int64)
    usd_micro = (
        input_tokens * world.model_input_price_micro[model]
        + output_tokens * world.model_output_price_micro[model]
    )
    unit = np.asarray(COST_UNITS, dtype=object)[
        rng.choice(len(COST_UNITS), count, p=[0.4, 0.15, 0.15, 0.15, 0.15])
    ]
    usage_start = np.full(count, ctx.start_us - US_PER_HOUR, dtype=np.int64)
    rate = fx_table().rate_micro(unit, _epoch_days(usage_start))
    foreign = (unit == "EUR") | (unit == "GBP")
    # Wire amounts carry bounded decimals: USD/EUR/GBP 6, cents 4, micro-USD none.
    amount = np.where(foreign, _div_round_half_even(usd_micro * 1_000_000, rate), usd_micro)
    scale = np.select([unit == "cents", unit == "micro-USD"], [4, 0], default=6).astype(np.int64)
    return {
        "cost_record_id": np.array(uuid_like(rng, "cost", count), dtype=object),
        "account_id": world.account_ids[rng.integers(0, len(world.account_ids), count)],
        "asset_id": world.asset_ids[rng.integers(0, ASSET_COUNT, count)],
        "model_id": np.asarray(MODELS, dtype=object)[model],
        "usage_start": usage_start,
        "usage_end": usage_start + US_PER_HOUR,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost": amount.astype(np.int64),
        "cost__scale": scale,
        "cost_unit": unit,
        "record_version": np.ones(count, dtype=np.int64),
    }


def costops_cost_data(ctx: HourContext) -> Columns:
    corrections = _corrections_in(ctx.count)
    base = _cost_base(ctx, ctx.count - corrections)
    if corrections:
        previous = ctx.for_hour(ctx.hour - 1)
        earlier = _cost_base(previous, previous.count - _corrections_in(previous.count))
        rows = ctx.rng.choice(
            len(earlier["cost"]), min(corrections, len(earlier["cost"])), replace=False
        )
        corrected = {name: column[rows] for name, column in earlier.items()}
        corrected["cost"] = (corrected["cost"] * ctx.rng.uniform(0.8, 1.2, len(rows))).astype(
            np.int64
        )
        corrected["record_version"] = corrected["record_version"] + 1
        base = {name: np.concatenate([base[name], corrected[name]]) for name in base}
    order = ctx.rng.permutation(len(base["cost"]))
    columns: Columns = {name: column[order] for name, column in base.items()}
    columns["event_type"] = np.full(len(order), "cost.recorded", dtype=object)
    return columns


def derive_cost_usd(columns: Columns) -> None:
    unit = columns["cost_unit"]
    rate = fx_table().rate_micro(unit, _epoch_days(columns["usage_start"]))
    exponent = np.zeros(len(unit), dtype=np.int64)
    for name, power in COST_UNIT_EXPONENT.items():
        exponent[unit == name] = power
    divisor = np.power(np.int64(10), columns["cost__scale"] + exponent)
    columns["cost_usd"] = _div_round_half_even(columns["cost"] * rate, divisor)


def derive_limit_usd(columns: Columns) -> None:
    # limit is in cents of its currency; converted with the rate of updated_at's UTC day.
    rate = fx_table().rate_micro(columns["currency"], _epoch_days(columns["updated_at"]))
    columns["limit_usd"] = _div_round_half_even(columns["limit"] * rate, np.int64(100))


def costops_budgets(ctx: HourContext) -> Columns:
    world = ctx.world
    changed, updated = ctx.state_times(len(world.budget_ids))
    budget = ctx.rng.choice(len(world.budget_ids), changed, replace=False)
    factor = np.asarray([90, 100, 110, 125])[ctx.rng.integers(0, 4, changed)]
    has_threshold = ctx.rng.random(changed) < 0.7
    threshold = np.asarray([50, 75, 80, 90])[ctx.rng.integers(0, 4, changed)]
    return {
        "ingested_us": updated,
        "budget_id": world.budget_ids[budget],
        "account_id": world.account_ids[budget],
        "period": np.full(changed, "monthly", dtype=object),
        "limit": world.budget_base_limits_cents[budget] * factor // 100,
        "currency": world.budget_currencies[budget],
        "alert_threshold_percent": np.where(has_threshold, threshold, 80).astype(np.int64),
        "alert_threshold_percent__present": has_threshold,
        "updated_at": updated,
    }
