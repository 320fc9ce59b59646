"""``make run`` against a real module host: the main job's ingest step pulls the host named
by ``HUB_<MODULE>_URL`` / ``_TOKEN`` and reports its counts without a ground-truth check.

The "real host" is a simulator process this test starts itself, with its own seed, volume
and token, so the main job knows nothing of it: had the job checked the host's counts
against its own simulators' truth, or pulled its own simulators, the numbers would differ;
had it sent its simulators' token, the host would answer 401.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from analytics_hub.lake import APPROVED, Lake
from analytics_hub.settings import load_module_hosts, load_settings
from analytics_hub.windows import Window
from hub_dev.airflow_env import migrate_once
from hub_dev.local_hub import local_stack_env
from hub_dev.main_job import (
    ingest_and_check,
    per_entity,
    report_manifests,
    simulator_config,
)
from hub_dev.postgres import PrivatePostgres
from simulators import SimulatorConfig, SimulatorProcess, compute_truth

WINDOW = Window.parse("2026-11-24T06:00:00Z", "2026-11-24T07:00:00Z")
TOKEN = "real-observatory-token"
REAL_HOST = SimulatorConfig(seed=13, volume={"observatory": 120}, tokens={"observatory": TOKEN})


def _manifest(module: str, entity: str, pulled: int, landed: int, dead: int) -> dict[str, Any]:
    return {
        "module": module,
        "entity": entity,
        "pulled": pulled,
        "landed": landed,
        "dead_lettered": dead,
        "deduplicated": 0,
    }


def test_the_report_checks_simulated_modules_and_skips_real_hosts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    truth = {"pulled": 10, "valid": 9, "malformed": [{"id": "x"}]}
    manifests = [
        _manifest("sentinel", "security_events", 10, 9, 1),  # simulated: matches its truth
        _manifest("observatory", "metrics", 500, 480, 20),  # real: would mismatch
        _manifest("costops", "budgets", 3, 3, 0),  # real
    ]
    mismatches = report_manifests(
        manifests, lambda module, _: truth, real_hosts={"observatory", "costops"}
    )
    out = capsys.readouterr().out
    assert mismatches == 0
    assert "ground truth: skipped, modules are real hosts: observatory, costops" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.split()[:1]}
    assert lines["sentinel"].endswith("  ok")
    assert lines["observatory"].endswith("skipped (real host)")
    assert report_manifests(manifests, lambda module, _: truth) == 2  # all simulated: checked


def test_the_report_of_simulators_only_says_nothing_of_real_hosts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    truth = {"pulled": 10, "valid": 9, "malformed": [{"id": "x"}]}
    manifests = [_manifest("sentinel", "security_events", 10, 9, 1)]
    assert report_manifests(manifests, lambda *_: truth) == 0
    assert "ground truth" not in capsys.readouterr().out


@pytest.fixture
def work_dir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="hub-real-hosts-"))
    root.chmod(0o755)  # the cluster's unprivileged account reads Airflow's home through it
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_the_main_job_pulls_a_real_host_and_skips_its_ground_truth(
    private_pg: PrivatePostgres, work_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with SimulatorProcess(REAL_HOST) as real_host:
        environ = dict(os.environ) | {
            "HUB_OBSERVATORY_URL": real_host.module_url("observatory"),
            "HUB_OBSERVATORY_TOKEN": TOKEN,
        }
        hosts = load_module_hosts(environ)
        assert list(hosts) == ["observatory"]
        # as `make run` builds it: no simulator of its own, as no other module runs here
        env = local_stack_env(
            private_pg, None, hosts, environ, home=work_dir / "airflow", project=work_dir
        )
        migrate_once(private_pg, env)
        ok = ingest_and_check(
            env, WINDOW, ["observatory"], simulator_config(seed=42, chaos=0.05), hosts
        )
    out = capsys.readouterr().out
    assert ok, out
    assert "ground truth: skipped, modules are real hosts: observatory" in out
    assert "skipped (real host)" in out

    lake = Lake.from_settings(load_settings(lake_url=env["HUB_LAKE_URL"]))
    manifests = lake.manifests()  # published: each audited and approved by the lake gate
    assert manifests and all(m["quality"]["status"] in APPROVED for m in manifests)
    (manifest,) = per_entity(manifests)  # a 15-minute module lands the hour as four windows
    expected = compute_truth(REAL_HOST, "observatory", "metrics", WINDOW.start, WINDOW.end)
    assert (manifest["module"], manifest["entity"]) == ("observatory", "metrics")
    assert (manifest["pulled"], manifest["landed"]) == (expected["pulled"], expected["valid"])
    mains = compute_truth(
        simulator_config(42, 0.05), "observatory", "metrics", WINDOW.start, WINDOW.end
    )
    assert mains["pulled"] != expected["pulled"]  # the job's own truth would have mismatched
