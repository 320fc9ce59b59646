"""Every entity of every module, pulled over HTTP from the simulator, equals its ground truth.

These run the land stage (``Pipeline.stage``: ``ingest_window``, the function the land
tasks call) against a real simulator process and a real lake (a local directory here; the
S3 path has its own test). They read the version the stage wrote (``Lake.staged_path``) as
it wrote it: the lake gate, which audits and publishes it, has tests of its own.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest

from analytics_hub.ingest import Manifest
from analytics_hub.lake import Lake, Zone
from analytics_hub.pipeline import Pipeline
from analytics_hub.settings import load_settings
from analytics_hub.sources import MODULES, Entity, Kind, Module
from analytics_hub.windows import Window
from hub_dev.local_hub import simulator_endpoints
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


def ingest(sim: Any, module: Module, entity: Entity, hub: Pipeline, **kw: Any) -> Manifest:
    endpoint = simulator_endpoints(sim.url, [module.name])[module.name]
    with hub.client(module, endpoint) as client:
        return hub.stage(client, entity, kw.pop("window", WINDOW), **kw)


def staged(lake: Lake, manifest: Manifest, zone: Zone = Zone.NORMALIZED) -> pl.DataFrame:
    """One object of the version a pull staged, as ingest wrote it."""
    window = Window.parse(manifest.window_start, manifest.window_end)
    path = lake.staged_path(zone, manifest.module, manifest.entity, window, manifest.version)
    frame = pl.from_arrow(pq.read_table(path, filesystem=lake.fs))
    assert isinstance(frame, pl.DataFrame)
    return frame


def files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def local_hub(root: Path) -> Pipeline:
    """A pipeline on a lake in ``root`` (its gate's history beside it: the stage writes none)."""
    settings = load_settings(lake_url=str(root / "lake"), http_max_backoff_seconds=2.0)
    return Pipeline.from_settings(settings, pseudonym_key=KEY)


@pytest.mark.parametrize(("module", "entity"), WITH_TRUTH, ids=IDS)
def test_clean_window_equals_truth(
    clean_sim: Any, module: Module, entity: Entity, tmp_path: Path
) -> None:
    hub = local_hub(tmp_path)
    lake = hub.lake
    manifest = ingest(clean_sim, module, entity, hub)
    truth = compute_truth(CLEAN, module.name, truth_name(entity), WINDOW.start, WINDOW.end)
    rows = staged(lake, manifest)

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
    hub = local_hub(tmp_path)
    lake = hub.lake
    manifest = ingest(chaos_sim, module, entity, hub)
    truth = compute_truth(CHAOS, module.name, truth_name(entity), WINDOW.start, WINDOW.end)

    assert manifest.balanced
    assert manifest.pulled == truth["pulled"]
    assert manifest.landed == truth["valid"]
    assert manifest.deduplicated == len(truth["duplicates"])
    dead = staged(lake, manifest, Zone.DEADLETTER)
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
    hub = local_hub(tmp_path)
    lake = hub.lake
    manifest = ingest(chaos_sim, module, entity, hub)
    truth = compute_truth(CHAOS, "sentinel", "security-events", WINDOW.start, WINDOW.end)
    rows = staged(lake, manifest)
    late = rows.filter(pl.col("event_time") < pl.col("ingested_at") - timedelta(hours=2))
    assert truth["late"]
    assert set(late["event_id"].to_list()) == set(truth["late"])
    assert (late["event_time"] < WINDOW.start).any()


def test_rerunning_a_window_stages_the_same_state_again(clean_sim: Any, tmp_path: Path) -> None:
    """A re-run writes the same objects, as a version of its own: nothing it wrote before,
    and nothing current (that is the gate's to publish), is touched."""
    module = MODULES["costops"]
    entity = module.entity("cost_records")
    hub = local_hub(tmp_path)
    lake = hub.lake
    first = ingest(clean_sim, module, entity, hub)
    files_before = files(tmp_path)
    second = ingest(clean_sim, module, entity, hub)
    files_after = files(tmp_path)

    assert first.version < second.version
    assert lake.staged_versions(module.name, entity.name, WINDOW) == [first.version, second.version]
    first_dir, second_dir = (
        Path(
            lake.staged_path(Zone.MANIFESTS, module.name, entity.name, WINDOW, v)
        ).parent.relative_to(tmp_path)
        for v in (first.version, second.version)
    )
    assert all(path.is_relative_to(first_dir) for path in files_before)
    assert files_after == sorted(
        [*files_before, *(second_dir / path.relative_to(first_dir) for path in files_before)]
    )
    for zone in (Zone.NORMALIZED, Zone.DEADLETTER):
        assert staged(lake, second, zone).equals(staged(lake, first, zone)), zone
    assert (second.pulled, second.landed) == (first.pulled, first.landed)


def test_adjacent_windows_add_up_to_the_whole(clean_sim: Any, tmp_path: Path) -> None:
    module = MODULES["observatory"]
    entity = module.entity("metrics")
    hub = local_hub(tmp_path)
    lake = hub.lake
    middle = WINDOW.start + timedelta(minutes=45)
    parts = [Window(WINDOW.start, middle), Window(middle, WINDOW.end)]
    manifests = [ingest(clean_sim, module, entity, hub, window=w) for w in parts]
    landed_parts = sum(manifest.landed for manifest in manifests)
    rows = pl.concat([staged(lake, manifest) for manifest in manifests])
    truth = compute_truth(CLEAN, "observatory", "metrics", WINDOW.start, WINDOW.end)
    assert landed_parts == rows.height == truth["valid"]
    assert rows["event_id"].n_unique() == rows.height


def test_paged_and_bulk_pulls_land_the_same_rows(clean_sim: Any, tmp_path: Path) -> None:
    module = MODULES["observatory"]
    entity = module.entity("metrics")
    paged, bulk = local_hub(tmp_path / "paged"), local_hub(tmp_path / "bulk")
    by_page = ingest(clean_sim, module, entity, paged, bulk=False)
    in_bulk = ingest(clean_sim, module, entity, bulk, bulk=True)
    assert (
        staged(paged.lake, by_page)
        .sort("event_id")
        .equals(staged(bulk.lake, in_bulk).sort("event_id"))
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
    hub = local_hub(tmp_path)
    with pytest.raises(ingest_module.BalanceError, match=r"pulled \d+ != landed"):
        ingest(clean_sim, module, entity, hub)
    assert files(tmp_path) == []  # not even a staged version: nothing for a gate to audit
