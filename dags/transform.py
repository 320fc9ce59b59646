"""
### Transform: dbt builds the facts and the rollups (astronomer-cosmos)

Runs whenever the load step updates the Asset `warehouse.landing`. Cosmos renders the dbt
project (`dbt_project/`) as one Airflow task per model, a `dbt build` of the model and
then its tests:
staging views over the landing tables → deduplicating intermediates (the delivery
guarantees of the contract) → incremental facts, hourly and daily rollups (marts).

Each mart updates its Asset `warehouse.marts.<model>` once its tests pass. Then
`validate_marts`, the mart gate (Great Expectations), checks what the builds added since
it last let each mart through (a range of `_loaded_at`, from the mart's watermark in
`hub_meta.mart_gate_watermarks`, however late the build ran): schema, keys, the contract's
values and ranges, and rollup totals reconciled with their facts'. Only if nothing
blocking failed does it update `warehouse.marts.validated`, which the feeds schedule on;
a blocked build fails the task, naming the expectation, sample rows and the range checked,
and the blocked marts' watermarks stay for the next run. Data Docs:
`<quality>/docs/index.html`.

On TimescaleDB the facts are hypertables and the rollups continuous aggregates; on plain
PostgreSQL, day-partitioned tables and incrementally maintained tables (the project
detects which; `HUB_WAREHOUSE_KIND` forces it).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import task
from cosmos import DbtDag, RenderConfig
from cosmos.constants import LoadMode, TestBehavior

from analytics_hub import dbt_airflow, orchestration
from analytics_hub.dag_glue import MARTS_VALIDATED, WAREHOUSE_LANDING, Tag, dag_defaults, mart_asset

transform = DbtDag(
    dag_id="transform",
    description="dbt: staging → intermediate → facts, hourly and daily rollups.",
    doc_md=__doc__,
    schedule=[WAREHOUSE_LANDING],
    max_active_runs=1,
    tags=[Tag.TRANSFORM, Tag.WAREHOUSE],
    # every task, the dbt ones (cosmos builds its operators in this DAG) and the gate: a
    # task stuck on a lock must fail and retry, not hold the DAG's only active run
    **dag_defaults(
        retries=2, retry_delay=timedelta(minutes=1), execution_timeout=timedelta(hours=1)
    ),
    project_config=dbt_airflow.project_config(),
    profile_config=dbt_airflow.profile_config(),
    execution_config=dbt_airflow.execution_config(),
    render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST, test_behavior=TestBehavior.BUILD),
    # the marts' Assets are attached below; cosmos's own need OpenLineage to be installed
    operator_args={"emit_datasets": False},
)

# A mart's Asset is updated by its task, a `dbt build` of the model and its tests.
for mart in dbt_airflow.mart_models():
    transform.task_dict[f"{mart}_model_build"].outlets.append(mart_asset(mart))

# The mart gate, after every dbt task: the feeds read only marts it let through.
dbt_leaves = [t for t in transform.tasks if not t.downstream_task_ids]


@task(
    task_id="validate_marts",
    multiple_outputs=False,
    outlets=[MARTS_VALIDATED],
    dag=transform,
)
def validate_marts() -> dict[str, Any]:
    return orchestration.validate_marts()


dbt_leaves >> validate_marts()
