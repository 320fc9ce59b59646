"""
### Transform: dbt builds the facts and aggregates (astronomer-cosmos)

Runs whenever the load step updates the Asset `warehouse.landing`. Cosmos renders the dbt
project (`dbt_project/`) as one Airflow task per model, each followed by its dbt tests:
staging views over the landing tables → deduplicating intermediates (the delivery
guarantees of the contract) → incremental facts and hourly aggregates (marts). Every
model emits an Asset, for the quality gates and the feeds downstream.

dbt runs from its own virtualenv (`.venv-dbt`, `HUB_DBT_EXECUTABLE`), against the
Airflow connection `hub_warehouse`. The DAG is rendered from the compiled manifest
(`dbt_project/target/manifest.json`, made by `make setup`), so parsing it runs no dbt.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from cosmos import DbtDag, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import LoadMode, TestBehavior
from cosmos.profiles import PostgresUserPasswordProfileMapping

from analytics_hub import orchestration

PROJECT = Path(__file__).resolve().parents[1]
DBT_PROJECT = PROJECT / "dbt_project"
DBT_EXECUTABLE = os.environ.get("HUB_DBT_EXECUTABLE", str(PROJECT / ".venv-dbt" / "bin" / "dbt"))

transform = DbtDag(
    dag_id="transform",
    description="dbt: staging → intermediate → facts and hourly aggregates.",
    doc_md=__doc__,
    schedule=[orchestration.WAREHOUSE_LANDING],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "data-platform", "retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["transform", "warehouse"],
    project_config=ProjectConfig(
        dbt_project_path=DBT_PROJECT,
        manifest_path=DBT_PROJECT / "target" / "manifest.json",
        install_dbt_deps=False,
    ),
    profile_config=ProfileConfig(
        profile_name="llm_analytics_hub",
        target_name="airflow",
        profile_mapping=PostgresUserPasswordProfileMapping(
            conn_id=orchestration.WAREHOUSE_CONN_ID, profile_args={"schema": "analytics"}
        ),
    ),
    execution_config=ExecutionConfig(dbt_executable_path=DBT_EXECUTABLE),
    render_config=RenderConfig(
        load_method=LoadMode.DBT_MANIFEST, test_behavior=TestBehavior.AFTER_EACH
    ),
)
