"""The lake gate against real windows: pulled from the simulator, landed in a real lake.

Each test stages a window with the DAG's stage function (``ingest_window``), then runs the
gate the ``validate_<entity>`` task runs, which audits that staged version and publishes it
as the window's current one if it approves it. Bad rows the simulator cannot produce (its
malformed records never get past normalization) are injected into the staged object, and
the test knows exactly which ids it broke; what the gate left is read from the current
version (published) or, for a blocked version, from the staged one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import great_expectations.expectations as gxe
import orjson
import polars as pl
import pyarrow.parquet as pq
import pytest

from analytics_hub.connectors import Endpoint, ModuleClient
from analytics_hub.ingest import Manifest, ingest_window
from analytics_hub.lake import Lake, Zone
from analytics_hub.pipeline import Pipeline
from analytics_hub.quality.gate import GateResult, WindowBlockedError
from analytics_hub.quality.store import QualityStore
from analytics_hub.quality.suites import SANE_MAXIMUM, WINDOW_TIMES, expectations
from analytics_hub.settings import GateSettings, HubSettings, load_gate_settings, load_settings
from analytics_hub.sources import MODULES, Entity, Kind, Module
from analytics_hub.windows import Window
from hub_dev.airflow_env import WAREHOUSE_CONN_ENV, warehouse_connection_env
from hub_dev.postgres import PrivatePostgres
from simulators import SimulatorConfig, SimulatorProcess, compute_truth

pytestmark = pytest.mark.integration

WINDOW = Window(datetime(2026, 11, 25, 10, tzinfo=UTC), datetime(2026, 11, 25, 11, tzinfo=UTC))
KEY = b"quality-test-key"
OBSERVATORY = MODULES["observatory"]
METRICS = OBSERVATORY.entity("metrics")
SENTINEL = MODULES["sentinel"]
SECURITY = SENTINEL.entity("security_events")
POLICY = MODULES["policy"]
VIOLATIONS = POLICY.entity("violations")
CONFIG = SimulatorConfig(
    seed=11,
    chaos=0.3,
    fault_rate=0.0,
    stall_seconds=0.0,
    volume={"observatory": 400, "sentinel": 200, "policy": 1000},
)
SILENT = SimulatorConfig(seed=11, volume={"observatory": 0, "sentinel": 0})


@pytest.fixture(scope="module")
def sim() -> Iterator[Any]:
    with SimulatorProcess(CONFIG) as process:
        yield process


class Hub:
    """A lake, its quality store and the gate's settings, for one test."""

    def __init__(self, settings: HubSettings, gate: GateSettings):
        self.pipeline = Pipeline.from_settings(settings, gate, pseudonym_key=KEY)
        self.lake: Lake = self.pipeline.lake
        self.store: QualityStore = self.pipeline.store

    def land(self, sim: Any, module: Module, entity: Entity, window: Window = WINDOW) -> Manifest:
        """Stage the window, as the ``land_<entity>`` task does: not audited yet."""
        endpoint = Endpoint(sim.module_url(module.name), f"sim-{module.name}-token")
        with ModuleClient(module, endpoint, load_settings(http_max_backoff_seconds=1.0)) as c:
            return ingest_window(
                module,
                entity,
                window,
                client=c,
                lake=self.lake,
                rates=self.pipeline.rates,
                pseudonym_key=KEY,
            )

    def validate(self, module: Module, entity: Entity, window: Window = WINDOW) -> GateResult:
        """Audit the newest staged version, and publish it if approved."""
        return self.pipeline.audit(module, entity, window)

    def path(self, zone: Zone, module: Module, entity: Entity, *, staged: bool = False) -> str:
        """The current object of a zone, or (``staged``) the newest staged version's."""
        if not staged:
            return self.lake.path(zone, module.name, entity.name, WINDOW)
        newest = self.lake.staged_versions(module.name, entity.name, WINDOW)[-1]
        return self.lake.staged_path(zone, module.name, entity.name, WINDOW, newest)

    def frame(
        self, zone: Zone, module: Module, entity: Entity, *, staged: bool = False
    ) -> pl.DataFrame:
        path = self.path(zone, module, entity, staged=staged)
        frame = pl.from_arrow(pq.read_table(path, filesystem=self.lake.fs))
        assert isinstance(frame, pl.DataFrame)
        return frame

    def manifest(self, module: Module, entity: Entity, *, staged: bool = False) -> dict[str, Any]:
        return self.lake.read_json(self.path(Zone.MANIFESTS, module, entity, staged=staged))

    def published(self, module: Module, entity: Entity) -> bool:
        return self.lake.exists(self.path(Zone.MANIFESTS, module, entity))

    def rewrite(self, module: Module, entity: Entity, frame: pl.DataFrame) -> None:
        """Replace the staged normalized object (what a faulty stage would have written)."""
        path = self.path(Zone.NORMALIZED, module, entity, staged=True)
        schema = pq.read_schema(path, filesystem=self.lake.fs)
        with self.lake.parquet_writer(path, schema) as out:
            out.write_table(frame.to_arrow().cast(schema))

    def drift(self, module: Module, entity: Entity, column: str) -> None:
        """Drop a column from the staged normalized object: schema drift."""
        path = self.path(Zone.NORMALIZED, module, entity, staged=True)
        drifted = pq.read_table(path, filesystem=self.lake.fs).drop_columns([column])
        with self.lake.parquet_writer(path, drifted.schema) as out:
            out.write_table(drifted)


def local_hub(tmp_path: Path, **gate: Any) -> Hub:
    settings = load_settings(lake_url=str(tmp_path / "lake"))
    return Hub(settings, load_gate_settings(work_dir=str(tmp_path / "work"), **gate))


@pytest.fixture
def hub(tmp_path: Path) -> Hub:
    return local_hub(tmp_path)


def corrupt(frame: pl.DataFrame, column: str, rows: list[int], value: Any) -> pl.DataFrame:
    index = pl.int_range(pl.len())
    return frame.with_columns(
        pl.when(index.is_in(rows)).then(pl.lit(value)).otherwise(pl.col(column)).alias(column)
    )


def test_a_chaotic_window_passes_and_its_dead_letters_are_the_simulators_malformed(
    sim: Any, hub: Hub
) -> None:
    landed = hub.land(sim, POLICY, VIOLATIONS)
    result = hub.validate(POLICY, VIOLATIONS)

    truth = compute_truth(CONFIG, "policy", "violations", WINDOW.start, WINDOW.end)
    assert truth["malformed"] and truth["late"] and truth["duplicates"]
    # late records (up to 48 h) are within the allowance; duplicates were dropped by ingest
    assert result.status == "passed", result.to_dict()
    dead = hub.frame(Zone.DEADLETTER, POLICY, VIOLATIONS)
    assert sorted(dead["record_id"].to_list()) == sorted(m["id"] for m in truth["malformed"])
    manifest = hub.manifest(POLICY, VIOLATIONS)
    assert manifest["balanced"] and manifest["landed"] == truth["valid"]
    assert manifest["quality"]["status"] == "passed"
    assert manifest["version"] == landed.version  # the staged version, now the current one

    history = hub.store.history().to_table().to_pylist()
    assert {row["expectation"] for row in history} >= {"balance", "volume_collapse", "volume_drop"}
    assert all(row["success"] for row in history)
    assert {(row["module"], row["entity"]) for row in history} == {("policy", "violations")}
    index = Path(hub.store.docs_index)
    assert index.is_file() and "lake.policy.violations" in index.read_text()


def test_row_failures_quarantine_exactly_the_bad_rows(
    sim: Any, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert OBSERVATORY.delivery == "at-most-once"  # ingest keeps its repeated keys
    hub.land(sim, OBSERVATORY, METRICS)
    landed = hub.frame(Zone.NORMALIZED, OBSERVATORY, METRICS, staged=True)
    before = hub.manifest(OBSERVATORY, METRICS, staged=True)
    ids = landed["event_id"].to_list()
    broken = (
        corrupt(landed, "ingested_at", [3, 17], WINDOW.start - timedelta(hours=1))  # not pulled
        .pipe(corrupt, "event_time", [8], datetime(2026, 11, 26, tzinfo=UTC))  # the future
        .pipe(corrupt, "event_id", [21], ids[22])  # a key seen twice: both copies go
    )
    hub.rewrite(OBSERVATORY, METRICS, broken)

    class WorkerDiedError(Exception):
        pass

    def dies(*args: Any) -> None:
        raise WorkerDiedError

    # The worker dies between the audit and the publish; Airflow runs the gate again.
    with monkeypatch.context() as patch:
        patch.setattr(hub.lake, "publish", dies)
        with pytest.raises(WorkerDiedError):
            hub.validate(OBSERVATORY, METRICS)
    assert not hub.published(OBSERVATORY, METRICS)
    result = hub.manifest(OBSERVATORY, METRICS, staged=True)["quality"]

    bad = [ids[3], ids[17], ids[8], ids[22], ids[22]]
    assert result["status"] == "quarantined"
    assert result["quarantined"] == len(bad)

    # the re-run finishes the publish of the audited version: it does not audit it again,
    # so no dead letter is written twice and the verdict stays the one it got
    again = hub.validate(OBSERVATORY, METRICS)
    assert (again.status, again.quarantined) == ("quarantined", len(bad))
    assert hub.published(OBSERVATORY, METRICS)

    dead = hub.frame(Zone.DEADLETTER, OBSERVATORY, METRICS)
    gate_letters = dead.filter(pl.col("reason_code").str.starts_with("expectation:"))
    assert sorted(gate_letters["record_id"].to_list()) == sorted(bad)
    reasons = dict(gate_letters.select("record_id", "reason").iter_rows())
    assert reasons[ids[3]] == "expectation:expect_column_values_to_be_between:ingested_at"
    assert reasons[ids[8]] == "expectation:expect_column_values_to_be_between:event_time"
    assert reasons[ids[22]] == "expectation:expect_column_values_to_be_unique:event_id"
    kept = hub.frame(Zone.NORMALIZED, OBSERVATORY, METRICS)
    assert kept.height == landed.height - len(bad)
    assert not set(bad) & set(kept["event_id"].to_list())

    manifest = hub.manifest(OBSERVATORY, METRICS)
    assert manifest["balanced"]
    assert manifest["landed"] == before["landed"] - len(bad)
    assert manifest["dead_lettered"] == before["dead_lettered"] + len(bad)
    assert manifest["dead_letter_reasons"]["expectation:expect_column_values_to_be_between"] == 3


def test_warn_records_and_continues(sim: Any, hub: Hub) -> None:
    hub.land(sim, OBSERVATORY, METRICS)
    landed = hub.frame(Zone.NORMALIZED, OBSERVATORY, METRICS, staged=True)
    hub.rewrite(OBSERVATORY, METRICS, corrupt(landed, "latency_ms", [0], 3_600_000.0))

    result = hub.validate(OBSERVATORY, METRICS)

    assert result.status == "warned"
    assert [f.expectation for f in result.warned] == [
        "expect_column_values_to_be_between:latency_ms"
    ]
    assert hub.frame(Zone.NORMALIZED, OBSERVATORY, METRICS).height == landed.height
    assert hub.manifest(OBSERVATORY, METRICS)["quality"]["warned"] == [
        "expect_column_values_to_be_between:latency_ms"
    ]
    history = hub.store.history().to_table().to_pylist()
    warned = [row for row in history if not row["success"]]
    assert [(row["severity"], row["action"]) for row in warned] == [("warn", "warned")]


def test_block_stops_with_the_failed_expectation_and_a_sample(sim: Any, tmp_path: Path) -> None:
    hub = local_hub(tmp_path, max_bad_row_share=0.01)
    hub.land(sim, SENTINEL, SECURITY)
    landed = hub.frame(Zone.NORMALIZED, SENTINEL, SECURITY, staged=True)
    too_many = list(range(0, landed.height, 10))  # 10 % of the rows
    before = WINDOW.start - timedelta(hours=1)  # ingested before the window they came in
    hub.rewrite(SENTINEL, SECURITY, corrupt(landed, "ingested_at", too_many, before))

    with pytest.raises(WindowBlockedError) as blocked:
        hub.validate(SENTINEL, SECURITY)

    message = str(blocked.value)
    assert "bad_row_share" in message and landed["event_id"][0] in message
    # nothing moved: the version stays staged as landed, for a person to look at
    assert hub.frame(Zone.NORMALIZED, SENTINEL, SECURITY, staged=True).height == landed.height
    assert hub.manifest(SENTINEL, SECURITY, staged=True)["quality"]["status"] == "blocked"
    assert not hub.published(SENTINEL, SECURITY)


def test_the_suites_hold_no_rule_normalization_already_enforces() -> None:
    """Normalization dead-letters a record that lacks a required field, has a value outside
    a closed vocabulary or out of its range, and ingest drops a redelivering module's
    repeated keys: none of that can fail at the gate, so no suite checks it again."""
    for module in MODULES.values():
        for entity in module.entities:
            found = expectations(module, entity)
            kinds = {type(e).__name__ for e in found}
            assert not kinds & {"ExpectColumnValuesToNotBeNull", "ExpectColumnValuesToBeInSet"}
            bounded = {
                (e.column, e.meta["rule"])
                for e in found
                if isinstance(e, gxe.ExpectColumnValuesToBeBetween)
            }
            money = {m.output for m in entity.money}
            for column, rule in bounded:  # times, plausible maxima and money only
                assert column in money | set(SANE_MAXIMUM) | set(WINDOW_TIMES) | {
                    f.name for f in entity.all_fields if f.kind is Kind.TIMESTAMP
                }, (module.name, entity.name, column, rule)
                assert rule != "the contract's range"
            unique = [
                e
                for e in found
                if isinstance(
                    e, gxe.ExpectColumnValuesToBeUnique | gxe.ExpectCompoundColumnsToBeUnique
                )
            ]
            assert len(unique) == (module.delivery == "at-most-once"), (module.name, entity.name)


def test_schema_drift_blocks(sim: Any, hub: Hub) -> None:
    hub.land(sim, SENTINEL, SECURITY)
    hub.drift(SENTINEL, SECURITY, "threat_level")

    with pytest.raises(WindowBlockedError, match="expect_table_columns_to_match_ordered_list"):
        hub.validate(SENTINEL, SECURITY)
    assert not hub.published(SENTINEL, SECURITY)


def past_days(hub: Hub, module: Module, entity: Entity, rows: int, days: int) -> None:
    """Manifests of the same window on past days, as the gate's volume history reads them."""
    for day in range(1, days + 1):
        past = Window(WINDOW.start - timedelta(days=day), WINDOW.end - timedelta(days=day))
        manifest = {"module": module.name, "entity": entity.name, "landed": rows}
        hub.lake.write_json(hub.lake.path(Zone.MANIFESTS, module.name, entity.name, past), manifest)


def test_an_outage_of_a_flowing_stream_blocks_and_a_later_pull_can_lift_it(
    sim: Any, hub: Hub
) -> None:
    past_days(hub, OBSERVATORY, METRICS, rows=400, days=METRICS.volume.min_history)
    with SimulatorProcess(SILENT) as silent:  # the module answers, with nothing
        hub.land(silent, OBSERVATORY, METRICS)

    with pytest.raises(WindowBlockedError, match="volume_collapse") as blocked:
        hub.validate(OBSERVATORY, METRICS)
    assert "observed 0" in str(blocked.value)
    assert blocked.value.transient  # a pull of the same window later may find the data

    hub.land(sim, OBSERVATORY, METRICS)  # the upstream delivered after all
    assert hub.validate(OBSERVATORY, METRICS).status == "passed"


def test_a_quiet_window_of_a_sparse_stream_lands_balances_and_passes(hub: Hub) -> None:
    assert SECURITY.volume.sparse
    with SimulatorProcess(SILENT) as silent:
        hub.land(silent, SENTINEL, SECURITY)

    result = hub.validate(SENTINEL, SECURITY)

    assert result.status == "passed", result.to_dict()
    manifest = hub.manifest(SENTINEL, SECURITY)
    assert manifest["balanced"] and manifest["pulled"] == manifest["landed"] == 0


def test_a_sparse_stream_below_its_history_warns(hub: Hub) -> None:
    past_days(hub, SENTINEL, SECURITY, rows=200, days=SECURITY.volume.min_history)
    with SimulatorProcess(SILENT) as silent:
        hub.land(silent, SENTINEL, SECURITY)

    result = hub.validate(SENTINEL, SECURITY)

    assert result.status == "warned"
    assert [f.expectation for f in result.warned] == ["volume_drop"]


def test_a_flowing_stream_without_history_only_warns_when_empty(hub: Hub) -> None:
    past_days(hub, OBSERVATORY, METRICS, rows=400, days=METRICS.volume.min_history - 1)
    with SimulatorProcess(SILENT) as silent:
        hub.land(silent, OBSERVATORY, METRICS)

    result = hub.validate(OBSERVATORY, METRICS)

    assert result.status == "warned"  # the stream did stall: nothing is fresh either
    assert [f.expectation for f in result.warned] == ["volume_drop", "freshness"]


def test_a_block_in_the_data_is_not_transient(sim: Any, hub: Hub) -> None:
    hub.land(sim, SENTINEL, SECURITY)
    hub.drift(SENTINEL, SECURITY, "threat_level")

    with pytest.raises(WindowBlockedError) as blocked:
        hub.validate(SENTINEL, SECURITY)
    assert not blocked.value.transient


def test_a_stalled_module_trips_freshness(sim: Any, hub: Hub) -> None:
    hub.land(sim, OBSERVATORY, METRICS)
    landed = hub.frame(Zone.NORMALIZED, OBSERVATORY, METRICS, staged=True)
    # the module still answers, but what it sends stopped advancing two hours ago
    stalled = landed.with_columns(pl.col("event_time") - timedelta(hours=2))
    hub.rewrite(OBSERVATORY, METRICS, stalled)

    result = hub.validate(OBSERVATORY, METRICS)

    assert result.status == "warned"
    assert [f.expectation for f in result.warned] == ["freshness"]


def test_the_gate_on_an_s3_lake(sim: Any, s3_lake_env: Any, tmp_path: Path) -> None:
    settings = load_settings(lake_url=f"s3://{s3_lake_env.bucket}/gate-test/lake")
    hub = Hub(settings, load_gate_settings(work_dir=str(tmp_path / "work")))
    hub.land(sim, SENTINEL, SECURITY)
    landed = hub.frame(Zone.NORMALIZED, SENTINEL, SECURITY, staged=True)
    future = datetime(2026, 11, 26, tzinfo=UTC)
    hub.rewrite(SENTINEL, SECURITY, corrupt(landed, "event_time", [2], future))

    result = hub.validate(SENTINEL, SECURITY)

    assert result.status == "quarantined"
    dead = hub.frame(Zone.DEADLETTER, SENTINEL, SECURITY)
    assert dead.filter(pl.col("reason_code").str.starts_with("expectation:"))[
        "record_id"
    ].to_list() == [landed["event_id"][2]]
    assert hub.store.docs_index == f"s3://{s3_lake_env.bucket}/gate-test/quality/docs/index.html"
    assert hub.lake.fs.get_file_info(hub.store.docs_index.removeprefix("s3://")).size > 0
    assert hub.store.history().count_rows() > 0


def test_the_validate_task_retries_a_collapse_by_pulling_again_and_fails_a_data_block_at_once(
    sim: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, private_pg: PrivatePostgres
) -> None:
    """The task entry points (`orchestration.land_entity`, `validate_landed`), their
    connections from the environment as Airflow gives them (the window's lease is held on
    the warehouse): a collapse raises a retryable error, and the retry pulls the window
    again; a block in the data of a later pull fails without retries, and the window keeps
    the version published before it."""
    from airflow.sdk.exceptions import AirflowFailException

    from analytics_hub import orchestration

    def connect(process: Any) -> None:
        monkeypatch.setenv(
            "AIRFLOW_CONN_HUB_OBSERVATORY",
            orjson.dumps(
                {
                    "conn_type": "http",
                    "host": process.module_url("observatory"),
                    "password": "sim-observatory-token",
                }
            ).decode(),
        )

    lease = warehouse_connection_env(private_pg, "lake_gate_leases")
    monkeypatch.setenv(WAREHOUSE_CONN_ENV, lease[WAREHOUSE_CONN_ENV])
    monkeypatch.setenv("HUB_LAKE_URL", str(tmp_path / "lake"))
    monkeypatch.setenv("HUB_QUALITY_WORK_DIR", str(tmp_path / "work"))
    hub = local_hub(tmp_path)
    past_days(hub, OBSERVATORY, METRICS, rows=400, days=METRICS.volume.min_history)
    with SimulatorProcess(SILENT) as silent:
        connect(silent)
        orchestration.land_entity("observatory", "metrics", WINDOW)
        with pytest.raises(WindowBlockedError, match="volume_collapse"):
            orchestration.validate_landed("observatory", "metrics", WINDOW)
    assert not hub.published(OBSERVATORY, METRICS)

    connect(sim)  # the module has delivered by the time Airflow retries the task
    manifest = orchestration.validate_landed("observatory", "metrics", WINDOW)
    assert manifest["quality"]["status"] == "passed" and manifest["landed"] > 0
    assert hub.manifest(OBSERVATORY, METRICS) == manifest
    published = hub.lake.checksum(hub.path(Zone.NORMALIZED, OBSERVATORY, METRICS))
    assert published == manifest["checksums"]["normalized"]

    # the window pulled again, and what this pull staged has drifted
    staged = orchestration.land_entity("observatory", "metrics", WINDOW)
    assert staged["version"] > manifest["version"]
    hub.drift(OBSERVATORY, METRICS, "region")
    with pytest.raises(AirflowFailException, match="expect_table_columns"):
        orchestration.validate_landed("observatory", "metrics", WINDOW)
    assert hub.manifest(OBSERVATORY, METRICS) == manifest
    assert hub.lake.checksum(hub.path(Zone.NORMALIZED, OBSERVATORY, METRICS)) == published
    blocked = hub.manifest(OBSERVATORY, METRICS, staged=True)
    assert (blocked["version"], blocked["quality"]["status"]) == (staged["version"], "blocked")
