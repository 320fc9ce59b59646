"""Policy tests over every DAG: it imports, and it is owned, retried, tagged and documented.

A DAG file is a declaration: its defaults, params, tags and Assets come from
``analytics_hub.dag_glue``, which these tests read too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import Asset
from airflow.sdk.definitions.asset import AssetBooleanCondition, BaseAsset

from analytics_hub import dag_glue, dbt_airflow
from analytics_hub.dag_glue import Tag
from analytics_hub.settings import project_root
from analytics_hub.sources import MODULES
from hub_dev.airflow_env import dag_file

DAGS_FOLDER = project_root() / "dags"
DAG_FILES = sorted(DAGS_FOLDER.glob("*.py"))


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


def test_tags_are_members_of_the_tag_enum(dagbag: DagBag) -> None:
    members = set(Tag)
    for dag in dagbag.dags.values():
        assert dag.tags, f"{dag.dag_id} has no tags"
        assert set(dag.tags) <= members, f"{dag.dag_id}: not a Tag: {set(dag.tags) - members}"


def test_every_tag_is_used(dagbag: DagBag) -> None:
    used = {tag for dag in dagbag.dags.values() for tag in dag.tags}
    assert set(Tag) <= used, f"Tag members no DAG carries: {sorted(set(Tag) - used)}"


def test_every_module_is_a_tag() -> None:
    assert set(MODULES) <= set(Tag), sorted(set(MODULES) - set(Tag))


def _assets(condition: Any) -> Iterator[BaseAsset]:
    if isinstance(condition, AssetBooleanCondition):
        for each in condition.objects:
            yield from _assets(each)
    elif isinstance(condition, BaseAsset):
        yield condition  # an Asset, or an alias or reference the glue never declares


def produced(dagbag: DagBag) -> dict[BaseAsset, list[str]]:
    """Each Asset a task updates, with the tasks that do."""
    producers: dict[BaseAsset, list[str]] = {}
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            for outlet in task.outlets:
                for asset in _assets(outlet):
                    producers.setdefault(asset, []).append(f"{dag.dag_id}.{task.task_id}")
    return producers


def consumed(dagbag: DagBag) -> dict[BaseAsset, list[str]]:
    """Each Asset a DAG is scheduled on or a task reads, with who does."""
    consumers: dict[BaseAsset, list[str]] = {}
    for dag in dagbag.dags.values():
        for asset in _assets(getattr(dag.timetable, "asset_condition", None)):
            consumers.setdefault(asset, []).append(dag.dag_id)
        for task in dag.tasks:
            for inlet in task.inlets:
                for asset in _assets(inlet):
                    consumers.setdefault(asset, []).append(f"{dag.dag_id}.{task.task_id}")
    return consumers


def declared_assets() -> set[Asset]:
    return set(dag_glue.ASSETS) | {dag_glue.mart_asset(m) for m in dbt_airflow.mart_models()}


def test_every_asset_a_dag_uses_is_declared_in_the_glue(dagbag: DagBag) -> None:
    declared = declared_assets()
    used = produced(dagbag) | consumed(dagbag)
    assert used, "no DAG produces or consumes an Asset"
    undeclared = {repr(asset): users for asset, users in used.items() if asset not in declared}
    assert not undeclared, f"Assets not declared in analytics_hub.dag_glue: {undeclared}"


def test_every_declared_asset_has_a_producer(dagbag: DagBag) -> None:
    orphans = sorted(asset.name for asset in declared_assets() - produced(dagbag).keys())
    assert not orphans, f"Assets no task updates: {orphans}"


# Declared once in analytics_hub.dag_glue, so a DAG file never builds its own.
GLUE_CALLS = {"Asset", "AssetAlias", "Dataset", "Param"}
GLUE_KEYWORDS = {"default_args", "start_date", "owner"}


def declared_in_dag_file(source: str) -> list[str]:
    """What a DAG file declares itself that only the glue module may declare."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in GLUE_CALLS:
                found.append(f"line {node.lineno}: {name}(...)")
            for keyword in node.keywords:
                if keyword.arg in GLUE_KEYWORDS:
                    found.append(f"line {keyword.value.lineno}: {keyword.arg}=...")
                elif keyword.arg == "tags" and any(
                    isinstance(n, ast.Constant) and isinstance(n.value, str)
                    for n in ast.walk(keyword.value)
                ):
                    found.append(f"line {keyword.value.lineno}: tags= a string, not a Tag")
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for n in ast.walk(target):
                    name = n.id if isinstance(n, ast.Name) else getattr(n, "attr", "")
                    if "default_args" in name.lower():
                        found.append(f"line {n.lineno}: {name} = ...")
    return found


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_a_dag_file_reads_its_defaults_params_and_assets_from_the_glue(path: Path) -> None:
    found = declared_in_dag_file(path.read_text())
    assert not found, f"{path.name} declares what is analytics_hub.dag_glue's: {found}"


def test_the_glue_check_catches_a_dag_file_declaring_its_own() -> None:
    source = """
DEFAULT_ARGS = {"owner": "data-platform", "retries": 2}
with DAG(
    dag_id="load_warehouse",
    schedule=AssetAny(Asset(name="lake.replayed", uri="hub-lake://replayed")),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    default_args={"owner": "data-platform"},
    params={"dry_run": Param(False, type="boolean")},
    tags=["warehouse", Tag.LAKE],
):
    task(owner="me", outlets=[sdk.Asset("hub-warehouse://landing")])
"""
    found = sorted(line.split(": ", 1)[1] for line in declared_in_dag_file(source))
    assert found == sorted(
        [
            "DEFAULT_ARGS = ...",
            "Asset(...)",
            "Asset(...)",
            "Param(...)",
            "start_date=...",
            "default_args=...",
            "owner=...",
            "tags= a string, not a Tag",
        ]
    )


def test_every_dag_is_documented(dagbag: DagBag) -> None:
    for dag in dagbag.dags.values():
        assert dag.doc_md and len(dag.doc_md) > 80, f"{dag.dag_id} has no doc_md"


def test_no_dag_file_imports_another() -> None:
    stems = {path.stem for path in DAG_FILES}
    for path in DAG_FILES:
        text = path.read_text()
        for stem in stems - {path.stem}:
            assert f"import {stem}" not in text and f"from {stem} " not in text, path
