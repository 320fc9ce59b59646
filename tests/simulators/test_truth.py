"""Ground truth: additive over windows, consistent with the wire, exact after normalization."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from itertools import combinations
from typing import Any

import pytest
from simulator_helpers import WINDOW, pull_pages
from starlette.testclient import TestClient

from simulators import MODULES, SimulatorConfig, compute_records, compute_truth
from simulators.fx import FX_TABLE_PATH
from simulators.render import BAD_NUMBERS, BAD_TIMES
from simulators.specs import DURATION_SUFFIXES, MODULE_SPECS

START = datetime(2026, 3, 10, 10, tzinfo=UTC)
SPLIT = datetime(2026, 3, 10, 11, 23, 45, 678000, tzinfo=UTC)
END = datetime(2026, 3, 10, 14, tzinfo=UTC)
CHAOTIC = SimulatorConfig(seed=5, chaos=0.5)
ENTITIES = [(m, e.name) for m in MODULES for e in MODULE_SPECS[m].entities]
# usage is served per extension; test_http checks it through its parent window
UNPARTITIONED = [(m, e) for m, e in ENTITIES if not MODULE_SPECS[m].entity(e).partition]


def add_truths(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    counts = {}
    for name in left["counts"]:
        merged = Counter(left["counts"][name]) + Counter(right["counts"][name])
        counts[name] = dict(sorted(merged.items()))
    return {
        **left,
        **{k: left[k] + right[k] for k in ("pulled", "duplicates", "malformed", "late", "valid")},
        "counts": counts,
        "sums": {
            k: format(Decimal(left["sums"][k]) + Decimal(right["sums"][k]), "f")
            for k in left["sums"]
        },
    }


@pytest.mark.parametrize(("module", "entity"), ENTITIES)
def test_truth_is_additive_over_windows(module: str, entity: str) -> None:
    whole = compute_truth(CHAOTIC, module, entity, START, END)
    parts = add_truths(
        compute_truth(CHAOTIC, module, entity, START, SPLIT),
        compute_truth(CHAOTIC, module, entity, SPLIT, END),
    )
    assert parts == whole
    assert whole["pulled"] > 0


@pytest.mark.parametrize(("module", "entity"), ENTITIES)
def test_records_are_the_valid_records_the_truth_counts_and_sums(module: str, entity: str) -> None:
    truth = compute_truth(CHAOTIC, module, entity, START, END)
    records = compute_records(CHAOTIC, module, entity, START, END)
    assert len(records) == truth["valid"]
    damaged = {m["id"] for m in truth["malformed"]}
    spec = MODULE_SPECS[module].entity(entity)
    if spec.kind == "series":
        ids = [r["event_id"] for r in records]
        assert len(set(ids)) == len(ids)
        assert not damaged & set(ids)
        assert all(START <= r["ingested_at"] < END for r in records)
    for name, expected in truth["sums"].items():
        total = sum(Decimal(r[name]) for r in records if r[name] is not None)
        assert total == Decimal(expected), name
    for name, expected in truth["counts"].items():
        present = Counter(r[name] for r in records if r[name] is not None)
        assert dict(sorted(present.items())) == expected, name


def test_budget_limits_in_usd_use_the_rate_of_their_update_day() -> None:
    rates = _rates()
    records = compute_records(CHAOTIC, "costops", "budgets", START, END)
    assert {r["currency"] for r in records} - {"USD"}
    for record in records:
        rate = (
            Decimal(1)
            if record["currency"] == "USD"
            else rates[(record["updated_at"].date().isoformat(), record["currency"])]
        )
        expected = (record["limit"] * rate).quantize(Decimal("0.000001"), ROUND_HALF_EVEN)
        assert record["limit_usd"] == expected


def test_chaos_zero_has_no_damage() -> None:
    calm = SimulatorConfig(seed=5)
    for module, entity in ENTITIES:
        truth = compute_truth(calm, module, entity, START, END)
        assert truth["duplicates"] == truth["malformed"] == truth["late"] == []
        assert truth["pulled"] == truth["valid"]


def _wire_keys(module: str, entity: str, field_name: str) -> set[str]:
    spec = MODULE_SPECS[module].entity(entity)
    field = spec.field(field_name)
    if field.kind == "duration":
        return {f"{field.wire_name()}_{suffix}" for suffix in DURATION_SUFFIXES}
    if field.kind == "size":
        return set(field.size_names.values())
    return {field.wire_name(), *field.renames.values()}


def _is_negative(value: object) -> bool:
    return isinstance(value, int | float) and value < 0


@pytest.mark.parametrize(("module", "entity"), UNPARTITIONED)
def test_malformed_duplicate_and_late_records_show_on_the_wire(
    make_client: Callable[..., TestClient], module: str, entity: str
) -> None:
    spec = MODULE_SPECS[module].entity(entity)
    client = make_client(
        seed=5, chaos=0.5, fault_rate=0.0, malformed_rate=0.3, volume=dict.fromkeys(MODULES, 400)
    )
    path = f"/{module}{spec.path}"
    records, _ = pull_pages(client, path, WINDOW, module)
    truth = client.get(f"/{module}/_sim/truth/{entity}", params=WINDOW).json()
    assert len(records) == truth["pulled"]

    def record_id(record: dict[str, Any]) -> str:
        if spec.kind == "series":
            return record.get("event_id") or record["eventId"]
        return record[spec.key[0]]

    by_id: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_id.setdefault(record_id(record), []).append(record)
    for duplicate in truth["duplicates"]:
        copies = by_id[duplicate]
        assert any(a == b for a, b in combinations(copies, 2)), duplicate
    assert truth["malformed"]
    for damage in truth["malformed"]:
        # State ids repeat across snapshots: one of the records with the id must show the damage.
        assert any(_shows(damage, r, module, entity) for r in by_id[damage["id"]]), damage


def _shows(damage: dict[str, str], record: dict[str, Any], module: str, entity: str) -> bool:
    payload = record.get("data", record)
    if damage["field"] == "event_time":
        return record["timestamp"] in BAD_TIMES
    present = _wire_keys(module, entity, damage["field"]) & payload.keys()
    if damage["kind"] == "missing_required":
        return not present
    if len(present) != 1:
        return False
    value = payload[present.pop()]
    if damage["kind"] == "unknown_enum":
        return value == "unexpected_value"
    if damage["kind"] == "negative_number":
        return _is_negative(value)
    if damage["kind"] == "unparseable_number":
        return value in BAD_NUMBERS
    return value in BAD_TIMES


# --- an independent normalizer: the wire must convert back to the truth exactly -----------

DURATION_TO_MS = {
    "ms": Decimal(1),
    "s": Decimal(1000),
    "us": Decimal("0.001"),
    "ns": Decimal("0.000001"),
}
SIZE_TO_BYTES = {
    "response_bytes": 1,
    "response_size_kb": 1000,
    "response_size_kib": 1024,
    "response_size_mb": 1_000_000,
}


def _number(value: object) -> Decimal:
    return Decimal(value) if isinstance(value, str) else Decimal(repr(value))


def _family(payload: dict[str, Any], prefix: str) -> Decimal | None:
    for suffix, factor in DURATION_TO_MS.items():
        if f"{prefix}_{suffix}" in payload:
            return _number(payload[f"{prefix}_{suffix}"]) * factor
    return None


def _rates() -> dict[tuple[str, str], Decimal]:
    rates = {}
    for line in FX_TABLE_PATH.read_text().splitlines()[1:]:
        day, currency, rate = line.split(",")
        rates[(day, currency)] = Decimal(rate)
    return rates


def _utc_day(value: object, zone_is_new_york: bool) -> date:
    if isinstance(value, int | float):
        seconds = value / 1000 if value >= 1e11 else value
        return datetime.fromtimestamp(seconds, tz=UTC).date()
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        from zoneinfo import ZoneInfo

        moment = moment.replace(tzinfo=ZoneInfo("America/New_York") if zone_is_new_york else UTC)
    return moment.astimezone(UTC).date()


def test_wire_values_normalize_to_the_truth_exactly(make_client: Callable[..., TestClient]) -> None:
    client = make_client(seed=9, volume={"observatory": 1500, "costops": 400, "marketplace": 300})
    rates = _rates()
    cent = Decimal("0.000001")

    metrics, _ = pull_pages(
        client, "/observatory/api/v1/metrics", WINDOW, "observatory", limit=10_000
    )
    latency = sum(_family(r["data"], "total_latency") for r in metrics)
    ttft = sum(t for r in metrics if (t := _family(r["data"], "ttft")) is not None)
    size = sum(
        (_number(r["data"][k]) * f).to_integral_value()
        for r in metrics
        for k, f in SIZE_TO_BYTES.items()
        if k in r["data"]
    )
    sums = client.get("/observatory/_sim/truth/metrics", params=WINDOW).json()["sums"]
    assert (
        Decimal(sums["latency_ms"]),
        Decimal(sums["ttft_ms"]),
        Decimal(sums["response_bytes"]),
    ) == (latency, ttft, size)
    tokens = sum(int(_number(r["data"]["input_tokens"])) for r in metrics)
    assert Decimal(sums["input_tokens"]) == tokens

    costs, _ = pull_pages(client, "/costops/api/v1/cost-data", WINDOW, "costops")
    unit_factor = {"USD": 1, "cents": Decimal("0.01"), "micro-USD": Decimal("0.000001")}
    cost_usd = Decimal(0)
    for record in costs:
        data = record["data"]
        unit = data["cost_unit"]
        rate = (
            unit_factor.get(unit) or rates[(_utc_day(data["usage_start"], True).isoformat(), unit)]
        )
        cost_usd += (_number(data["cost"]) * rate).quantize(cent, rounding=ROUND_HALF_EVEN)
    truth = client.get("/costops/_sim/truth/cost-data", params=WINDOW).json()
    assert Decimal(truth["sums"]["cost_usd"]) == cost_usd
    assert truth["counts"]["cost_unit"].keys() == {"USD", "cents", "micro-USD", "EUR", "GBP"}

    revenue, _ = pull_pages(client, "/marketplace/api/v1/revenue", WINDOW, "marketplace")
    amount_usd = Decimal(0)
    for record in revenue:
        data = record["data"]
        amount = _number(data["amount"]) / (100 if data.get("amount_unit") == "minor" else 1)
        rate = (
            Decimal(1)
            if data["currency"] == "USD"
            else rates[(_utc_day(data["period_start"], False).isoformat(), data["currency"])]
        )
        amount_usd += (amount * rate).quantize(cent, rounding=ROUND_HALF_EVEN)
    truth = client.get("/marketplace/_sim/truth/revenue", params=WINDOW).json()
    assert Decimal(truth["sums"]["amount_usd"]) == amount_usd
