"""What the DAG files declare themselves with: defaults, params, tags and every Asset.

A DAG file names its schedule, wires its tasks and documents itself; everything else it
reads from here, and the DAG policy test (``tests/dags``) reads the same names: a tag is a
``Tag``, an Asset is one of ``ASSETS`` (or a mart's, ``mart_asset``). Pure data: importing
this module touches no network, database or Variable.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypedDict

import pendulum
from airflow.sdk import Asset, Param

from analytics_hub.sources import MODULES

OWNER = "data-platform"
START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")


class Tag(StrEnum):
    """Every tag a DAG may carry (the policy test holds each one in use)."""

    INGEST = "ingest"
    LAKE = "lake"
    QUALITY = "quality"
    WAREHOUSE = "warehouse"
    TRANSFORM = "transform"
    REPLAY = "replay"
    MAINTENANCE = "maintenance"
    # One per module of ``sources.MODULES``, on the module's ingest DAG.
    REGISTRY = "registry"
    POLICY = "policy"
    MARKETPLACE = "marketplace"
    OBSERVATORY = "observatory"
    SENTINEL = "sentinel"
    COSTOPS = "costops"


class DagDefaults(TypedDict):
    start_date: datetime
    catchup: bool
    default_args: dict[str, Any]


def dag_defaults(
    *, retries: int, retry_delay: timedelta, execution_timeout: timedelta, **task_args: Any
) -> DagDefaults:
    """The keyword arguments every hub DAG is built with (``DAG(..., **dag_defaults(...))``).

    It starts on ``START_DATE`` and never catches up (a Backfill is asked for by hand); each of its
    tasks is owned by ``OWNER``, retried ``retries`` times and bounded by
    ``execution_timeout``. ``task_args`` adds other task defaults.
    """
    return {
        "start_date": START_DATE,
        "catchup": False,
        "default_args": {
            "owner": OWNER,
            "retries": retries,
            "retry_delay": retry_delay,
            "execution_timeout": execution_timeout,
            **task_args,
        },
    }


# --- params: built afresh for each DAG, as a run resolves its values into them ------------

ENTITY_NAMES = sorted({entity.name for module in MODULES.values() for entity in module.entities})


def _window_param(description: str | None = None) -> Param:
    return Param(None, type=["null", "string"], format="date-time", description=description)


def ingest_params() -> dict[str, Param]:
    """An ingest run's range to pull instead of its data interval."""
    return {
        "window_start": _window_param(
            "Start of a range to pull instead of the run's interval, on the module's schedule"
        ),
        "window_end": _window_param("End (exclusive) of that range, on the module's schedule"),
    }


def reload_params() -> dict[str, Param]:
    """A range of landed windows to load again, of one module or entity or of all."""
    return {
        "module": Param(None, type=["null", "string"], enum=[None, *MODULES]),
        "entity": Param(None, type=["null", "string"], enum=[None, *ENTITY_NAMES]),
        "window_start": _window_param(),
        "window_end": _window_param(),
    }


def replay_params() -> dict[str, Param]:
    """The landed window whose dead letters to re-process."""
    return {
        "module": Param(None, type=["null", "string"], enum=[None, *MODULES]),
        "entity": Param(None, type=["null", "string"], description="e.g. violations"),
        "window_start": _window_param(),
        "window_end": _window_param(),
    }


def retention_params() -> dict[str, Param]:
    return {"dry_run": Param(False, type="boolean", description="only list what would go")}


# --- Assets --------------------------------------------------------------------------------

# Updated by the lake gate once it published a window of one entity; the load runs on each.
LAKE_NORMALIZED: dict[tuple[str, str], Asset] = {
    (module.name, entity.name): Asset(
        name=f"lake.normalized.{module.name}.{entity.name}",
        uri=f"hub-lake://normalized/{module.name}/{entity.name}",
        group="lake",
    )
    for module in MODULES.values()
    for entity in module.entities
}


def lake_asset(module: str, entity: str) -> Asset:
    """The Asset that a published window of the module's entity updates."""
    return LAKE_NORMALIZED[(module, entity)]


# Updated by the replay of a window's dead letters once the lake gate published it.
LAKE_REPLAYED = Asset(name="lake.replayed", uri="hub-lake://replayed", group="lake")
# Updated by each load of windows into the landing tables; the dbt transform runs on it.
WAREHOUSE_LANDING = Asset(
    name="warehouse.landing", uri="hub-warehouse://landing", group="warehouse"
)
# Updated once the mart gate passed (or only warned) on what a transform run built: the feeds
# schedule on it, never on a single mart's Asset.
MARTS_VALIDATED = Asset(
    name="warehouse.marts.validated", uri="hub-warehouse://analytics/validated", group="warehouse"
)


def mart_asset(model: str) -> Asset:
    """The Asset of a dbt mart (``analytics.<model>``), updated once the model passed its tests.

    One per model under ``models/marts`` (the transform DAG reads them from the manifest).
    """
    return Asset(
        name=f"warehouse.marts.{model}", uri=f"hub-warehouse://analytics/{model}", group="warehouse"
    )


# Every Asset of the hub but the marts' (``mart_asset``).
ASSETS: frozenset[Asset] = frozenset(
    [*LAKE_NORMALIZED.values(), LAKE_REPLAYED, WAREHOUSE_LANDING, MARTS_VALIDATED]
)
