"""Policy tests over every DAG: it imports, and it is owned, retried, tagged and documented."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from analytics_hub.sources import MODULES
from analytics_hub.stack.airflow_env import dag_file

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
ALLOWED_TAGS = {
    "ingest",
    "lake",
    "warehouse",
    "transform",
    "quality",
    "feeds",
    "replay",
    "maintenance",
    *MODULES,
}


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS_FOLDER))


def test_every_dag_file_imports(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}
    assert dagbag.dags, "no DAG found"


def test_dag_ids_follow_their_file_names(dagbag: DagBag) -> None:
    for dag_id, dag in dagbag.dags.items():
        stem = Path(dag.fileloc).stem
        assert dag_id == stem or dag_id.startswith(f"{stem}_"), (dag_id, dag.fileloc)


def test_dags_test_is_pointed_at_the_file_of_each_dag(dagbag: DagBag) -> None:
    env = {"AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER)}
    for dag_id, dag in dagbag.dags.items():
        assert dag_file(env, dag_id) == Path(dag.fileloc), dag_id
    assert dag_file(env, "no_such_dag") is None


def test_every_module_has_an_ingest_dag(dagbag: DagBag) -> None:
    assert {f"ingest_{name}" for name in MODULES} <= set(dagbag.dags)


@pytest.mark.parametrize("attribute", ["owner", "retries"])
def test_every_task_is_owned_and_retried(dagbag: DagBag, attribute: str) -> None:
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            value = getattr(task, attribute)
            assert value and value != "airflow", (
                f"{dag.dag_id}.{task.task_id}: {attribute}={value!r}"
            )


def test_every_task_has_an_execution_timeout(dagbag: DagBag) -> None:
    # a hung pull or COPY would hold its slot and its window's lease until someone noticed
    unbounded = [
        f"{dag.dag_id}.{task.task_id}"
        for dag in dagbag.dags.values()
        for task in dag.tasks
        if not task.execution_timeout
    ]
    assert not unbounded, f"tasks without an execution_timeout: {unbounded}"


def test_tags_come_from_the_allowed_set(dagbag: DagBag) -> None:
    for dag in dagbag.dags.values():
        assert dag.tags, f"{dag.dag_id} has no tags"
        assert set(dag.tags) <= ALLOWED_TAGS, f"{dag.dag_id}: {set(dag.tags) - ALLOWED_TAGS}"


def test_every_dag_is_documented(dagbag: DagBag) -> None:
    for dag in dagbag.dags.values():
        assert dag.doc_md and len(dag.doc_md) > 80, f"{dag.dag_id} has no doc_md"


def test_no_dag_file_imports_another() -> None:
    stems = {path.stem for path in DAGS_FOLDER.glob("*.py")}
    for path in DAGS_FOLDER.glob("*.py"):
        text = path.read_text()
        for stem in stems - {path.stem}:
            assert f"import {stem}" not in text and f"from {stem} " not in text, path
