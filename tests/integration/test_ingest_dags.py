"""The ingest DAGs end to end: Airflow runs them (``airflow dags test``) against the simulator.

Airflow's metadata lives in the private PostgreSQL cluster (with a warehouse database,
where the tasks hold each window's lease); the lake is an S3 bucket served by moto over
HTTP for the clean runs, and a local directory for the chaos runs. Each module's run pulls
one scheduled window of the module, from the same hour. For every module: the lake equals
the simulator's ground truth; a re-run changes nothing; with chaos on, every batch balances
and every malformed record is in the dead-letter store.

"Changes nothing" is about the lake's current version of each window (the zones raw,
normalized, deadletter and manifests; a re-run stages and publishes a version of its own,
and keeps the one it replaced under ``replaced/``). It is byte for byte for normalized
rows, dead letters and manifests (less their timings and the name of their version, with
the checksums of normalized rows and dead letters); raw pages are compared less the
``meta.request_id`` a module stamps on every response, which the raw zone keeps as
received, and so does not compare the raw object's checksum.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from analytics_hub.lake import Lake, Zone
from analytics_hub.settings import load_settings
from analytics_hub.sources import MODULES
from analytics_hub.windows import Window, scheduled_windows
from hub_dev.airflow_env import (
    airflow_env,
    connections_env,
    dags_test_many,
    failure_excerpt,
    migrate_once,
    serialize_dags,
)
from hub_dev.postgres import PrivatePostgres
from hub_dev.s3 import MotoS3Server
from simulators import DEFAULT_VOLUME, SimulatorConfig, SimulatorProcess, compute_truth

# 18 `airflow dags test` runs (each module thrice, in two processes a time): minutes
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

START = datetime(2026, 11, 24, 6, tzinfo=UTC)
# What a run writes anew into a manifest although nothing changed: when, how long, and
# the name of the version it staged.
RUN_FIELDS = {"landed_at", "seconds", "stage_seconds", "version"}
CURRENT_ZONES = {zone.value for zone in Zone}  # not staged/ nor replaced/


def window_of(module: str) -> Window:
    """The module's first scheduled window from START: one window per entity and run (each
    window of each entity costs a land and a validate task)."""
    return scheduled_windows(MODULES[module].schedule, START, START + timedelta(hours=1))[0]


def conf_of(module: str) -> dict[str, str]:
    return window_of(module).to_dict()


# As many records in the module's one window as two hours of its default volume hold.
VOLUME = {
    module: round(DEFAULT_VOLUME[module] * timedelta(hours=2) / window_of(module).span)
    for module in MODULES
}
CLEAN = SimulatorConfig(seed=21, volume=VOLUME)
CHAOS = SimulatorConfig(seed=21, chaos=0.4, stall_seconds=0.2, volume=VOLUME)


def truth_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[1]


class Runs:
    """Every module's DAG, run against a clean simulator twice and a chaotic one once."""

    def __init__(self, pg: PrivatePostgres, s3: MotoS3Server, root: Path):
        # a lake of its own in the session's bucket: other tests land windows there too
        s3_hub_env = s3.hub_env() | {"HUB_LAKE_URL": f"s3://{s3.bucket}/ingest-dags-lake"}
        s3_settings = {k.removeprefix("HUB_").lower(): v for k, v in s3_hub_env.items()}
        self.s3_lake = Lake.from_settings(load_settings(**s3_settings))
        self.local_lake = Lake.from_settings(load_settings(lake_url=str(root / "lake")))
        base = airflow_env(pg, home=root / "airflow", warehouse="ingest_dags_warehouse") | {
            "HUB_PSEUDONYM_KEY": secrets.token_hex(16)
        }
        migrate_once(pg, base)
        serialize_dags(base)
        self.output: dict[tuple[str, str], str] = {}
        with SimulatorProcess(CLEAN) as clean, SimulatorProcess(CHAOS) as chaos:
            s3_env = base | s3_hub_env | s3.env() | connections_env(clean.url)
            chaos_env = base | {"HUB_LAKE_URL": self.local_lake.url} | connections_env(chaos.url)
            self._run_all("first", s3_env)
            self.first, self.first_versions = self.snapshot()
            self._run_all("second", s3_env)
            self.second, self.second_versions = self.snapshot()
            self._run_all("chaos", chaos_env)

    def _run_all(self, label: str, env: dict[str, str]) -> None:
        runs = [(f"ingest_{m}", conf_of(m)) for m in MODULES]
        for module, result in zip(MODULES, dags_test_many(env, runs, processes=2), strict=True):
            self.output[(label, module)] = result.stdout + result.stderr
            assert result.returncode == 0, f"{label} ingest_{module}:\n{failure_excerpt(result)}"

    def snapshot(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The lake's current version of every window: its objects, as compared, and the
        version named by each manifest."""
        selector = pafs.FileSelector(self.s3_lake.root, recursive=True)
        state: dict[str, Any] = {}
        versions: dict[str, str] = {}
        for info in self.s3_lake.fs.get_file_info(selector):
            if info.type is not pafs.FileType.File:
                continue
            area = info.path.removeprefix(f"{self.s3_lake.root}/").split("/", 1)[0]
            if area not in CURRENT_ZONES:
                continue
            if info.path.endswith(".json"):
                manifest = self.s3_lake.read_json(info.path)
                versions[info.path] = manifest["version"]
                state[info.path] = {k: v for k, v in manifest.items() if k not in RUN_FIELDS}
                # the raw object keeps each response's request id: compared less it, below
                state[info.path]["checksums"].pop(Zone.RAW.value)
            elif "/raw/" in info.path:
                state[info.path] = [
                    _without_request_meta(b) for b in _raw_bodies(self.s3_lake, info.path)
                ]
            else:
                with self.s3_lake.fs.open_input_stream(info.path) as source:
                    state[info.path] = source.read()
        return state, versions


def _raw_bodies(lake: Lake, path: str) -> list[bytes]:
    return pq.read_table(path, filesystem=lake.fs)["body"].to_pylist()


def _without_request_meta(body: bytes) -> Any:
    """A page as the module sent it, less ``meta`` (a fresh request id on every request)."""
    try:
        page = orjson.loads(body)
    except orjson.JSONDecodeError:  # an NDJSON chunk: records only, no page envelope
        return body
    page.pop("meta", None)
    return page


@pytest.fixture(scope="module")
def runs(private_pg: PrivatePostgres, s3_server: MotoS3Server) -> Iterator[Runs]:
    root = Path(tempfile.mkdtemp(prefix="hub-dags-"))
    root.chmod(0o755)  # the cluster's unprivileged account reads Airflow's home through it
    try:
        yield Runs(private_pg, s3_server, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def entities_with_truth() -> list[tuple[str, str, str]]:
    return [
        (module.name, entity.name, truth_name(entity.path))
        for module in MODULES.values()
        for entity in module.entities
        if entity.name != "versions"
    ]


@pytest.mark.parametrize(("module", "entity", "truth"), entities_with_truth())
def test_the_lake_equals_the_ground_truth(runs: Runs, module: str, entity: str, truth: str) -> None:
    window = window_of(module)
    expected = compute_truth(CLEAN, module, truth, window.start, window.end)
    rows = pl.from_arrow(runs.s3_lake.read(Zone.NORMALIZED, module, entity))
    assert isinstance(rows, pl.DataFrame)
    assert rows.height == expected["valid"] > 0
    assert runs.s3_lake.read(Zone.DEADLETTER, module, entity).num_rows == 0
    for field, counts in expected["counts"].items():
        if field in ("amount_unit",):  # defaulted by the hub where absent
            continue
        # the truth counts an optional field where records carry it
        assert dict(rows[field].drop_nulls().value_counts().iter_rows()) == counts, field
    for field, total in expected["sums"].items():
        if rows[field].dtype in (pl.Float64,):
            assert rows[field].sum() == pytest.approx(float(total), rel=1e-12), field
        else:
            assert str(rows[field].sum()) == total or float(rows[field].sum()) == float(total)


def test_a_rerun_changes_nothing(runs: Runs) -> None:
    assert runs.first, "the first run landed nothing"
    assert runs.second.keys() == runs.first.keys()
    changed = [path for path in runs.first if runs.first[path] != runs.second[path]]
    assert not changed, "changed on re-run:\n" + "\n".join(changed)
    # ...though the re-run did pull, audit and publish every window anew
    assert runs.second_versions.keys() == runs.first_versions.keys()
    assert all(runs.second_versions[p] > runs.first_versions[p] for p in runs.first_versions)


def test_every_module_landed_every_entity_with_a_manifest(runs: Runs) -> None:
    manifests = [path for path in runs.first if "/manifests/" in path]
    expected = {(m.name, e.name) for m in MODULES.values() for e in m.entities}
    found = {
        (path.split("module=")[1].split("/")[0], path.split("entity=")[1].split("/")[0])
        for path in manifests
    }
    assert found == expected


@pytest.mark.parametrize(("module", "entity", "truth"), entities_with_truth())
def test_chaos_balances_and_dead_letters_every_malformed_record(
    runs: Runs, module: str, entity: str, truth: str
) -> None:
    window = window_of(module)
    expected = compute_truth(CHAOS, module, truth, window.start, window.end)
    manifests = [
        m for m in runs.local_lake.manifests() if (m["module"], m["entity"]) == (module, entity)
    ]
    assert len(manifests) == 1
    manifest = manifests[0]
    assert manifest["balanced"]
    assert manifest["pulled"] == expected["pulled"]
    assert manifest["landed"] == expected["valid"]
    assert manifest["deduplicated"] == len(expected["duplicates"])
    dead = pl.from_arrow(runs.local_lake.read(Zone.DEADLETTER, module, entity))
    assert isinstance(dead, pl.DataFrame)
    assert sorted(dead["record_id"].to_list()) == sorted(m["id"] for m in expected["malformed"])
