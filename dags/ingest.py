"""
### Ingest: pull every module of the platform into the lake

One DAG per upstream module (`ingest_<module>`), all built from the declarative table
`analytics_hub.sources.MODULES`. Each run pulls exactly its data interval (a half-open
window on the records' ingest time) of every entity of the module, normalizes it and
lands raw pages, normalized rows, dead letters and a manifest as Parquet in the lake.
Each `land_<entity>` task is followed by `validate_<entity>`, the lake gate (Great
Expectations): a window that passes, warns or has bad rows quarantined to the dead-letter
zone updates the Asset `lake.normalized.<module>.<entity>`, which the warehouse load is
scheduled on; a blocked window (schema drift, broken balance, volume collapse, too many
bad rows) fails its validate task and goes no further. Data Docs: `<quality>/docs/index.html`.

**Windows.** The `windows` task lists the run's windows; each entity's group of
`land_<entity>` → `validate_<entity>` is mapped over them, one instance per window,
labelled with the window's start. A scheduled run has one window. A trigger with the
params `window_start` / `window_end` (ISO-8601, UTC) re-pulls a range as the scheduled
windows it is made of: the range must be aligned to the module's schedule (the error
names aligned bounds) and at most `HUB_MAX_MANUAL_WINDOW_HOURS` long (a week by default).
A mapped group rather than a loop in one task: each window is retried, timed out and
blocked by the gate on its own, is validated as soon as it has landed, and shows in the
grid as its own instance; its Asset event names that window.

**Backfill** longer ranges from the UI (*Trigger → Backfill*): one run per window.
Re-running a window rewrites the same objects: it never duplicates.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, CronDataIntervalTimetable, task, task_group

from analytics_hub import orchestration
from analytics_hub.dag_glue import Tag, dag_defaults, ingest_params, lake_asset
from analytics_hub.sources import MODULES, Module
from analytics_hub.windows import Window


def build_ingest_dag(module: Module) -> DAG:
    with DAG(
        dag_id=f"ingest_{module.name}",
        description=module.description,
        doc_md=f"{__doc__}\n\n**This DAG:** {module.service}: {module.description} "
        f"Delivery {module.delivery}; raw retention {module.raw_retention.days} days.",
        schedule=CronDataIntervalTimetable(module.schedule, timezone="UTC"),
        max_active_runs=4,
        params=ingest_params(),
        tags=[Tag.INGEST, Tag.LAKE, Tag.QUALITY, Tag(module.name)],
        **dag_defaults(
            retries=3,
            retry_delay=timedelta(minutes=2),
            retry_exponential_backoff=True,
            max_retry_delay=timedelta(minutes=20),
            execution_timeout=timedelta(hours=2),  # a window of a slow module's full pagination
        ),
    ) as dag:

        @task(task_id="windows", execution_timeout=timedelta(minutes=5))
        def windows(
            params: dict[str, Any] | None = None,
            data_interval_start: Any = None,
            data_interval_end: Any = None,
        ) -> list[dict[str, str]]:
            with orchestration.refusing_bad_params():
                resolved = orchestration.resolve_windows(
                    module.name, params or {}, data_interval_start, data_interval_end
                )
            return [window.to_dict() for window in resolved]

        run_windows = windows()
        for entity in module.entities:

            @task(
                task_id=f"land_{entity.name}",
                multiple_outputs=False,
                map_index_template="{{ task.op_kwargs.window.window_start }}",
            )
            def land(window: dict[str, str], entity_name: str = entity.name) -> dict[str, Any]:
                return orchestration.land_entity(module.name, entity_name, Window.from_dict(window))

            @task(
                task_id=f"validate_{entity.name}",
                multiple_outputs=False,
                outlets=[lake_asset(module.name, entity.name)],
                map_index_template="{{ task.op_kwargs.landed.window_start }}",
            )
            def validate(
                landed: dict[str, Any],
                entity_name: str = entity.name,
                outlet_events: Any = None,
            ) -> dict[str, Any]:
                window = Window.from_dict(landed)
                manifest = orchestration.validate_landed(module.name, entity_name, window)
                # the window rides on the Asset event, so the load step loads exactly it
                asset = lake_asset(module.name, entity_name)
                outlet_events[asset].extra = orchestration.landed_window_extra(manifest)
                return manifest

            @task_group(group_id=entity.name, prefix_group_id=False)
            def each_window(window: dict[str, str]) -> None:
                validate(landed=land(window=window))

            each_window.expand(window=run_windows)
    return dag


for _module in MODULES.values():
    globals()[f"ingest_{_module.name}"] = build_ingest_dag(_module)
