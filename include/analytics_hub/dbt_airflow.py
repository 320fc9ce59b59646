"""The dbt project as Airflow sees it, for the DAGs that run dbt with astronomer-cosmos.

Imported by DAG files only (it imports cosmos). The project is ``HUB_DBT_PROJECT_DIR``
(default the checkout's ``dbt_project``); dbt runs from its own virtualenv (``.venv-dbt``,
or ``HUB_DBT_EXECUTABLE``) against the Airflow connection ``hub_warehouse``; the DAGs are
rendered from the compiled manifest (``target/manifest.json``, written by ``make setup``),
so parsing them runs no dbt.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from cosmos import ExecutionConfig, ProfileConfig, ProjectConfig
from cosmos.profiles import PostgresUserPasswordProfileMapping

from analytics_hub import orchestration
from analytics_hub.settings import load_settings

DBT_PROJECT = load_settings().dbt_project_dir
MANIFEST = DBT_PROJECT / "target" / "manifest.json"
PROFILE_NAME = "llm_analytics_hub"


def dbt_executable() -> Path:
    """The dbt of the project's own virtualenv, unless ``HUB_DBT_EXECUTABLE`` names another."""
    return load_settings().dbt_executable


def project_config() -> ProjectConfig:
    return ProjectConfig(
        dbt_project_path=DBT_PROJECT, manifest_path=MANIFEST, install_dbt_deps=False
    )


def profile_config() -> ProfileConfig:
    """The warehouse connection ``hub_warehouse`` as a dbt profile.

    ``autocommit``: dbt still wraps each model in BEGIN ... COMMIT, and the statements that
    must run outside a transaction (TimescaleDB's refresh of a continuous aggregate) can.
    """
    return ProfileConfig(
        profile_name=PROFILE_NAME,
        target_name="airflow",
        profile_mapping=PostgresUserPasswordProfileMapping(
            conn_id=orchestration.WAREHOUSE_CONN_ID,
            profile_args={"schema": "analytics", "autocommit": True},
        ),
    )


def execution_config() -> ExecutionConfig:
    return ExecutionConfig(dbt_executable_path=dbt_executable())


@cache
def mart_models() -> tuple[str, ...]:
    """Names of the models under ``models/marts`` in the manifest (empty if not compiled)."""
    if not MANIFEST.is_file():
        return ()
    nodes = json.loads(MANIFEST.read_text())["nodes"].values()
    return tuple(
        sorted(
            node["name"]
            for node in nodes
            if node["resource_type"] == "model" and node["fqn"][1:2] == ["marts"]
        )
    )
