"""What Airflow needs from the hub: Assets, connection lookups and task entry points.

DAG files stay thin: they call the functions here, which resolve Airflow connections
into explicit arguments and then call the stage modules (``ingest``...), which know
nothing of Airflow. Everything here runs inside a task, never at DAG parse time,
except building Asset objects (pure data).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset, Connection
from airflow.sdk.exceptions import AirflowNotFoundException
from psycopg.conninfo import make_conninfo

from analytics_hub.connectors import Endpoint, ModuleClient
from analytics_hub.fx import FxRates
from analytics_hub.ingest import ingest_window
from analytics_hub.lake import Lake, Zone
from analytics_hub.settings import ConfigurationError, HubSettings, load_settings
from analytics_hub.sources import Module, get_module
from analytics_hub.windows import Window

LAKE_CONN_ID = "hub_lake"
PSEUDONYM_CONN_ID = "hub_pseudonym_key"


def lake_asset(module: str, entity: str) -> Asset:
    """The Asset that a landed window of one entity updates; downstream DAGs schedule on it."""
    return Asset(
        name=f"lake.normalized.{module}.{entity}",
        uri=f"hub-lake://normalized/{module}/{entity}",
        group="lake",
    )


def landed_window_extra(manifest: dict[str, Any]) -> dict[str, Any]:
    """What a lake Asset event says about the window it landed."""
    keys = ("module", "entity", "window_start", "window_end", "landed", "dead_lettered")
    return {key: manifest[key] for key in keys}


def _optional_connection(conn_id: str) -> Connection | None:
    try:
        return Connection.get(conn_id)
    except AirflowNotFoundException:
        return None


def settings_from_airflow() -> HubSettings:
    """``HUB_*`` settings, overlaid with the ``hub_lake`` and ``hub_pseudonym_key`` connections."""
    overrides: dict[str, object] = {}
    lake = _optional_connection(LAKE_CONN_ID)
    if lake is not None:
        extra = lake.extra_dejson
        overrides |= {
            key: value
            for key, value in {
                "s3_access_key_id": lake.login,
                "s3_secret_access_key": lake.password,
                "s3_endpoint_url": extra.get("endpoint_url"),
                "s3_region": extra.get("region_name"),
                "lake_url": extra.get("lake_url"),
            }.items()
            if value
        }
    secret = _optional_connection(PSEUDONYM_CONN_ID)
    if secret is not None and secret.password:
        overrides["pseudonym_key"] = secret.password
    return load_settings(**overrides)


def module_endpoint(module: Module) -> Endpoint:
    """The module's base URL, token and local zone, from its Airflow connection ``hub_<module>``.

    The connection's extra ``timezone`` names the zone of the module's zoneless times.
    """
    conn = _optional_connection(module.conn_id)
    if conn is None or not conn.host:
        raise ConfigurationError(
            f"Airflow connection {module.conn_id!r} (module {module.service}) is missing or has "
            "no host; set it to the module's base URL with the bearer token as password"
        )
    if not conn.password:
        raise ConfigurationError(f"Airflow connection {module.conn_id!r} has no token (password)")
    host = conn.host if "://" in conn.host else f"{conn.schema or 'http'}://{conn.host}"
    if conn.port and "://" not in conn.host:
        host = f"{host}:{conn.port}"
    timezone = conn.extra_dejson.get("timezone")
    return Endpoint(base_url=host, token=conn.password, local_timezone=timezone)


def resolve_window(
    params: dict[str, Any], data_interval_start: Any, data_interval_end: Any
) -> Window:
    """The run's data interval, unless the trigger named a window (a manual backfill)."""
    start, end = params.get("window_start"), params.get("window_end")
    if start or end:
        if not (start and end):
            raise ConfigurationError("give both params window_start and window_end, or neither")
        return Window.parse(start, end)
    if data_interval_start is None or data_interval_end is None:
        raise ConfigurationError("this run has no data interval; pass window_start/window_end")
    return Window.parse(data_interval_start, data_interval_end)


def land_entity(module_name: str, entity_name: str, window: Window) -> dict[str, Any]:
    """Pull, normalize and land one window of one entity; returns its manifest."""
    module = get_module(module_name)
    entity = module.entity(entity_name)
    settings = settings_from_airflow()
    key = settings.require_pseudonym_key() if entity.has_personal_data else None
    with ModuleClient(module, module_endpoint(module), settings) as client:
        manifest = ingest_window(
            module,
            entity,
            window,
            client=client,
            lake=Lake.from_settings(settings),
            rates=FxRates.load(),
            pseudonym_key=key,
        )
    return manifest.to_dict()


def validate_landed(module_name: str, entity_name: str, window: Window) -> dict[str, Any]:
    """Run the lake gate on a landed window; returns its manifest as the gate left it.

    A window blocked by its data (schema drift, balance, too many bad rows) fails the task
    at once, without retries: the same data would fail the same way. A window blocked only
    for a collapse of its volume fails with retries, and each retry pulls the window again
    before auditing it: the module may not have delivered yet. Great Expectations is
    imported here, in the task, not at parse time.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from analytics_hub.quality.config import load_gate_settings, quality_url
    from analytics_hub.quality.gate import (
        TRANSIENT_BLOCKS,
        WindowBlockedError,
        validate_window,
    )
    from analytics_hub.quality.store import open_store

    module = get_module(module_name)
    entity = module.entity(entity_name)
    settings = settings_from_airflow()
    gate = load_gate_settings()
    lake = Lake.from_settings(settings)
    manifest_path = lake.path(Zone.MANIFESTS, module.name, entity.name, window)
    quality = lake.read_json(manifest_path).get("quality") if lake.exists(manifest_path) else None
    blocked_by = set(quality["blocked"]) if quality and quality["status"] == "blocked" else set()
    if blocked_by and blocked_by <= TRANSIENT_BLOCKS:
        land_entity(module_name, entity_name, window)  # a retry: ask the module again
    store = open_store(quality_url(settings, gate), settings, gate.work_dir)
    try:
        validate_window(module, entity, window, lake=lake, store=store, settings=gate)
    except WindowBlockedError as blocked:
        if blocked.transient:
            raise
        raise AirflowFailException(str(blocked)) from blocked
    return lake.read_json(manifest_path)


LAKE_REPLAYED = Asset(name="lake.replayed", uri="hub-lake://replayed", group="lake")


def replay_dead_letters(module_name: str, entity_name: str, window: Window) -> dict[str, Any]:
    """Re-process one window's dead letters through normalization (see ``replay``)."""
    from analytics_hub.replay import replay_window

    module = get_module(module_name)
    entity = module.entity(entity_name)
    settings = settings_from_airflow()
    conn = _optional_connection(module.conn_id)
    result = replay_window(
        module,
        entity,
        window,
        lake=Lake.from_settings(settings),
        rates=FxRates.load(),
        pseudonym_key=settings.require_pseudonym_key() if entity.has_personal_data else None,
        local_timezone=conn.extra_dejson.get("timezone") if conn is not None else None,
    )
    return result.to_dict() | window.query()


WAREHOUSE_CONN_ID = "hub_warehouse"
WAREHOUSE_LANDING = Asset(
    name="warehouse.landing", uri="hub-warehouse://landing", group="warehouse"
)


def mart_asset(model: str) -> Asset:
    """The Asset of a dbt mart (``analytics.<model>``), updated once the model passed its tests."""
    return Asset(
        name=f"warehouse.marts.{model}", uri=f"hub-warehouse://analytics/{model}", group="warehouse"
    )


# Updated once the mart gate passed (or only warned) on what a transform run built: the feeds
# schedule on it, never on a single mart's Asset.
MARTS_VALIDATED = Asset(
    name="warehouse.marts.validated", uri="hub-warehouse://analytics/validated", group="warehouse"
)


def warehouse_conninfo() -> str:
    """A libpq connection string from the Airflow connection ``hub_warehouse``."""
    conn = _optional_connection(WAREHOUSE_CONN_ID)
    if conn is None or not conn.host:
        raise ConfigurationError(
            f"Airflow connection {WAREHOUSE_CONN_ID!r} is missing or has no host: point it at "
            "the warehouse (TimescaleDB or PostgreSQL)"
        )
    return make_conninfo(
        host=conn.host,
        port=conn.port or 5432,
        user=conn.login or None,
        password=conn.password or None,
        dbname=conn.schema or "postgres",
    )


def windows_from_asset_events(events: Any) -> list[tuple[str, str, Window]]:
    """(module, entity, window) of every lake Asset event that triggered this run."""
    landed: dict[tuple[str, str, Window], None] = {}
    for asset_events in (events or {}).values():
        for event in asset_events:
            extra = event.extra or {}
            if {"module", "entity", "window_start", "window_end"} <= extra.keys():
                window = Window.parse(extra["window_start"], extra["window_end"])
                landed[(extra["module"], extra["entity"], window)] = None
    return list(landed)


def load_landed_windows(landed: list[tuple[str, str, Window]]) -> list[dict[str, Any]]:
    """Load each landed window of each entity into its landing table, one transaction each."""
    import psycopg

    from analytics_hub import warehouse

    settings = settings_from_airflow()
    lake = Lake.from_settings(settings)
    results = []
    with psycopg.connect(warehouse_conninfo(), autocommit=True) as conn:
        warehouse.ensure_landing_tables(conn)
        for module, entity, window in landed:
            result = warehouse.load_window(conn, lake, module, entity, window)
            results.append(
                {
                    "table": result.table,
                    "window": str(window),
                    "rows": result.rows,
                    "replaced": result.replaced,
                    "seconds": round(result.seconds, 3),
                }
            )
    return results


def validate_marts() -> dict[str, Any]:
    """Run the mart gate on the rows loaded within ``HUB_QUALITY_MART_WINDOW_HOURS``.

    A blocked build fails the task at once, without retries: the same rows would fail the
    same way. Great Expectations is imported here, in the task, not at parse time.
    """
    from datetime import UTC, datetime, timedelta

    from airflow.sdk.exceptions import AirflowFailException

    from analytics_hub.quality.config import load_gate_settings, quality_url
    from analytics_hub.quality.mart_gate import MartsBlockedError
    from analytics_hub.quality.mart_gate import validate_marts as run_mart_gate
    from analytics_hub.quality.store import open_store

    settings = settings_from_airflow()
    gate = load_gate_settings()
    store = open_store(quality_url(settings, gate), settings, gate.work_dir)
    since = datetime.now(UTC) - timedelta(hours=gate.mart_window_hours)
    try:
        result = run_mart_gate(warehouse_conninfo(), since=since, store=store, settings=gate)
    except MartsBlockedError as blocked:
        raise AirflowFailException(str(blocked)) from blocked
    return result.summary()
