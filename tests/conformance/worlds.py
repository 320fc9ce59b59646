"""Canonical records and the worlds the conformance server serves, generated.

A ``World`` is a window and, per entity, canonical records (good or bad, in or out of
the window, redelivered or not), each rendered once per delivery into one of its wire
spellings. From it come both what the server serves and what the hub must land: the
expected normalized rows, dead letters with their reasons, and the manifest's counts.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from conformance.contract import (
    ENTITIES,
    ID_PREFIX,
    REDELIVERING,
    SERVICES,
    Entity,
    Kind,
    Spec,
    entity,
    expected_row,
)
from conformance.wire import (
    MISSING,
    NEGATIVE,
    NO_FX_RATE,
    OUT_OF_RANGE,
    UNKNOWN_ENUM,
    UNPARSEABLE_NUMBER,
    UNPARSEABLE_TIME,
    Chooser,
    HypothesisChooser,
    RandomChooser,
    Rec,
    dumps,
    render,
)

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
PRE_TABLE = datetime(2024, 6, 1, tzinfo=UTC)  # before the first day of the rate table


def floor(moment: datetime, precision: str) -> datetime:
    if precision == "s":
        return moment.replace(microsecond=0)
    if precision == "ms":
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    return moment


@dataclass
class Pools:
    """Low-cardinality ids that records of different modules share (joins, groups)."""

    assets: list[str]
    models: list[str]
    accounts: list[str]
    policies: list[str]
    extensions: list[str]

    @classmethod
    def draw(cls, ch: Chooser, size: int = 3) -> Pools:
        asset_styles = ["asset-{n:04d}", "acme/model-{n}", "ds:{n}:v1", "Modèle-{n}"]
        extension_styles = ["ext-{n:03d}", "@acme/summarizer-{n}", "ext {n}"]
        assets = [ch.pick(asset_styles).format(n=n) for n in range(1, size + 2)]
        extensions = [ch.pick(extension_styles).format(n=n) for n in range(1, size + 1)]
        models = ["gpt-4o", "llama-3-70b", "mistral-7b", "claude-3-haiku", "e5-large"][: size + 1]
        accounts = [f"acct-{n:03d}" for n in range(1, size + 1)]
        policies = ["policy-pii", "policy-rate", "policy-content"][:size]
        return cls(assets, models, accounts, policies, extensions)


EVENT_TYPES = {
    "registry.events": [
        "asset.registered",
        "asset.updated",
        "asset.deprecated",
        "version.published",
        "version.promoted",
        "version.retired",
        "asset.archived",
    ],
    "policy.evaluations": ["policy.evaluated", "compliance.verified"],
    "policy.violations": ["violation.detected", "Violation.Escalated"],
    "policy.audit": ["audit.logged", "policy.updated"],
    "marketplace.usage": ["usage.reported", "extension.invoked"],
    "marketplace.revenue": ["revenue.recorded", "payout.settled"],
    "observatory.metrics": ["request.completed", "metric.recorded"],
    "sentinel.security_events": ["threat.detected", "anomaly.detected", "vulnerability.found"],
    "costops.cost_records": ["cost.recorded", "cost.corrected"],
}
NAMES = ["Sentiment Classifier", "embedder-v2", "Modèle de résumé", 'Ωmega "quoted" name']
DESCRIPTIONS = [
    "PII found in prompt",
    "Rate limit exceeded by tenant",
    'said "hi" \\ then\nleft',
    "Données personnelles détectées ✓",
]
USERS = ["user-1001", "alice@example.com", "user-1002", "Bob Ünïcode"]
IPS = ["10.0.0.7", "192.168.1.20", "2001:db8::1"]
SEMVER = ["1.0.0", "1.2.3", "2.0.0-rc.1", "0.9.12"]


class Gen:
    """Canonical values, one entity's fields at a time."""

    def __init__(self, ch: Chooser, pools: Pools, start: datetime, end: datetime):
        self.ch, self.pools, self.start, self.end = ch, pools, start, end
        self.serial = 0

    def next_id(self, prefix: str) -> str:
        self.serial += 1
        suffix = uuid.UUID(int=self.ch.integer(0, 2**64 - 1)).hex[-12:]
        return f"{prefix}{self.serial:04d}-{suffix}"

    # --- times
    def precision(self) -> str:
        return self.ch.pick(["s", "ms", "us"])

    def inside(self) -> datetime:
        span = int((self.end - self.start).total_seconds() * 1e6)
        if self.ch.chance(8):
            return self.start  # the window's first instant belongs to it
        return floor(
            self.start + timedelta(microseconds=self.ch.integer(0, span - 1)), self.precision()
        )

    def outside(self) -> datetime:
        span = int((self.end - self.start).total_seconds() * 1e6)
        if self.ch.chance(3):
            return self.end  # the next window's first instant
        if self.ch.chance(2):
            return self.end + timedelta(microseconds=self.ch.integer(0, span))
        return floor(
            self.start - timedelta(microseconds=self.ch.integer(1, span)), self.precision()
        )

    def before(self, moment: datetime, late: bool = True) -> datetime:
        """A time at or before ``moment``: mostly shortly before, sometimes days."""
        lag_kind = self.ch.pick(
            ["seconds", "zero", "hours", "days"] if late else ["seconds", "zero"]
        )
        limit = {"zero": 0, "seconds": 600, "hours": 72 * 3600, "days": 20 * 86400}[lag_kind]
        lag = timedelta(microseconds=self.ch.integer(0, limit * 10**6))
        return floor(moment - lag, self.precision())

    # --- values
    def optional(self) -> bool:
        """Whether an optional field is absent."""
        return self.ch.chance(3)

    def decimal(self, low: int, high: int, places: int) -> Decimal:
        return Decimal(self.ch.integer(low * 10**places, high * 10**places)).scaleb(-places)

    def value(self, ent: Entity, spec: Spec, values: dict[str, Any]) -> Any:
        ch, p = self.ch, self.pools
        name, kind = spec.name, spec.kind
        if kind is Kind.ENUM:
            return ch.pick(spec.values)
        if kind is Kind.TAGS:
            keys = ch.pick([["region"], ["region", "team"], [], ["service", "tenant", "shard"]])
            options = {
                "region": ["us-east-1", "eu-west-1"],
                "team": ["nlp", "search"],
                "service": ["chat", "batch"],
                "tenant": ["t-1", "t-2"],
                "shard": ["7"],
            }
            return {k: ch.pick(options[k]) for k in keys}
        if kind is Kind.TIME:
            if name == "created_at":
                return self.before(values["updated_at"])
            if name in ("published_at", "updated_at"):  # a version's times
                return self.before(self.start)
            if name == "usage_end":
                return values["usage_start"] + timedelta(hours=1)
            if name in ("usage_start", "period_start"):
                anchor = values["event_time"] - (
                    timedelta(hours=1) if name == "usage_start" else timedelta(0)
                )
                return self.before(anchor)
            raise AssertionError(name)
        if kind is Kind.DURATION:
            nanos = ch.integer(0, 30 * 10**9)
            places = ch.pick([0, 3, 6])
            return (Decimal(nanos) / Decimal(10**6)).quantize(Decimal(1).scaleb(-places))
        if kind is Kind.SIZE:
            return ch.integer(0, 5_000_000)
        if kind is Kind.INT:
            if name == "record_version":
                return ch.integer(1, 3)
            return ch.integer(0, 100_000)
        if kind is Kind.FLOAT:
            if name == "severity_score":
                return self.decimal(0, 10, 1)
            if name == "alert_threshold_percent":
                return self.decimal(0, 100, ch.pick([0, 1]))
            if name == "limit":
                return self.decimal(0, 100_000, ch.pick([0, 2]))
            if name == "cost":
                unit = values["cost_unit"]
                if unit == "micro-USD":  # half micro-dollars: ties at the 7th decimal
                    return self.decimal(0, 500_000_000, ch.pick([0, 1]))
                if unit == "cents":
                    return self.decimal(0, 50_000, 1)
                return self.decimal(0, 500, ch.pick([2, 4]))
            if name == "amount":
                if values.get("amount_unit") == "minor":
                    return Decimal(ch.integer(0, 1_000_000))
                return self.decimal(0, 10_000, 2)
            raise AssertionError(name)
        if kind is Kind.PERSONAL:
            return ch.pick(IPS if name == "source_ip" else USERS)
        if kind is Kind.LIST:
            return ch.pick([["nlp"], [], ["nlp", "prod"], ["ünïcode"]])
        # identifiers and text
        if name == "event_id":
            return self.next_id(ID_PREFIX[ent.module])
        if name == "asset_id":
            return ch.pick(p.assets)
        if name == "extension_id":
            return ch.pick(p.extensions)
        if name == "model_id":
            return ch.pick(p.models)
        if name == "account_id":
            return ch.pick(p.accounts)
        if name == "policy_id":
            return ch.pick(p.policies)
        if name == "event_type":
            return ch.pick(EVENT_TYPES[ent.id])
        if name == "source_module":
            return SERVICES[ent.module]
        if name in ("schema_version", "version"):
            return ch.pick(SEMVER)
        if name in ("asset_name", "name"):
            return ch.pick(NAMES)
        if name == "description":
            return ch.pick(DESCRIPTIONS)
        if name == "category":
            return ch.pick(
                ["language-model", "embedding", "dataset", "prompt-template", "Audio-Model"]
            )
        if name == "violation_type":
            return ch.pick(["rate_limit", "data_privacy", "content_policy", "Model_Theft"])
        if name == "threat_type":
            return ch.pick(
                ["prompt_injection", "jailbreak", "data_exfiltration", "pii_leak", "supply-chain"]
            )
        if name == "action":
            return ch.pick(["policy.updated", "rule.disabled", "exception.granted"])
        if name in ("owner", "publisher"):
            return ch.pick(["team-nlp", "ml-platform", "Équipe Recherche"])
        if name == "actor":
            return ch.pick(["ci-bot", "alice"])
        if name == "resource":
            return ch.pick(["policy/pii", "asset/acme/model-1"])
        if name == "region":
            return ch.pick(["us-east-1", "eu-west-1", "ap-south-1"])
        if name == "service":
            return ch.pick(["chat", "embeddings", "batch"])
        if name == "error_code":
            return ch.pick(["E_TIMEOUT", "rate_limited"])
        prefixes = {
            "evaluation_id": "eval-",
            "violation_id": "viol-",
            "audit_id": "aud-",
            "request_id": "req-",
            "threat_id": "thr-",
            "cost_record_id": "cr-",
            "budget_id": "bud-",
        }
        return self.next_id(prefixes[name])

    # --- records
    FILL_ORDER = (
        "event_id",
        "ingested_at",
        "event_time",
        "updated_at",
        "cost_unit",
        "amount_unit",
        "usage_start",
        "period_start",
    )

    def record(self, ent: Entity, at: datetime | None, bad: bool, **fixed: Any) -> Rec:
        """A canonical record of ``ent`` selected at ``at`` (its ingest or update time)."""
        ch = self.ch
        values: dict[str, Any] = {}
        if ent.series:
            values["ingested_at"] = at
            values["event_time"] = self.before(at)  # type: ignore[arg-type]
        elif ent.window_field:
            values["updated_at"] = at
        values.update(fixed)
        faults: dict[str, str] = {}
        if bad:
            faults = self.faults(ent)
        first = {name: n for n, name in enumerate(self.FILL_ORDER)}
        for spec in sorted(ent.specs, key=lambda s: first.get(s.name, len(first))):
            if spec.name in values:
                continue
            needed = spec.required or spec.name in faults or spec.from_path
            if not needed and self.optional():
                values[spec.name] = None
                continue
            values[spec.name] = self.value(ent, spec, values)
        if faults.get("__money__"):
            faults.pop("__money__")
            money = ent.money[0]
            values[money.unit] = ch.pick(["EUR", "GBP"])
            values[money.on_date] = floor(
                PRE_TABLE + timedelta(seconds=ch.integer(0, 86400 * 90)), "s"
            )
            if money.on_date == "usage_start" and values.get("usage_end") is not None:
                values["usage_end"] = values["usage_start"] + timedelta(hours=1)
            if money.amount == "cost":
                values["cost"] = self.value(ent, ent.spec("cost"), values)
            faults[money.output] = NO_FX_RATE
        rec = Rec(ent, values, faults)
        if ent.id == "observatory.metrics":
            self._place_tagged(rec)
        if faults.get("model_id") == MISSING and isinstance(values.get("tags"), dict):
            values["tags"].pop("model_id", None)
        return rec

    def _place_tagged(self, rec: Rec) -> None:
        """Observatory: model_id, region and service in the payload, the tags, or both."""
        tags = dict(rec.values.get("tags") or {})
        for key in ("region", "service", "model_id"):
            tags.pop(key, None)
        omit = set()
        for name in ("model_id", "region", "service"):
            value = rec.values.get(name)
            if value is None or rec.faults.get(name) == MISSING:
                continue
            if rec.faults.get(name):
                continue
            place = self.ch.pick(["payload", "tags_only", "both_same", "both_differ"])
            if place == "tags_only":
                omit.add(name)
                tags[name] = value
            elif place == "both_same":
                tags[name] = value
            elif place == "both_differ":
                tags[name] = f"{value}-tagged"
        rec.values["tags"] = tags if (tags or rec.values.get("tags") is not None) else None
        rec.omit_payload = frozenset(omit)

    def faults(self, ent: Entity) -> dict[str, str]:
        """One to three ways a record is bad, each on its own field."""
        options: list[tuple[str, str]] = []
        for spec in ent.specs:
            if spec.required and not spec.from_path:
                options.append((spec.name, MISSING))
            if spec.kind is Kind.ENUM:
                options.append((spec.name, UNKNOWN_ENUM))
            if spec.kind in (Kind.INT, Kind.FLOAT, Kind.DURATION, Kind.SIZE):
                options.append((spec.name, UNPARSEABLE_NUMBER))
                if spec.low == 0:
                    options.append((spec.name, NEGATIVE))
                if spec.high is not None or (spec.low is not None and spec.low > 0):
                    options.append((spec.name, OUT_OF_RANGE))
            if spec.kind is Kind.TIME:
                options.append((spec.name, UNPARSEABLE_TIME))
        if ent.money and ent.money[0].on_date != "updated_at":
            options.append(("__money__", NO_FX_RATE))
        count = self.ch.integer(1, 3)
        chosen: dict[str, str] = {}
        for _ in range(count):
            name, code = self.ch.pick(options)
            if name in chosen:
                continue
            if name == "__money__" or "__money__" in chosen:
                money = ent.money[0]
                touched = {money.amount, money.unit, money.on_date}
                if name == "__money__" and touched & chosen.keys():
                    continue
                if name in touched:
                    continue
            chosen[name] = code
        return chosen


@dataclass
class Served:
    wire: dict[str, Any]
    at: datetime | None  # selection time; None: not windowed
    parent: str | None


@dataclass
class World:
    start: datetime
    end: datetime
    recs: dict[str, list[Rec]]  # by entity id; fan-out parents included
    seed: int  # the server's paging and ordering
    transient_one_in: int = 0  # a first request fails once in N (0: never)
    transient_statuses: tuple[int, ...] = (429, 503)  # how it fails
    meta: dict[str, Any] = field(default_factory=dict)

    def in_window(self, moment: datetime | None) -> bool:
        return moment is None or self.start <= moment < self.end

    def served(self) -> dict[str, list[Served]]:
        out: dict[str, list[Served]] = {}
        for ent_id, recs in self.recs.items():
            out[ent_id] = [Served(w, rec.at, rec.parent) for rec in recs for w in rec.wires]
        return out

    def pulled(self, ent: Entity) -> list[Rec]:
        """The records of ``ent`` the hub receives when it pulls this window."""
        recs = self.recs.get(ent.id, [])
        if ent.parent is None:
            return [r for r in recs if self.in_window(r.at)]
        parent = entity(ent.module, ent.parent)
        id_field = parent.key[0]
        listed = {
            r.values[id_field]
            for r in self.recs.get(parent.id, [])
            if r.faults.get(id_field) != MISSING
            and (not ent.parent_windowed or self.in_window(r.at))
        }
        return [
            r for r in recs if r.parent in listed and (not ent.windowed or self.in_window(r.at))
        ]

    def expectation(self, ent: Entity, key: str) -> Expectation:
        pulled = self.pulled(ent)
        good = [r for r in pulled if not r.bad]
        rows: dict[tuple[Any, ...], dict[str, Any]] = {}
        for rec in good:
            rows.setdefault(rec.key(), expected_row(ent, rec.values, key))
        dead = Counter(
            (canonical_json(wire), rec.reasons()) for rec in pulled if rec.bad for wire in rec.wires
        )
        return Expectation(
            rows=list(rows.values()),
            dead=dead,
            pulled=sum(len(r.wires) for r in pulled),
            landed=len(rows),
            dead_lettered=sum(len(r.wires) for r in pulled if r.bad),
            deduplicated=sum(len(r.wires) for r in good) - len(rows),
        )


@dataclass
class Expectation:
    rows: list[dict[str, Any]]
    dead: Counter[tuple[str, frozenset[str]]]
    pulled: int
    landed: int
    dead_lettered: int
    deduplicated: int


def canonical_json(wire: Any) -> str:
    """A record's JSON, re-read: the same for any spelling of the same JSON value.

    Numbers compare by value (``34``, ``34.0`` and ``3.4E+1`` are one number).
    """

    def numbers(value: Any) -> Any:
        if isinstance(value, Decimal):
            return f"#number:{value.normalize()}"
        if isinstance(value, dict):
            return {k: numbers(v) for k, v in value.items()}
        if isinstance(value, list):
            return [numbers(v) for v in value]
        return value

    text = wire if isinstance(wire, str) else dumps(wire)
    parsed = json.loads(text, parse_float=Decimal, parse_int=Decimal)
    return json.dumps(numbers(parsed), sort_keys=True, ensure_ascii=False)


# --- Strategies -------------------------------------------------------------------------------


def draw_window(ch: Chooser) -> tuple[datetime, datetime]:
    minutes = ch.pick([60, 15, 30, 120])
    day = ch.integer(0, 760)  # 2026-01-01 .. 2028-01-30: past the rate table's last day too
    slot = ch.integer(0, 24 * 60 // minutes - 1)
    start = EPOCH + timedelta(days=day, minutes=slot * minutes)
    return start, start + timedelta(minutes=minutes)


def _render_all(ch: Chooser, recs: list[Rec]) -> None:
    for rec in recs:
        rec.wires = [render(ch, rec) for _ in range(rec.copies)]


def entity_records(
    gen: Gen,
    ent: Entity,
    good: int,
    bad: int,
    outside: int,
    redelivered: int,
    parents: list[str | None] | None = None,
) -> list[Rec]:
    ch = gen.ch
    recs: list[Rec] = []
    plan = [(False, True)] * good + [(True, True)] * bad
    plan += [(ch.chance(2), False) for _ in range(outside)]
    for is_bad, inside in plan:
        at = None
        if ent.window_field:
            at = gen.inside() if inside else gen.outside()
        fixed: dict[str, Any] = {}
        parent = None
        if parents is not None:
            parent = ch.pick(parents) if parents else None
            if parent is None:
                continue
            fixed[ent.key[0] if ent.name == "versions" else "extension_id"] = parent
        if not ent.series and ent.name != "versions":
            fixed[ent.key[0]] = gen.value(ent, ent.spec(ent.key[0]), {})
            if ent.key[0] in ("asset_id", "extension_id"):
                fixed[ent.key[0]] = _unique(recs, ent.key[0], fixed[ent.key[0]], gen)
        if ent.name == "versions":
            fixed["version"] = _unique_version(recs, parent, gen)
        rec = gen.record(ent, at, is_bad, **fixed)
        rec.parent = parent
        recs.append(rec)
    if ent.series and ent.module in REDELIVERING:
        good_recs = [r for r in recs if not r.bad and (r.at is None or gen.start <= r.at < gen.end)]
        for rec in good_recs[:redelivered]:
            rec.copies = ch.pick([2, 3])
    return recs


def _unique(recs: list[Rec], name: str, value: str, gen: Gen) -> str:
    taken = {r.values.get(name) for r in recs}
    if value not in taken:
        return value
    return f"{value}-{gen.next_id('x')}"


def _unique_version(recs: list[Rec], parent: str | None, gen: Gen) -> str:
    """A version not yet taken by the parent's other versions."""
    taken = {r.values.get("version") for r in recs if r.parent == parent}
    version = gen.ch.pick(["1.0.0", "1.1.0", "2.0.0", "2.1.0-beta"])
    build = 0
    while version in taken:
        build += 1
        version = f"{version.split('+')[0]}+{build}"
    return version


@st.composite
def window_worlds(draw: Any, ent_id: str, empty: bool = False) -> World:
    """One entity's window: good, bad, redelivered and out-of-window records, rendered.

    ``empty``: nothing of the entity is in the window (its records are all outside).
    """
    ch = HypothesisChooser(draw)
    ent = next(e for e in ENTITIES if e.id == ent_id)
    start, end = draw_window(ch)
    gen = Gen(ch, Pools.draw(ch), start, end)
    recs: dict[str, list[Rec]] = {}
    counts = {
        "good": 0 if empty else ch.integer(0, 6),
        "bad": 0 if empty else ch.integer(0, 3),
        "outside": ch.integer(0, 3 if empty else 2),
        "redelivered": 0 if empty else ch.integer(0, 2),
    }
    listed_parents = not (empty and ent.parent_windowed)
    parents: list[str | None] | None = None
    if ent.parent is not None:
        parent = next(e for e in ENTITIES if e.module == ent.module and e.name == ent.parent)
        parent_recs = entity_records(
            gen,
            parent,
            good=ch.integer(0, 3) if listed_parents else 0,
            bad=ch.integer(0, 1) if listed_parents else 0,
            outside=ch.integer(0, 1 if listed_parents else 2),
            redelivered=0,
        )
        recs[parent.id] = parent_recs
        parents = [r.values[parent.key[0]] for r in parent_recs]
        _render_all(ch, parent_recs)
    own = entity_records(gen, ent, parents=parents, **counts)
    _render_all(ch, own)
    recs[ent.id] = own
    return World(
        start=start,
        end=end,
        recs=recs,
        seed=ch.integer(0, 2**32 - 1),
        transient_one_in=ch.pick([0, 5, 2]),
    )


def big_world(seed: int, start: datetime, end: datetime) -> World:
    """All six modules in one window, made from a seed (for the DAG test)."""
    ch = RandomChooser(random.Random(seed))
    gen = Gen(ch, Pools.draw(ch, size=4), start, end)
    recs: dict[str, list[Rec]] = {}
    for ent in ENTITIES:
        if ent.parent is not None:
            continue
        many = ent.series
        recs[ent.id] = entity_records(
            gen,
            ent,
            good=ch.integer(25, 40) if many else ch.integer(4, 6),
            bad=ch.integer(2, 5) if many else 1,
            outside=ch.integer(2, 4),
            redelivered=ch.integer(2, 4) if many else 0,
        )
    for ent in ENTITIES:
        if ent.parent is None:
            continue
        parent = entity(ent.module, ent.parent)
        ids = [r.values[parent.key[0]] for r in recs[parent.id]]
        recs[ent.id] = entity_records(
            gen, ent, good=ch.integer(6, 12), bad=1, outside=2, redelivered=1, parents=ids
        )
    _corrections(gen, recs)
    for ent_recs in recs.values():
        _render_all(ch, ent_recs)
    return World(start=start, end=end, recs=recs, seed=seed, transient_one_in=10)


def _corrections(gen: Gen, recs: dict[str, list[Rec]]) -> None:
    """Cost records corrected with a higher record_version; violations delivered again
    under a new event id (exactly-once: still one violation)."""
    ch = gen.ch
    costs = recs["costops.cost_records"]
    for rec in [r for r in costs if not r.bad and gen.start <= r.at < gen.end][:4]:  # type: ignore[operator]
        values = dict(rec.values)
        values["event_id"] = gen.next_id(ID_PREFIX["costops"])
        values["record_version"] = rec.values["record_version"] + ch.integer(1, 2)
        values["cost"] = gen.value(rec.ent, rec.ent.spec("cost"), values)
        values["ingested_at"] = gen.inside()
        values["event_time"] = gen.before(values["ingested_at"])
        costs.append(Rec(rec.ent, values))
    violations = recs["policy.violations"]
    for rec in [r for r in violations if not r.bad and gen.start <= r.at < gen.end][:3]:  # type: ignore[operator]
        values = dict(rec.values)
        values["event_id"] = gen.next_id(ID_PREFIX["policy"])
        values["ingested_at"] = max(rec.values["ingested_at"], gen.inside())
        violations.append(Rec(rec.ent, values))
