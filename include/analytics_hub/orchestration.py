"""What the DAGs' tasks run: connection lookups and task entry points.

DAG files stay thin: their tasks call the functions here, which resolve Airflow connections
into explicit arguments and then call the stage modules (``ingest``...), which know
nothing of Airflow. Everything here runs inside a task, never at DAG parse time. What the
DAGs are declared with (defaults, params, tags, Assets) is ``dag_glue``'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from airflow.sdk import Connection
from airflow.sdk.exceptions import AirflowNotFoundException
from psycopg.conninfo import make_conninfo

from analytics_hub.connectors import Endpoint, ModuleClient
from analytics_hub.fx import FxRates
from analytics_hub.ingest import ingest_window
from analytics_hub.lake import APPROVED, Lake, Zone
from analytics_hub.settings import ConfigurationError, HubSettings, load_settings, quality_url
from analytics_hub.sources import MODULES, Module, get_module
from analytics_hub.windows import (
    Window,
    split_window,
)

LAKE_CONN_ID = "hub_lake"
PSEUDONYM_CONN_ID = "hub_pseudonym_key"


LANDED_WINDOW_KEYS = ("window_start", "window_end", "landed", "dead_lettered")


def landed_window_extra(*manifests: dict[str, Any]) -> dict[str, Any]:
    """What a lake Asset event says about the windows of one entity it landed.

    ``windows`` lists every window. An event of a single window also carries that window's
    keys at the top level, the form that readers of single-window events know.
    """
    entities = {(manifest["module"], manifest["entity"]) for manifest in manifests}
    if len(entities) != 1:
        raise ValueError(f"an Asset event is about one entity's windows, not {sorted(entities)}")
    ((module, entity),) = entities
    windows = [{key: manifest[key] for key in LANDED_WINDOW_KEYS} for manifest in manifests]
    extra: dict[str, Any] = {"module": module, "entity": entity, "windows": windows}
    return (extra | windows[0]) if len(windows) == 1 else extra


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


def max_manual_span() -> timedelta:
    """The longest range one manual run may pull or load (``HUB_MAX_MANUAL_WINDOW_HOURS``)."""
    return timedelta(hours=load_settings().max_manual_window_hours)


def _params_window(params: dict[str, Any]) -> Window | None:
    start, end = params.get("window_start"), params.get("window_end")
    if not (start or end):
        return None
    if not (start and end):
        raise ConfigurationError("give both params window_start and window_end, or neither")
    return Window.parse(start, end)


def resolve_windows(
    module_name: str, params: dict[str, Any], data_interval_start: Any, data_interval_end: Any
) -> list[Window]:
    """The windows a run of the module's ingest pulls.

    A scheduled run (or a Backfill's) pulls its data interval. A trigger that names a window
    pulls the scheduled windows that window is made of: it must be aligned to the module's
    schedule and no longer than ``max_manual_span()`` (``WindowError`` says what would do).
    """
    module = get_module(module_name)
    window = _params_window(params)
    if window is not None:
        return split_window(module.schedule, window, module=module.name, max_span=max_manual_span())
    if data_interval_start is None or data_interval_end is None:
        raise ConfigurationError("this run has no data interval; pass window_start/window_end")
    return [Window.parse(data_interval_start, data_interval_end)]


@contextmanager
def refusing_bad_params() -> Iterator[None]:
    """Fail the task at once, without retries, on params it cannot run: a retry reads the same."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except (ConfigurationError, ValueError) as refused:
        raise AirflowFailException(str(refused)) from refused


def _window_lease(module: Module, entity_name: str, window: Window) -> Any:
    from analytics_hub.warehouse import window_lease

    return window_lease(warehouse_conninfo(), module.name, entity_name, window)


def land_entity(module_name: str, entity_name: str, window: Window) -> dict[str, Any]:
    """Pull, normalize and stage one window of one entity; returns the staged manifest."""
    module = get_module(module_name)
    with _window_lease(module, entity_name, window):
        return _stage(module, entity_name, window)


def _stage(module: Module, entity_name: str, window: Window) -> dict[str, Any]:
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
    """Audit the window's newest staged version and publish it; returns the published
    manifest.

    A version blocked by its data (schema drift, balance, too many bad rows) fails the task
    at once, without retries: the same data would fail the same way. A version blocked only
    for a collapse of its volume fails with retries, and each retry pulls the window again
    before auditing: the module may not have delivered yet. A version already approved
    whose publish was interrupted is published; one already published is returned as it
    is. Great Expectations is imported here, in the task, not at parse time.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from analytics_hub.quality.gate import TRANSIENT_BLOCKS, WindowBlockedError, validate_window
    from analytics_hub.quality.store import open_store

    module = get_module(module_name)
    entity = module.entity(entity_name)
    settings = settings_from_airflow()
    gate = settings.quality
    lake = Lake.from_settings(settings)
    current_path = lake.path(Zone.MANIFESTS, module.name, entity.name, window)
    with _window_lease(module, entity.name, window):
        current = lake.read_json(current_path) if lake.exists(current_path) else {}
        staged = lake.staged_versions(module.name, entity.name, window)
        if not staged or staged[-1] <= current.get("version", ""):
            if current:  # an earlier try published it
                return current
            raise AirflowFailException(f"{module.name}/{entity.name} {window} never landed")
        version = staged[-1]
        quality = lake.read_json(
            lake.staged_path(Zone.MANIFESTS, module.name, entity.name, window, version)
        ).get("quality")
        if quality and quality["status"] in APPROVED:
            return lake.publish(module.name, entity.name, window, version)
        if (
            quality
            and quality["status"] == "blocked"
            and set(quality["blocked"]) <= TRANSIENT_BLOCKS
        ):
            version = _stage(module, entity.name, window)["version"]  # a retry: ask again
        store = open_store(quality_url(settings, gate), settings, gate.work_dir)
        try:
            validate_window(
                module, entity, window, lake=lake, store=store, settings=gate, version=version
            )
        except WindowBlockedError as blocked:
            if blocked.transient:
                raise
            raise AirflowFailException(str(blocked)) from blocked
        return lake.read_json(current_path)


def prune_lake_versions(*, dry_run: bool = False) -> list[str]:
    """Delete the lake's replaced and never-published versions older than
    ``HUB_LAKE_KEEP_REPLACED_DAYS``; returns what went (or would go)."""
    return Lake.from_settings(settings_from_airflow()).prune_versions(dry_run=dry_run)


def replay_dead_letters(module_name: str, entity_name: str, window: Window) -> dict[str, Any]:
    """Stage a version of the window with its dead letters re-processed (see ``replay``);
    the lake gate then audits and publishes it."""
    from analytics_hub.replay import replay_window

    module = get_module(module_name)
    entity = module.entity(entity_name)
    settings = settings_from_airflow()
    conn = _optional_connection(module.conn_id)
    with _window_lease(module, entity.name, window):
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
    """(module, entity, window) of every window named by the lake Asset events of this run.

    An event names its windows in ``windows`` (see ``landed_window_extra``) or, for a single
    window, in its top-level ``window_start`` / ``window_end``.
    """
    landed: dict[tuple[str, str, Window], None] = {}
    for asset_events in (events or {}).values():
        for event in asset_events:
            extra = event.extra or {}
            if not {"module", "entity"} <= extra.keys():
                continue
            for bounds in extra.get("windows") or [extra]:
                if {"window_start", "window_end"} <= bounds.keys():
                    landed[(extra["module"], extra["entity"], Window.from_dict(bounds))] = None
    return list(landed)


def windows_from_params(params: dict[str, Any]) -> list[tuple[str, str, Window]]:
    """(module, entity, window) of a reload asked for by params; none when they name no window.

    ``module`` and ``entity`` narrow the reload (by default every entity of every module).
    The window is split into each module's scheduled windows and checked as an ingest run's
    is: landed windows lie on their module's schedule, so only those can be reloaded.
    """
    module_name, entity_name = params.get("module"), params.get("entity")
    window = _params_window(params)
    if window is None:
        if module_name or entity_name:
            raise ConfigurationError(
                "params module and entity narrow a reload of window_start..window_end: "
                "give the window too"
            )
        return []
    if module_name and module_name not in MODULES:
        raise ConfigurationError(
            f"unknown module {module_name!r} in params; known: {', '.join(MODULES)}"
        )
    modules = [MODULES[module_name]] if module_name else list(MODULES.values())
    if entity_name:
        known = sorted({entity.name for module in modules for entity in module.entities})
        if entity_name not in known:
            where = f"module {module_name!r}" if module_name else "any module"
            raise ConfigurationError(
                f"no entity {entity_name!r} in {where}; known: {', '.join(known)}"
            )
        modules = [m for m in modules if any(e.name == entity_name for e in m.entities)]
    span = max_manual_span()
    return [
        (module.name, entity.name, scheduled)
        for module in modules
        for scheduled in split_window(module.schedule, window, module=module.name, max_span=span)
        for entity in module.entities
        if not entity_name or entity.name == entity_name
    ]


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
    """Run the mart gate on the rows the builds added since it last let each mart through.

    Its scope is each mart's range of load stamps from its watermark in the warehouse (see
    ``quality.mart_gate``), not the worker's clock, so a build that runs hours after its
    loads is checked all the same. Returns the gate's summary, each mart's range included.
    A blocked build fails the task at once, without retries: the same rows would fail the
    same way (the blocked marts' watermarks stay, so the next run checks them again).
    Great Expectations is imported here, in the task, not at parse time.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from analytics_hub.quality.mart_gate import MartsBlockedError
    from analytics_hub.quality.mart_gate import validate_marts as run_mart_gate
    from analytics_hub.quality.store import open_store

    settings = settings_from_airflow()
    gate = settings.quality
    store = open_store(quality_url(settings, gate), settings, gate.work_dir)
    try:
        result = run_mart_gate(warehouse_conninfo(), store=store, settings=gate)
    except MartsBlockedError as blocked:
        raise AirflowFailException(str(blocked)) from blocked
    return result.summary()
