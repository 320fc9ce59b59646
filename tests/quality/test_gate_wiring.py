"""The gate in the ingest DAGs: between land and the lake Asset, and not paid at parse time."""

from __future__ import annotations

import runpy
import subprocess
import sys
from typing import Any

import pytest

from analytics_hub.settings import project_root
from analytics_hub.sources import MODULES

DAGS = project_root() / "dags"


@pytest.fixture(scope="module")
def ingest_dags() -> dict[str, Any]:
    namespace = runpy.run_path(str(DAGS / "ingest.py"))
    return {name: namespace[f"ingest_{name}"] for name in MODULES}


def test_parsing_the_dags_does_not_import_great_expectations() -> None:
    script = (
        "import runpy, sys\n"
        f"for name in ('ingest', 'load_warehouse', 'replay'): runpy.run_path('{DAGS}/' + name + '.py')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'great_expectations'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_only_the_validate_task_publishes_the_window(ingest_dags: dict[str, Any]) -> None:
    for name, dag in ingest_dags.items():
        for entity in MODULES[name].entities:
            land = dag.get_task(f"land_{entity.name}")
            validate = dag.get_task(f"validate_{entity.name}")
            assert validate.upstream_task_ids == {land.task_id}
            assert not land.outlets
            assert [a.name for a in validate.outlets] == [f"lake.normalized.{name}.{entity.name}"]


def test_a_replayed_window_is_validated_then_loaded() -> None:
    from airflow.dag_processing.dagbag import DagBag

    replay = DagBag(dag_folder=str(DAGS / "replay.py")).dags["replay"]
    validate = replay.get_task("validate")
    assert validate.upstream_task_ids == {"replay_dead_letters"}
    assert [a.name for a in validate.outlets] == ["lake.replayed"]
    load = DagBag(dag_folder=str(DAGS / "load_warehouse.py")).dags["load_warehouse"]
    assert "lake.replayed" in {a.name for a in load.timetable.asset_condition.objects}
