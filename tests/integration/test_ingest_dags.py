"""The ingest DAGs end to end: Airflow runs them (``airflow dags test``) against the simulator.

Airflow's metadata lives in the private PostgreSQL cluster; the lake is an S3 bucket served
by moto over HTTP for the clean runs, and a local directory for the chaos runs. For every
module: the lake equals the simulator's ground truth; a re-run changes nothing; with chaos
on, every batch balances and every malformed record is in the dead-letter store.

"Changes nothing" is byte for byte for normalized rows, dead letters and manifests (less
their timings); raw pages are compared less the ``meta.request_id`` a module stamps on
every response, which the raw zone keeps as received.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
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
from analytics_hub.stack.airflow_env import (
    airflow_env,
    connections_env,
    dags_test,
    failure_excerpt,
    migrate_once,
    serialize_dags,
)
from analytics_hub.stack.postgres import PrivatePostgres
from analytics_hub.stack.s3 import MotoS3Server
from simulators import SimulatorConfig, SimulatorProcess, compute_truth

# 18 `airflow dags test` runs (each module thrice), each importing Airflow and GX: minutes
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

START, END = datetime(2026, 11, 24, 6, tzinfo=UTC), datetime(2026, 11, 24, 8, tzinfo=UTC)
CONF = {"window_start": "2026-11-24T06:00:00Z", "window_end": "2026-11-24T08:00:00Z"}
CLEAN = SimulatorConfig(seed=21)
CHAOS = SimulatorConfig(seed=21, chaos=0.4, stall_seconds=0.2)
TIMING_FIELDS = {"landed_at", "seconds", "stage_seconds"}


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
        base = airflow_env(pg, home=root / "airflow") | {"HUB_PSEUDONYM_KEY": secrets.token_hex(16)}
        migrate_once(pg, base)
        serialize_dags(base)
        self.output: dict[tuple[str, str], str] = {}
        with SimulatorProcess(CLEAN) as clean, SimulatorProcess(CHAOS) as chaos:
            s3_env = base | s3_hub_env | s3.env() | connections_env(clean.url)
            chaos_env = base | {"HUB_LAKE_URL": self.local_lake.url} | connections_env(chaos.url)
            self._run_all("first", s3_env)
            self.first = self.snapshot()
            self._run_all("second", s3_env)
            self.second = self.snapshot()
            self._run_all("chaos", chaos_env)

    def _run_all(self, label: str, env: dict[str, str]) -> None:
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = pool.map(lambda m: (m, dags_test(env, f"ingest_{m}", CONF)), MODULES)
            for module, result in results:
                self.output[(label, module)] = result.stdout + result.stderr
                assert result.returncode == 0, (
                    f"{label} ingest_{module}:\n{failure_excerpt(result)}"
                )

    def snapshot(self) -> dict[str, Any]:
        selector = pafs.FileSelector(self.s3_lake.root, recursive=True)
        state: dict[str, Any] = {}
        for info in self.s3_lake.fs.get_file_info(selector):
            if info.type is not pafs.FileType.File:
                continue
            if info.path.endswith(".json"):
                manifest = self.s3_lake.read_json(info.path)
                state[info.path] = {k: v for k, v in manifest.items() if k not in TIMING_FIELDS}
            elif "/raw/" in info.path:
                state[info.path] = [
                    _without_request_meta(b) for b in _raw_bodies(self.s3_lake, info.path)
                ]
            else:
                with self.s3_lake.fs.open_input_stream(info.path) as source:
                    state[info.path] = source.read()
        return state


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
    expected = compute_truth(CLEAN, module, truth, START, END)
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
    expected = compute_truth(CHAOS, module, truth, START, END)
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
