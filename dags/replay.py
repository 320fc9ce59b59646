"""
### Replay: re-process a window's dead letters after a fix

Trigger with the params `module`, `entity`, `window_start` and `window_end` (ISO-8601,
UTC) of a landed window. `replay_dead_letters` reads the window's dead letters back:
records rejected by normalization go through the same parse and normalize path as at
ingest (with today's rules), rows quarantined by the lake gate go back as they were.
What now passes joins the window's normalized rows and leaves the dead-letter store;
what still fails stays, with its current reasons. `validate` then runs the lake gate on
the window, and a window that passes updates the Asset `lake.replayed`, so
`load_warehouse` reloads it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, task

from analytics_hub import orchestration
from analytics_hub.dag_glue import LAKE_REPLAYED, Tag, dag_defaults, replay_params
from analytics_hub.settings import ConfigurationError
from analytics_hub.windows import Window

with DAG(
    dag_id="replay",
    description="Re-process a window's dead letters through normalization and the lake gate.",
    doc_md=__doc__,
    schedule=None,
    params=replay_params(),
    tags=[Tag.REPLAY, Tag.LAKE, Tag.QUALITY],
    **dag_defaults(
        retries=1,
        retry_delay=timedelta(minutes=1),
        execution_timeout=timedelta(hours=1),  # one window's dead letters, or its re-pull
    ),
):

    @task(multiple_outputs=False)
    def replay_dead_letters(params: dict[str, Any] | None = None) -> dict[str, Any]:
        params = params or {}
        missing = [
            k for k in ("module", "entity", "window_start", "window_end") if not params.get(k)
        ]
        if missing:
            raise ConfigurationError(f"replay needs the params {', '.join(missing)}")
        window = Window.parse(params["window_start"], params["window_end"])
        return orchestration.replay_dead_letters(params["module"], params["entity"], window)

    @task(multiple_outputs=False, outlets=[LAKE_REPLAYED])
    def validate(replayed: dict[str, Any], outlet_events: Any = None) -> dict[str, Any]:
        window = Window.parse(replayed["from"], replayed["to"])
        manifest = orchestration.validate_landed(replayed["module"], replayed["entity"], window)
        extra = orchestration.landed_window_extra(manifest)
        outlet_events[LAKE_REPLAYED].extra = extra
        return manifest

    validate(replay_dead_letters())
