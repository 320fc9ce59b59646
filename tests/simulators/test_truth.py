"""Ground truth: additive over windows, consistent with the wire, exact after normalization."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import orjson
import pytest
from simulator_helpers import WINDOW, pull_pages
from starlette.testclient import TestClient
from wire_reader import DEFAULTS, OPEN_VOCABULARIES, REQUIRED, read

from simulators import MODULES, SimulatorConfig, compute_records, compute_truth
from simulators.fx import FX_TABLE_PATH
from simulators.specs import MODULE_SPECS

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
        default = DEFAULTS.get(name)
        if default is not None:  # counted where sent; a record has it (the default) anyway
            expected = {
                **expected,
                default: len(records) - sum(n for value, n in expected.items() if value != default),
            }
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


def test_only_required_fields_go_missing_and_only_closed_enums_get_unknown_values() -> None:
    """The chaos kinds follow the hub's field policy (not the simulator's own spec)."""
    kinds: Counter[str] = Counter()
    for module, entity in ENTITIES:
        truth = compute_truth(CHAOTIC, module, entity, START, END)
        for damage in truth["malformed"]:
            kinds[damage["kind"]] += 1
            if damage["kind"] == "missing_required":
                assert damage["field"] in REQUIRED[(module, entity)], (module, damage)
            if damage["kind"] == "unknown_enum":
                assert damage["field"] not in OPEN_VOCABULARIES, (module, damage)
    assert set(kinds) == {
        "missing_required",
        "unknown_enum",
        "negative_number",
        "unparseable_number",
        "unparseable_time",
    }


# --- the wire, read as a correct hub reads it, is the truth ---------------------------------


def pull_entity(
    client: TestClient, module: str, entity: str, window: dict[str, str]
) -> list[tuple[dict[str, Any], str | None]]:
    """Every wire record of the window, with the fan-out parent's id where there is one."""
    spec = MODULE_SPECS[module].entity(entity)
    if spec.partition is None:
        return [(r, None) for r in pull_pages(client, f"/{module}{spec.path}", window, module)[0]]
    listing = pull_pages(client, "/marketplace/api/v1/extensions", {}, module)[0]
    pulled = []
    for extension in sorted(r.get("extension_id") or r["extensionId"] for r in listing):
        path = f"/{module}/api/v1/extensions/{extension}/usage"
        pulled += [(r, extension) for r in pull_pages(client, path, window, module)[0]]
    return pulled


def record_key(spec_kind: str, record: dict[str, Any], id_field: str) -> Any:
    return record["event_id"] if spec_kind == "series" else (record[id_field], record["updated_at"])


@pytest.mark.parametrize("chaos", [0.0, 0.5], ids=["calm", "chaos"])
@pytest.mark.parametrize(("module", "entity"), ENTITIES)
def test_the_wire_read_back_is_exactly_the_truth(
    make_client: Callable[..., TestClient], module: str, entity: str, chaos: float
) -> None:
    """Read back as the hub's field policy says (any casing, tags, fan-out path, every time
    spelling), the wire is the truth: the same faults in the same records, the same
    duplicates, and the valid records equal `compute_records`, value for value."""
    overrides: dict[str, Any] = {
        "seed": 9,
        "chaos": chaos,
        "fault_rate": 0.0,
        "volume": dict.fromkeys(MODULES, 300),
    }
    config = SimulatorConfig(**overrides)
    client = make_client(**overrides)
    spec = MODULE_SPECS[module].entity(entity)
    pulled = pull_entity(client, module, entity, WINDOW)
    truth = compute_truth(config, module, entity, START, END)
    assert len(pulled) == truth["pulled"] > 0

    def wire_id(record: dict[str, Any]) -> str:
        if spec.kind == "series":
            return str(record.get("event_id") or record["eventId"])
        return str(record.get(spec.key[0]) or record[_camel(spec.key[0])])

    faults: set[tuple[str, str]] = set()
    valid: dict[Any, dict[str, Any]] = {}
    seen: dict[bytes, int] = {}
    copies: list[str] = []
    for record, parent in pulled:
        raw = orjson.dumps(record)
        if raw in seen:  # an exact copy: a redelivery
            copies.append(wire_id(record))
            continue
        seen[raw] = 1
        values, found = read(module, entity, record, parent)
        faults |= {(wire_id(record), fault) for fault in found}
        if not found:
            key = record_key(spec.kind, values, spec.key[0])
            assert key not in valid, key
            valid[key] = values
    assert faults == {(m["id"], f"{m['kind']}:{m['field']}") for m in truth["malformed"]}
    assert sorted(copies) == sorted(truth["duplicates"])
    expected = {
        record_key(spec.kind, r, spec.key[0]): r
        for r in compute_records(config, module, entity, START, END)
    }
    assert valid.keys() == expected.keys()
    for key, record in expected.items():
        assert valid[key] == record, key
    if chaos:
        assert truth["malformed"] or not truth["valid"]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _rates() -> dict[tuple[str, str], Decimal]:
    rates = {}
    for line in FX_TABLE_PATH.read_text().splitlines()[1:]:
        day, currency, rate = line.split(",")
        rates[(day, currency)] = Decimal(rate)
    return rates
