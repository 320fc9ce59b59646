"""Replay: a window's dead letters, after a fix, re-process through the same path and leave.

The "bug" is a normalization rule stricter than the contract: the window is landed with
an entity that does not know one accepted value, so every record carrying it is
dead-lettered. Replayed with the real rule, those records land; only the simulator's
malformed records stay, and the window's totals equal the ground truth.

A replay reads the window's current (published) version and stages a new one; the lake
gate then audits and publishes it, as after a pull. The tests read what the replay staged
(``ReplayResult.version``), and the current version once the gate has published it.
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
from analytics_hub.ingest import ingest_window
from analytics_hub.lake import Lake, Zone
from analytics_hub.pipeline import Pipeline
from analytics_hub.replay import ReplayResult, replay_window
from analytics_hub.settings import load_gate_settings, load_settings
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


@pytest.fixture
def hub(tmp_path: Path) -> Pipeline:
    settings = load_settings(lake_url=str(tmp_path / "lake"))
    gate = load_gate_settings(work_dir=str(tmp_path / "work"))
    return Pipeline.from_settings(settings, gate, pseudonym_key=KEY)


def read(lake: Lake, zone: Zone, version: str | None = None) -> pl.DataFrame:
    """The window's current object of a zone, or that of the staged ``version``."""
    path = (
        lake.path(zone, "policy", "violations", WINDOW)
        if version is None
        else lake.staged_path(zone, "policy", "violations", WINDOW, version)
    )
    frame = pl.from_arrow(pq.read_table(path, filesystem=lake.fs))
    assert isinstance(frame, pl.DataFrame)
    return frame


def manifest_of(lake: Lake, version: str | None = None) -> dict[str, Any]:
    path = (
        lake.path(Zone.MANIFESTS, "policy", "violations", WINDOW)
        if version is None
        else lake.staged_path(Zone.MANIFESTS, "policy", "violations", WINDOW, version)
    )
    return lake.read_json(path)


def stage(hub: Pipeline, sim: Any, entity: Entity) -> str:
    """Pull the window into a staged version, as the ``land_<entity>`` task does."""
    endpoint = Endpoint(sim.module_url("policy"), "sim-policy-token")
    with ModuleClient(POLICY, endpoint, load_settings()) as client:
        manifest = ingest_window(
            POLICY,
            entity,
            WINDOW,
            client=client,
            lake=hub.lake,
            rates=hub.rates,
            pseudonym_key=KEY,
        )
    return manifest.version


def replay(hub: Pipeline) -> ReplayResult:
    return replay_window(
        POLICY, VIOLATIONS, WINDOW, lake=hub.lake, rates=hub.rates, pseudonym_key=KEY
    )


def test_dead_letters_replayed_after_a_fix_land_and_leave_the_store(
    sim: Any, hub: Pipeline
) -> None:
    lake = hub.lake
    strict = without_value(VIOLATIONS, "violation_severity", "high")
    # the deployment with the bug landed the window, and its gate published it
    assert hub.audit(POLICY, VIOLATIONS, WINDOW, stage(hub, sim, strict)).status == "passed"
    truth = compute_truth(CONFIG, "policy", "violations", WINDOW.start, WINDOW.end)
    malformed = sorted(m["id"] for m in truth["malformed"])
    wrongly = truth["counts"]["violation_severity"]["high"]
    assert wrongly > 0
    dead = read(lake, Zone.DEADLETTER).height
    # redelivered copies of a wrongly rejected record are dead-lettered too (ingest drops
    # redeliveries of landed rows only); a replay lands one copy and counts the others
    redelivered = dead - len(malformed) - wrongly
    assert redelivered >= 0
    published = manifest_of(lake)

    result = replay(hub)

    assert (result.landed, result.deduplicated, result.still_dead) == (
        wrongly,
        redelivered,
        len(malformed),
    )
    assert manifest_of(lake) == published  # staged only: the gate has not seen it yet
    assert sorted(read(lake, Zone.DEADLETTER, result.version)["record_id"].to_list()) == malformed
    rows = read(lake, Zone.NORMALIZED, result.version)
    assert rows.height == truth["valid"]
    landed_types = Counter(rows["violation_type"].drop_nulls().to_list())
    assert dict(landed_types) == truth["counts"]["violation_type"]
    manifest = manifest_of(lake, result.version)
    assert manifest["balanced"] and manifest["landed"] == truth["valid"]

    validated = hub.audit(POLICY, VIOLATIONS, WINDOW, result.version)
    assert validated.status == "passed"
    assert manifest_of(lake)["version"] == result.version
    assert read(lake, Zone.NORMALIZED).sort("event_id").equals(rows.sort("event_id"))
    assert sorted(read(lake, Zone.DEADLETTER)["record_id"].to_list()) == malformed

    # a second replay finds only what is still malformed, and changes nothing
    again = replay(hub)
    assert (again.landed, again.still_dead) == (0, len(malformed))
    assert read(lake, Zone.NORMALIZED, again.version).equals(read(lake, Zone.NORMALIZED))


def test_quarantined_rows_replay_through_the_gate_again(sim: Any, hub: Pipeline) -> None:
    lake = hub.lake
    version = stage(hub, sim, VIOLATIONS)
    landed = read(lake, Zone.NORMALIZED, version)
    future = datetime(2026, 12, 1, tzinfo=UTC)
    broken = landed.with_columns(
        pl.when(pl.int_range(pl.len()).is_in([1, 4]))
        .then(pl.lit(future))
        .otherwise(pl.col("event_time"))
        .alias("event_time")
    )
    path = lake.staged_path(Zone.NORMALIZED, "policy", "violations", WINDOW, version)
    with lake.parquet_writer(path, pq.read_schema(path, filesystem=lake.fs)) as out:
        out.write_table(broken.to_arrow().cast(pq.read_schema(path, filesystem=lake.fs)))
    assert hub.audit(POLICY, VIOLATIONS, WINDOW, version).quarantined == 2
    before = read(lake, Zone.DEADLETTER)

    result = replay(hub)
    assert result.landed == 2  # back in the window, exactly as they were quarantined
    back = read(lake, Zone.NORMALIZED, result.version)
    assert back.height == landed.height
    assert back.filter(pl.col("event_time") == future)["event_id"].sort().to_list() == sorted(
        landed["event_id"].gather([1, 4]).to_list()
    )
    # the gate still finds them bad (nothing was fixed): the same rows go back
    assert hub.audit(POLICY, VIOLATIONS, WINDOW, result.version).quarantined == 2
    assert sorted(read(lake, Zone.DEADLETTER)["record_id"].to_list()) == sorted(
        before["record_id"].to_list()
    )
    manifest = manifest_of(lake)
    assert manifest["balanced"] and manifest["version"] == result.version
