"""
### Load: lake windows → the warehouse's landing tables

Runs whenever an ingest task lands a window that passed the lake gate (scheduled on
every `lake.normalized.*` Asset, and on `lake.replayed` for windows the `replay` DAG
re-processed). Each triggering Asset event names the module, entity and window it
landed; the task loads exactly those windows into `landing.<module>__<entity>` with
PostgreSQL `COPY`, one transaction per window: the window's old rows are replaced, never
duplicated, and a failure leaves the previous state. Updates the Asset `warehouse.landing`, on which the
dbt transform is scheduled.

**Reload by hand**: trigger with params `window_start`, `window_end` (and optionally
`module`, `entity`; by default every entity of every module) to load windows that are
already in the lake. The range is split into each module's scheduled windows, the
windows its ingest lands. A range not aligned to a module's schedule, longer than
`HUB_MAX_MANUAL_WINDOW_HOURS` (a week by default) or with one bound only, and an unknown
module or entity, fail the run at once with a message saying what would do.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, AssetAny, task

from analytics_hub import orchestration
from analytics_hub.dag_glue import (
    LAKE_NORMALIZED,
    LAKE_REPLAYED,
    WAREHOUSE_LANDING,
    Tag,
    dag_defaults,
    reload_params,
)

with DAG(
    dag_id="load_warehouse",
    description="Load landed lake windows into the warehouse's landing tables with COPY.",
    doc_md=__doc__,
    schedule=AssetAny(*LAKE_NORMALIZED.values(), LAKE_REPLAYED),
    max_active_runs=1,  # loads of one table serialize anyway; keep the order of windows
    params=reload_params(),
    tags=[Tag.WAREHOUSE],
    **dag_defaults(
        retries=3,
        retry_delay=timedelta(minutes=1),
        execution_timeout=timedelta(hours=1),  # COPY of a burst of windows
    ),
):

    @task(outlets=[WAREHOUSE_LANDING], multiple_outputs=False)
    def load_landed_windows(
        triggering_asset_events: Any = None, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        with orchestration.refusing_bad_params():
            asked = orchestration.windows_from_params(params or {})
        landed = orchestration.windows_from_asset_events(triggering_asset_events)
        return orchestration.load_landed_windows(landed + asked)

    load_landed_windows()
