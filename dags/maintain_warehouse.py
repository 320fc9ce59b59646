"""
### Maintain the warehouse (and the lake's old versions): retention of raw facts

Daily. `prune_lake_versions` deletes the lake's replaced versions of windows, and staged
versions never published (blocked, or a killed pull's), once older than
`HUB_LAKE_KEEP_REPLACED_DAYS`; the newest staged version of a window stays. Enforces each module's retention of raw facts (`vars.retention` in
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
from typing import Any

from airflow.sdk import DAG, task
from cosmos.operators.local import DbtRunOperationLocalOperator

from analytics_hub import dbt_airflow, orchestration
from analytics_hub.dag_glue import Tag, dag_defaults, retention_params

with DAG(
    dag_id="maintain_warehouse",
    description="Retention of raw facts: partition drops (PostgreSQL) or policy jobs (TimescaleDB).",
    doc_md=__doc__,
    schedule="@daily",
    max_active_runs=1,
    params=retention_params(),
    tags=[Tag.WAREHOUSE, Tag.MAINTENANCE],
    **dag_defaults(
        retries=2,
        retry_delay=timedelta(minutes=5),
        # compression jobs on a day of hypertable chunks are the slow part
        execution_timeout=timedelta(hours=2),
    ),
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

    @task
    def prune_lake_versions(params: dict[str, Any] | None = None) -> list[str]:
        return orchestration.prune_lake_versions(dry_run=bool((params or {}).get("dry_run")))

    prune_lake_versions()
