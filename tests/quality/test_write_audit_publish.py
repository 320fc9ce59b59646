"""Write-audit-publish in the lake: a pull is staged, audited, and only then published.

Windows are pulled from simulator processes into a real lake (a local directory, and
moto's S3 over HTTP), audited by the real gate, loaded into a real PostgreSQL. What is
checked is what an operator relies on: a bad re-pull never costs the window the lake
had, and the warehouse loads only what the gate approved, byte for byte.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest

from analytics_hub import warehouse
from analytics_hub.connectors import Endpoint, ModuleClient
from analytics_hub.lake import Lake, PublishError, Zone
from analytics_hub.pipeline import Pipeline
from analytics_hub.quality.gate import WindowBlockedError
from analytics_hub.settings import HubSettings, load_gate_settings, load_settings
from analytics_hub.sources import MODULES
from analytics_hub.windows import Window
from simulators import SimulatorConfig, SimulatorProcess

pytestmark = pytest.mark.integration

WINDOW = Window(datetime(2026, 11, 25, 10, tzinfo=UTC), datetime(2026, 11, 25, 11, tzinfo=UTC))
OBSERVATORY = MODULES["observatory"]
METRICS = OBSERVATORY.entity("metrics")
VOLUME = {"observatory": 300}
FIRST = SimulatorConfig(seed=31, volume=VOLUME, stall_seconds=0.0)
SECOND = SimulatorConfig(seed=32, volume=VOLUME, stall_seconds=0.0)  # other records
SILENT = SimulatorConfig(seed=31, volume={"observatory": 0})


@pytest.fixture(scope="module")
def first() -> Iterator[Any]:
    with SimulatorProcess(FIRST) as process:
        yield process


@pytest.fixture(scope="module")
def second() -> Iterator[Any]:
    with SimulatorProcess(SECOND) as process:
        yield process


def hub_settings(request: pytest.FixtureRequest, tmp_path: Path) -> HubSettings:
    if request.param == "local":
        return load_settings(lake_url=str(tmp_path / "lake"))
    s3 = request.getfixturevalue("s3_server")
    env = s3.hub_env() | {"HUB_LAKE_URL": f"s3://{s3.bucket}/wap-{tmp_path.name}"}
    return load_settings(**{k.removeprefix("HUB_").lower(): v for k, v in env.items()})


@pytest.fixture(params=["local", "s3"])
def pipeline(request: pytest.FixtureRequest, tmp_path: Path) -> Pipeline:
    gate = load_gate_settings(work_dir=str(tmp_path / "work"))
    return Pipeline.from_settings(hub_settings(request, tmp_path), gate, pseudonym_key=b"k")


@pytest.fixture
def local_pipeline(tmp_path: Path) -> Pipeline:
    gate = load_gate_settings(work_dir=str(tmp_path / "work"))
    settings = load_settings(lake_url=str(tmp_path / "lake"))
    return Pipeline.from_settings(settings, gate, pseudonym_key=b"k")


def land(pipeline: Pipeline, sim: Any) -> Any:
    endpoint = Endpoint(sim.module_url("observatory"), "sim-observatory-token")
    with ModuleClient(OBSERVATORY, endpoint, load_settings(http_max_backoff_seconds=1.0)) as c:
        return pipeline.land(c, METRICS, WINDOW)


def with_history(pipeline: Pipeline, rows: int) -> None:
    """Published manifests of the same hour on past days: what the volume check compares."""
    for day in range(1, METRICS.volume.min_history + 1):
        past = Window(WINDOW.start - timedelta(days=day), WINDOW.end - timedelta(days=day))
        path = pipeline.lake.path(Zone.MANIFESTS, "observatory", "metrics", past)
        pipeline.lake.write_json(path, {"module": "observatory", "landed": rows})


def current(lake: Lake, zone: Zone) -> str:
    return lake.path(zone, "observatory", "metrics", WINDOW)


def manifest(lake: Lake) -> dict[str, Any]:
    return lake.read_json(current(lake, Zone.MANIFESTS))


@pytest.fixture
def conn(new_database: Callable[[str], str]) -> Iterator[psycopg.Connection[Any]]:
    dsn = new_database("wap")
    with psycopg.connect(dsn, autocommit=True) as connection:
        warehouse.ensure_landing_tables(connection)
        yield connection


def test_a_repull_the_gate_blocks_leaves_the_published_window_and_stays_inspectable(
    pipeline: Pipeline, first: Any, conn: psycopg.Connection[Any]
) -> None:
    lake = pipeline.lake
    with_history(pipeline, rows=300)
    published = land(pipeline, first)
    assert published.status == "passed"
    before = manifest(lake)
    assert before["landed"] > 0

    with (
        SimulatorProcess(SILENT) as silent,  # an upstream past its retention: nothing
        pytest.raises(WindowBlockedError, match="volume_collapse") as blocked,
    ):
        land(pipeline, silent)

    assert "current version is unchanged" in str(blocked.value)
    assert manifest(lake) == before
    assert lake.checksum(current(lake, Zone.NORMALIZED)) == before["checksums"]["normalized"]
    assert lake.checksum(current(lake, Zone.RAW)) == before["checksums"]["raw"]
    (kept,) = lake.staged_versions("observatory", "metrics", WINDOW)
    staged = lake.read_json(
        lake.staged_path(Zone.MANIFESTS, "observatory", "metrics", WINDOW, kept)
    )
    assert staged["quality"]["status"] == "blocked" and staged["pulled"] == 0
    with pytest.raises(PublishError, match="blocked"):
        lake.publish("observatory", "metrics", WINDOW, kept)

    loaded = warehouse.load_window(conn, lake, "observatory", "metrics", WINDOW)
    assert loaded.rows == before["landed"]


def test_the_load_refuses_a_window_the_gate_never_approved(
    local_pipeline: Pipeline, first: Any, conn: psycopg.Connection[Any]
) -> None:
    lake = local_pipeline.lake
    endpoint = Endpoint(first.module_url("observatory"), "sim-observatory-token")
    with ModuleClient(OBSERVATORY, endpoint, load_settings()) as client:
        from analytics_hub.ingest import ingest_window

        staged = ingest_window(
            OBSERVATORY,
            METRICS,
            WINDOW,
            client=client,
            lake=lake,
            rates=local_pipeline.rates,
            pseudonym_key=b"k",
        )
    assert staged.landed > 0
    with pytest.raises(warehouse.MissingWindowError):  # staged, never audited
        warehouse.load_window(conn, lake, "observatory", "metrics", WINDOW)

    local_pipeline.audit(OBSERVATORY, METRICS, WINDOW, staged.version)
    path = current(lake, Zone.MANIFESTS)
    approved = lake.read_json(path)
    lake.write_json(path, approved | {"quality": approved["quality"] | {"status": "blocked"}})
    with pytest.raises(warehouse.UnapprovedWindowError, match="verdict is blocked"):
        warehouse.load_window(conn, lake, "observatory", "metrics", WINDOW)

    lake.write_json(path, approved)
    table = pq.read_table(current(lake, Zone.NORMALIZED), filesystem=lake.fs)
    with lake.parquet_writer(current(lake, Zone.NORMALIZED), table.schema) as out:
        out.write_table(table.slice(1))  # an object changed behind the manifest's back
    with pytest.raises(warehouse.UnapprovedWindowError, match="SHA-256"):
        warehouse.load_window(conn, lake, "observatory", "metrics", WINDOW)
    assert conn.execute("select count(*) from landing.observatory__metrics").fetchone() == (0,)


def test_an_interrupted_publish_is_never_loaded_half_way_and_resumes(
    local_pipeline: Pipeline,
    first: Any,
    second: Any,
    conn: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lake = local_pipeline.lake
    land(local_pipeline, first)
    old = manifest(lake)

    moves = 0
    real_move = Lake._move

    def crash_after_two_moves(self: Lake, source: str, target: str) -> None:
        nonlocal moves
        if moves == 2:  # the old normalized object moved away, the new one moved in
            raise OSError("worker killed")
        moves += 1
        real_move(self, source, target)

    monkeypatch.setattr(Lake, "_move", crash_after_two_moves)
    with pytest.raises(OSError, match="worker killed"):
        land(local_pipeline, second)
    monkeypatch.undo()

    assert manifest(lake) == old  # the manifest moves last
    with pytest.raises(warehouse.UnapprovedWindowError, match="not the version the gate"):
        warehouse.load_window(conn, lake, "observatory", "metrics", WINDOW)

    (version,) = lake.staged_versions("observatory", "metrics", WINDOW)
    new = lake.publish("observatory", "metrics", WINDOW, version)  # what a retry does
    assert manifest(lake) == new and new["version"] == version != old["version"]
    assert lake.publish("observatory", "metrics", WINDOW, version) == new  # idempotent
    again = local_pipeline.audit(OBSERVATORY, METRICS, WINDOW, version)  # the gate, rerun
    assert again.status == new["quality"]["status"] and manifest(lake) == new
    loaded = warehouse.load_window(conn, lake, "observatory", "metrics", WINDOW)
    assert loaded.rows == new["landed"]

    replaced = f"{lake.root}/replaced/module=observatory/entity=metrics"
    kept = [i.path for i in lake.fs.get_file_info(_files(replaced)) if i.path.endswith(".json")]
    assert len(kept) == 1 and lake.read_json(kept[0]) == old  # the version it replaced
    lake.keep_replaced = timedelta(0)
    lake.prune("observatory", "metrics", WINDOW)
    assert not [i for i in lake.fs.get_file_info(_files(replaced)) if i.path.endswith(".json")]


def _files(base: str) -> Any:
    import pyarrow.fs as pafs

    return pafs.FileSelector(base, recursive=True, allow_not_found=True)


def test_a_load_waits_for_the_windows_lease(
    local_pipeline: Pipeline, first: Any, conn: psycopg.Connection[Any]
) -> None:
    lake = local_pipeline.lake
    land(local_pipeline, first)
    dsn = conn.info.dsn
    done = threading.Event()
    errors: list[BaseException] = []

    def load() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as other:
                warehouse.load_window(other, lake, "observatory", "metrics", WINDOW)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)
        finally:
            done.set()

    waiting = (
        "select count(*) from pg_locks where locktype = 'advisory' and not granted "
        "and database = (select oid from pg_database where datname = current_database())"
    )
    with warehouse.window_lease(dsn, "observatory", "metrics", WINDOW):
        worker = threading.Thread(target=load)
        worker.start()
        for _ in range(200):
            if conn.execute(waiting).fetchone() == (1,):
                break
            done.wait(0.05)
        assert conn.execute(waiting).fetchone() == (1,), "the load did not wait for the lease"
        assert not done.is_set()
    worker.join(timeout=60)
    assert done.is_set() and not errors, errors
    count = conn.execute("select count(*) from landing.observatory__metrics").fetchone()
    assert count == (manifest(lake)["landed"],)


def test_overlapping_windows_never_count_twice(
    local_pipeline: Pipeline, first: Any, conn: psycopg.Connection[Any]
) -> None:
    lake = local_pipeline.lake
    quarter = Window(WINDOW.start, WINDOW.start + timedelta(minutes=15))
    endpoint = Endpoint(first.module_url("observatory"), "sim-observatory-token")
    with ModuleClient(OBSERVATORY, endpoint, load_settings()) as client:
        local_pipeline.land(client, METRICS, WINDOW)
        local_pipeline.land(client, METRICS, quarter)
    hour = warehouse.load_window(conn, lake, "observatory", "metrics", WINDOW)

    with pytest.raises(warehouse.OverlappingWindowError, match="overlaps the loaded window"):
        warehouse.load_window(conn, lake, "observatory", "metrics", quarter)
    assert warehouse.load_window(conn, lake, "observatory", "metrics", WINDOW).replaced == hour.rows
    count = conn.execute("select count(*) from landing.observatory__metrics").fetchone()
    assert count == (hour.rows,)
    ledger = conn.execute(
        "select lake_version, rows from landing.loaded_windows"
        " where table_name = 'landing.observatory__metrics'"
    ).fetchall()
    assert ledger == [(manifest(lake)["version"], hour.rows)]


def test_the_daily_sweep_deletes_old_versions_and_keeps_the_newest_staged(
    pipeline: Pipeline, first: Any, second: Any
) -> None:
    lake = pipeline.lake
    land(pipeline, first)
    land(pipeline, second)  # replaces the first version
    with SimulatorProcess(SILENT) as silent:  # staged and blocked twice, never published
        with_history(pipeline, rows=300)
        for _ in range(2):
            with pytest.raises(WindowBlockedError):
                land(pipeline, silent)
    published = manifest(lake)
    assert lake.prune_versions() == []  # all younger than HUB_LAKE_KEEP_REPLACED_DAYS

    lake.keep_replaced = timedelta(0)
    would = lake.prune_versions(dry_run=True)
    assert sorted(v.split("/")[-7] for v in would) == ["replaced", "staged"]  # by area
    assert sorted(lake.prune_versions()) == sorted(would)
    assert lake.prune_versions() == []
    # the newest staged version (the blocked one) stays for inspection; current is untouched
    (blocked,) = lake.staged_versions("observatory", "metrics", WINDOW)
    assert blocked > published["version"]
    assert manifest(lake) == published
    assert lake.checksum(current(lake, Zone.NORMALIZED)) == published["checksums"]["normalized"]
