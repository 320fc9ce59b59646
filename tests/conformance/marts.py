"""What the marts must hold after one window of a world, computed from its canonical records.

The contract's delivery semantics, applied to the rows the lake must hold: a redelivered
violation (same ``violation_id``, new event id) counts once; a corrected cost record counts
at its latest ``record_version``; registry assets are a type-2 history in which every
observation (a listing of ``/assets`` at its ``updated_at``, an event that carries the
asset's name, category or owner at its time) is a state, a field an observation does not
carry keeping its previous value.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from conformance.contract import entity
from conformance.worlds import World

ZERO = Decimal(0)


def lake_rows(world: World, module: str, name: str, key: str) -> list[dict[str, Any]]:
    return world.expectation(entity(module, name), key).rows


def _sum(values: Iterable[Any]) -> Any:
    present = [v for v in values if v is not None]
    return sum(present, start=type(present[0])(0)) if present else None


def expected_marts(world: World, key: str) -> dict[str, Any]:
    requests = lake_rows(world, "observatory", "metrics", key)
    costs = lake_rows(world, "costops", "cost_records", key)
    violations = lake_rows(world, "policy", "violations", key)
    evaluations = lake_rows(world, "policy", "evaluations", key)
    threats = lake_rows(world, "sentinel", "security_events", key)
    revenue = lake_rows(world, "marketplace", "revenue", key)
    usage = lake_rows(world, "marketplace", "usage", key)

    latest: dict[str, dict[str, Any]] = {}
    for row in costs:
        held = latest.get(row["cost_record_id"])
        if held is None or row["record_version"] > held["record_version"]:
            latest[row["cost_record_id"]] = row

    def grouped(rows: list[dict[str, Any]], by: str, measure: str | None = None) -> dict[Any, Any]:
        groups: dict[Any, list[dict[str, Any]]] = {}
        for row in rows:
            groups.setdefault(row[by], []).append(row)
        if measure is None:
            return {k: len(v) for k, v in groups.items()}
        return {k: (len(v), _sum(r[measure] for r in v)) for k, v in groups.items()}

    compliance: dict[Any, tuple[int, int]] = {}
    for row in evaluations:
        total, compliant = compliance.get(row["policy_id"], (0, 0))
        compliance[row["policy_id"]] = (total + 1, compliant + (row["result"] == "compliant"))
    return {
        "requests by model": {
            k: (n, float(s)) for k, (n, s) in grouped(requests, "model_id", "latency_ms").items()
        },
        "costs by account": grouped(list(latest.values()), "account_id", "cost_usd"),
        "violations": sorted({row["violation_id"] for row in violations}),
        "evaluations by policy and result": dict(
            Counter((row["policy_id"], row["result"]) for row in evaluations)
        ),
        "compliance by policy": compliance,
        "security events by threat level": grouped(threats, "threat_level"),
        "revenue by extension": {
            k: s for k, (_, s) in grouped(revenue, "extension_id", "amount_usd").items()
        },
        "usage by extension": grouped(usage, "extension_id", "invocations"),
        "registry events": len(lake_rows(world, "registry", "events", key)),
        "audit entries": len(lake_rows(world, "policy", "audit", key)),
        "asset states": asset_states(world, key),
    }


def asset_states(world: World, key: str) -> set[tuple[Any, ...]]:
    """(asset_id, valid_from, asset_name, category, owner) of every state of every asset."""
    observations: dict[tuple[str, Any], tuple[int, dict[str, Any]]] = {}
    for row in lake_rows(world, "registry", "assets", key):
        observations[(row["asset_id"], row["updated_at"])] = (0, row)
    for row in lake_rows(world, "registry", "events", key):
        if all(row.get(c) is None for c in ("asset_name", "category", "owner")):
            continue
        at = (row["asset_id"], row["event_time"])
        if at not in observations:  # a listing wins over an event at the same time
            observations[at] = (1, {**row, "tags": None, "created_at": None})
    columns = ("asset_name", "category", "owner", "tags", "created_at")
    states: set[tuple[Any, ...]] = set()
    current: dict[str, tuple[Any, ...]] = {}
    for (asset_id, at), (_, row) in sorted(
        observations.items(), key=lambda item: (item[0][0], item[0][1])
    ):
        before = current.get(asset_id)
        state = tuple(
            row.get(c) if row.get(c) is not None else (before[i] if before else None)
            for i, c in enumerate(columns)
        )
        if state != before:
            states.add((asset_id, at, *state[:3]))
        current[asset_id] = state
    return states
