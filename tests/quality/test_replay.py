"""Replay: a window's dead letters, after a fix, re-process through the same path and leave.

The "bug" is a normalization rule stricter than the contract: the window is landed with
an entity that does not know one accepted value, so every record carrying it is
dead-lettered. Replayed with the real rule, those records land; only the simulator's
malformed records stay, and the window's totals equal the ground truth.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest

from analytics_hub.connectors import Endpoint, ModuleClient
from analytics_hub.fx import FxRates
from analytics_hub.ingest import ingest_window
from analytics_hub.lake import Lake, Zone
from analytics_hub.quality.config import load_gate_settings, quality_url
from analytics_hub.quality.gate import validate_window
from analytics_hub.quality.store import open_store
from analytics_hub.replay import replay_window
from analytics_hub.settings import load_settings
from analytics_hub.sources import MODULES, Entity
from analytics_hub.windows import Window
from simulators import SimulatorConfig, SimulatorProcess, compute_truth

pytestmark = pytest.mark.integration

WINDOW = Window(datetime(2026, 11, 25, 10, tzinfo=UTC), datetime(2026, 11, 25, 11, tzinfo=UTC))
KEY = b"replay-test-key"
POLICY = MODULES["policy"]
VIOLATIONS = POLICY.entity("violations")
CONFIG = SimulatorConfig(
    seed=12, chaos=0.3, fault_rate=0.0, stall_seconds=0.0, volume={"policy": 1000}
)


def without_value(entity: Entity, field_name: str, value: str) -> Entity:
    """The entity with a rule that wrongly rejects one of the contract's values."""
    fields = tuple(
        dataclasses.replace(f, values=tuple(v for v in f.values if v != value))
        if f.name == field_name
        else f
        for f in entity.fields
    )
    return dataclasses.replace(entity, fields=fields)


@pytest.fixture(scope="module")
def sim() -> Iterator[Any]:
    with SimulatorProcess(CONFIG) as process:
        yield process


def read(lake: Lake, zone: Zone) -> pl.DataFrame:
    path = lake.path(zone, "policy", "violations", WINDOW)
    frame = pl.from_arrow(pq.read_table(path, filesystem=lake.fs))
    assert isinstance(frame, pl.DataFrame)
    return frame


def test_dead_letters_replayed_after_a_fix_land_and_leave_the_store(
    sim: Any, tmp_path: Path
) -> None:
    settings = load_settings(lake_url=str(tmp_path / "lake"))
    lake = Lake.from_settings(settings)
    strict = without_value(VIOLATIONS, "violation_severity", "high")
    endpoint = Endpoint(sim.module_url("policy"), "sim-policy-token")
    with ModuleClient(POLICY, endpoint, settings) as client:
        ingest_window(
            POLICY,
            strict,
            WINDOW,
            client=client,
            lake=lake,
            rates=FxRates.load(),
            pseudonym_key=KEY,
        )
    truth = compute_truth(CONFIG, "policy", "violations", WINDOW.start, WINDOW.end)
    malformed = sorted(m["id"] for m in truth["malformed"])
    wrongly = truth["counts"]["violation_severity"]["high"]
    assert wrongly > 0
    dead = read(lake, Zone.DEADLETTER).height
    # redelivered copies of a wrongly rejected record are dead-lettered too (ingest drops
    # redeliveries of landed rows only); a replay lands one copy and counts the others
    redelivered = dead - len(malformed) - wrongly
    assert redelivered >= 0

    result = replay_window(
        POLICY, VIOLATIONS, WINDOW, lake=lake, rates=FxRates.load(), pseudonym_key=KEY
    )

    assert (result.landed, result.deduplicated, result.still_dead) == (
        wrongly,
        redelivered,
        len(malformed),
    )
    assert sorted(read(lake, Zone.DEADLETTER)["record_id"].to_list()) == malformed
    rows = read(lake, Zone.NORMALIZED)
    assert rows.height == truth["valid"]
    landed_types = Counter(rows["violation_type"].drop_nulls().to_list())
    assert dict(landed_types) == truth["counts"]["violation_type"]
    manifest = lake.read_json(lake.path(Zone.MANIFESTS, "policy", "violations", WINDOW))
    assert manifest["balanced"] and manifest["landed"] == truth["valid"]

    gate = load_gate_settings()
    store = open_store(quality_url(settings, gate), settings, str(tmp_path / "work"))
    validated = validate_window(POLICY, VIOLATIONS, WINDOW, lake=lake, store=store, settings=gate)
    assert validated.status == "passed"

    # a second replay finds only what is still malformed, and changes nothing
    again = replay_window(
        POLICY, VIOLATIONS, WINDOW, lake=lake, rates=FxRates.load(), pseudonym_key=KEY
    )
    assert (again.landed, again.still_dead) == (0, len(malformed))
    assert read(lake, Zone.NORMALIZED).height == truth["valid"]


def test_quarantined_rows_replay_through_the_gate_again(sim: Any, tmp_path: Path) -> None:
    settings = load_settings(lake_url=str(tmp_path / "lake"))
    lake = Lake.from_settings(settings)
    endpoint = Endpoint(sim.module_url("policy"), "sim-policy-token")
    with ModuleClient(POLICY, endpoint, settings) as client:
        ingest_window(
            POLICY,
            VIOLATIONS,
            WINDOW,
            client=client,
            lake=lake,
            rates=FxRates.load(),
            pseudonym_key=KEY,
        )
    landed = read(lake, Zone.NORMALIZED)
    future = datetime(2026, 12, 1, tzinfo=UTC)
    broken = landed.with_columns(
        pl.when(pl.int_range(pl.len()).is_in([1, 4]))
        .then(pl.lit(future))
        .otherwise(pl.col("event_time"))
        .alias("event_time")
    )
    path = lake.path(Zone.NORMALIZED, "policy", "violations", WINDOW)
    with lake.parquet_writer(path, pq.read_schema(path, filesystem=lake.fs)) as out:
        out.write_table(broken.to_arrow().cast(pq.read_schema(path, filesystem=lake.fs)))
    gate = load_gate_settings()
    store = open_store(quality_url(settings, gate), settings, str(tmp_path / "work"))
    assert (
        validate_window(
            POLICY, VIOLATIONS, WINDOW, lake=lake, store=store, settings=gate
        ).quarantined
        == 2
    )
    before = read(lake, Zone.DEADLETTER)

    result = replay_window(
        POLICY, VIOLATIONS, WINDOW, lake=lake, rates=FxRates.load(), pseudonym_key=KEY
    )
    assert result.landed == 2  # back in the window, exactly as they were quarantined
    back = read(lake, Zone.NORMALIZED)
    assert back.height == landed.height
    assert back.filter(pl.col("event_time") == future)["event_id"].sort().to_list() == sorted(
        landed["event_id"].gather([1, 4]).to_list()
    )
    # the gate still finds them bad (nothing was fixed): the same rows go back
    assert (
        validate_window(
            POLICY, VIOLATIONS, WINDOW, lake=lake, store=store, settings=gate
        ).quarantined
        == 2
    )
    assert sorted(read(lake, Zone.DEADLETTER)["record_id"].to_list()) == sorted(
        before["record_id"].to_list()
    )
    manifest = lake.read_json(lake.path(Zone.MANIFESTS, "policy", "violations", WINDOW))
    assert manifest["balanced"]
