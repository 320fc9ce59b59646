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
`module`, `entity`; by default every entity of every module) to load a window that is
already in the lake.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, AssetAny, Param, task

from analytics_hub import orchestration
from analytics_hub.sources import MODULES
from analytics_hub.windows import Window

LAKE_ASSETS = [
    orchestration.lake_asset(module.name, entity.name)
    for module in MODULES.values()
    for entity in module.entities
]

with DAG(
    dag_id="load_warehouse",
    description="Load landed lake windows into the warehouse's landing tables with COPY.",
    doc_md=__doc__,
    schedule=AssetAny(*LAKE_ASSETS, orchestration.LAKE_REPLAYED),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # loads of one table serialize anyway; keep the order of windows
    default_args={
        "owner": "data-platform",
        "retries": 3,
        "retry_delay": timedelta(minutes=1),
    },
    params={
        "module": Param(None, type=["null", "string"], enum=[None, *MODULES]),
        "entity": Param(None, type=["null", "string"]),
        "window_start": Param(None, type=["null", "string"], format="date-time"),
        "window_end": Param(None, type=["null", "string"], format="date-time"),
    },
    tags=["warehouse"],
):

    @task(outlets=[orchestration.WAREHOUSE_LANDING], multiple_outputs=False)
    def load_landed_windows(
        triggering_asset_events: Any = None, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        landed = orchestration.windows_from_asset_events(triggering_asset_events)
        params = params or {}
        if params.get("window_start") or params.get("window_end"):
            window = Window.parse(params["window_start"], params["window_end"])
            modules = [MODULES[params["module"]]] if params.get("module") else MODULES.values()
            landed += [
                (module.name, entity.name, window)
                for module in modules
                for entity in module.entities
                if params.get("entity") in (None, entity.name)
            ]
        return orchestration.load_landed_windows(landed)

    load_landed_windows()
