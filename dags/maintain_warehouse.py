"""
### Maintain the warehouse: retention of raw facts

Daily. Enforces each module's retention of raw facts (`vars.retention` in
`dbt_project/dbt_project.yml`, from the contract: observatory 7 days, registry 30, policy
and costops 90, sentinel 365) with the dbt operation `apply_retention`:

- plain PostgreSQL: drops the facts' day partitions past their module's retention;
- TimescaleDB: retention and compression are policies of the hypertables; the task runs
  their jobs now, for deployments whose background scheduler does not.

The rollups are kept longer (`retention.aggregates`). Trigger with param `dry_run` to see
what would be dropped.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param
from cosmos.operators.local import DbtRunOperationLocalOperator

from analytics_hub import dbt_airflow

with DAG(
    dag_id="maintain_warehouse",
    description="Retention of raw facts: partition drops (PostgreSQL) or policy jobs (TimescaleDB).",
    doc_md=__doc__,
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "data-platform", "retries": 2, "retry_delay": timedelta(minutes=5)},
    params={"dry_run": Param(False, type="boolean", description="only list what would go")},
    tags=["warehouse", "maintenance"],
):
    DbtRunOperationLocalOperator(
        task_id="apply_retention",
        macro_name="apply_retention",
        args={"dry_run": "{{ params.dry_run }}"},
        project_dir=dbt_airflow.DBT_PROJECT,
        profile_config=dbt_airflow.profile_config(),
        dbt_executable_path=dbt_airflow.dbt_executable(),
        install_deps=False,
    )
