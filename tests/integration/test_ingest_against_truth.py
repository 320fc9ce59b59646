"""Every entity of every module, pulled over HTTP from the simulator, equals its ground truth.

These run the stage function the DAG tasks call (``ingest_window``) against a real
simulator process and a real lake (a local directory here; the S3 path has its own test).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from analytics_hub.connectors import Endpoint, ModuleClient
from analytics_hub.fx import FxRates
from analytics_hub.ingest import Manifest, ingest_window
from analytics_hub.lake import Lake, Zone
from analytics_hub.settings import load_settings
from analytics_hub.sources import MODULES, Entity, Kind, Module
from analytics_hub.windows import Window
from simulators import SimulatorConfig, SimulatorProcess, compute_truth

WINDOW = Window(datetime(2026, 11, 25, 10, tzinfo=UTC), datetime(2026, 11, 25, 12, tzinfo=UTC))
KEY = b"integration-test-key"
WITH_TRUTH = [
    (module, entity)
    for module in MODULES.values()
    for entity in module.entities
    if entity.name != "versions"  # the simulator keeps no truth for asset versions
]
IDS = [f"{m.name}.{e.name}" for m, e in WITH_TRUTH]
CLEAN = SimulatorConfig(seed=5, chaos=0.0)
CHAOS = SimulatorConfig(seed=5, chaos=0.5, stall_seconds=0.2, volume={"observatory": 400})


@pytest.fixture(scope="module")
def clean_sim() -> Any:
    with SimulatorProcess(CLEAN) as sim:
        yield sim


@pytest.fixture(scope="module")
def chaos_sim() -> Any:
    with SimulatorProcess(CHAOS) as sim:
        yield sim


def truth_name(entity: Entity) -> str:
    return entity.path.rstrip("/").rsplit("/", 1)[1]


def ingest(sim: Any, module: Module, entity: Entity, lake: Lake, **kw: Any) -> Manifest:
    settings = load_settings(http_max_backoff_seconds=2.0)
    endpoint = Endpoint(sim.module_url(module.name), f"sim-{module.name}-token")
    with ModuleClient(module, endpoint, settings) as client:
        return ingest_window(
            module,
            entity,
            kw.pop("window", WINDOW),
            client=client,
            lake=lake,
            rates=FxRates.load(),
            pseudonym_key=KEY,
            **kw,
        )


def landed(lake: Lake, module: Module, entity: Entity) -> pl.DataFrame:
    return pl.from_arrow(lake.read(Zone.NORMALIZED, module.name, entity.name))  # type: ignore[return-value]


def local_lake(tmp_path: Path) -> Lake:
    return Lake.from_settings(load_settings(lake_url=str(tmp_path / "lake")))


@pytest.mark.parametrize(("module", "entity"), WITH_TRUTH, ids=IDS)
def test_clean_window_equals_truth(
    clean_sim: Any, module: Module, entity: Entity, tmp_path: Path
) -> None:
    lake = local_lake(tmp_path)
    manifest = ingest(clean_sim, module, entity, lake)
    truth = compute_truth(CLEAN, module.name, truth_name(entity), WINDOW.start, WINDOW.end)
    rows = landed(lake, module, entity)

    assert truth["valid"] > 0
    assert (manifest.pulled, manifest.landed, manifest.dead_lettered, manifest.deduplicated) == (
        truth["pulled"],
        truth["valid"],
        0,
        0,
    )
    assert rows.height == truth["valid"]
    assert rows.select(entity.key).is_duplicated().sum() == 0

    defaults = {f.name: f.default for f in entity.all_fields if f.default is not None}
    for field, expected in truth["counts"].items():
        actual = Counter(rows[field].drop_nulls().to_list())
        if field in defaults:  # the hub fills the contract's default where it is absent
            expected = {
                **expected,
                defaults[field]: rows.height
                - sum(n for value, n in expected.items() if value != defaults[field]),
            }
        assert dict(actual) == expected, field
    kinds = {f.name: f.kind for f in entity.all_fields}
    for field, expected in truth["sums"].items():
        column = rows[field].drop_nulls()
        if kinds.get(field) in (Kind.FLOAT, Kind.DURATION_MS):
            assert column.sum() == pytest.approx(float(expected), rel=1e-12, abs=1e-9), field
        else:
            assert Decimal(str(column.sum())) == Decimal(expected), field


@pytest.mark.parametrize(("module", "entity"), WITH_TRUTH, ids=IDS)
def test_chaos_balances_and_dead_letters_every_malformed_record(
    chaos_sim: Any, module: Module, entity: Entity, tmp_path: Path
) -> None:
    lake = local_lake(tmp_path)
    manifest = ingest(chaos_sim, module, entity, lake)
    truth = compute_truth(CHAOS, module.name, truth_name(entity), WINDOW.start, WINDOW.end)

    assert manifest.balanced
    assert manifest.pulled == truth["pulled"]
    assert manifest.landed == truth["valid"]
    assert manifest.deduplicated == len(truth["duplicates"])
    dead = pl.from_arrow(lake.read(Zone.DEADLETTER, module.name, entity.name))
    assert isinstance(dead, pl.DataFrame)
    expected = {(m["id"], f"{m['kind']}:{m['field']}") for m in truth["malformed"]}
    found = {
        (record_id, code)
        for record_id, reason in dead.select("record_id", "reason").iter_rows()
        for code in reason.split(";")
    }
    assert {record_id for record_id, _ in expected} == set(dead["record_id"].to_list())
    assert expected <= found
    assert dead["raw_record"].str.contains(r"^\{").all()
    assert dead.height == manifest.dead_lettered == len(truth["malformed"])


def test_late_records_keep_their_true_event_time(chaos_sim: Any, tmp_path: Path) -> None:
    module = MODULES["sentinel"]
    entity = module.entity("security_events")
    lake = local_lake(tmp_path)
    ingest(chaos_sim, module, entity, lake)
    truth = compute_truth(CHAOS, "sentinel", "security-events", WINDOW.start, WINDOW.end)
    rows = landed(lake, module, entity)
    late = rows.filter(pl.col("event_time") < pl.col("ingested_at") - timedelta(hours=2))
    assert truth["late"]
    assert set(late["event_id"].to_list()) == set(truth["late"])
    assert (late["event_time"] < WINDOW.start).any()


def test_rerunning_a_window_leaves_the_same_state(clean_sim: Any, tmp_path: Path) -> None:
    module = MODULES["costops"]
    entity = module.entity("cost_records")
    lake = local_lake(tmp_path)
    first = ingest(clean_sim, module, entity, lake)
    before = landed(lake, module, entity)
    files_before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    second = ingest(clean_sim, module, entity, lake)
    files_after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())

    assert files_after == files_before
    assert landed(lake, module, entity).equals(before)
    assert (second.pulled, second.landed) == (first.pulled, first.landed)


def test_adjacent_windows_add_up_to_the_whole(clean_sim: Any, tmp_path: Path) -> None:
    module = MODULES["observatory"]
    entity = module.entity("metrics")
    lake = local_lake(tmp_path)
    middle = WINDOW.start + timedelta(minutes=45)
    parts = [Window(WINDOW.start, middle), Window(middle, WINDOW.end)]
    landed_parts = sum(ingest(clean_sim, module, entity, lake, window=w).landed for w in parts)
    rows = landed(lake, module, entity)
    truth = compute_truth(CLEAN, "observatory", "metrics", WINDOW.start, WINDOW.end)
    assert landed_parts == rows.height == truth["valid"]
    assert rows["event_id"].n_unique() == rows.height


def test_paged_and_bulk_pulls_land_the_same_rows(clean_sim: Any, tmp_path: Path) -> None:
    module = MODULES["observatory"]
    entity = module.entity("metrics")
    paged, bulk = local_lake(tmp_path / "paged"), local_lake(tmp_path / "bulk")
    ingest(clean_sim, module, entity, paged, bulk=False)
    ingest(clean_sim, module, entity, bulk, bulk=True)
    assert (
        landed(paged, module, entity)
        .sort("event_id")
        .equals(landed(bulk, module, entity).sort("event_id"))
    )


def test_an_unbalanced_batch_fails_loudly_and_publishes_nothing(
    clean_sim: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If a record went missing between pull and land, the window must not look complete."""
    import analytics_hub.ingest as ingest_module

    real_normalize = ingest_module.normalize

    def losing_one_row(*args: Any, **kwargs: Any) -> Any:
        result = real_normalize(*args, **kwargs)
        return type(result)(rows=result.rows.slice(1), rejects=result.rejects)

    monkeypatch.setattr(ingest_module, "normalize", losing_one_row)
    module = MODULES["policy"]
    entity = module.entity("violations")
    lake = local_lake(tmp_path)
    with pytest.raises(ingest_module.BalanceError, match=r"pulled \d+ != landed"):
        ingest(clean_sim, module, entity, lake)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
