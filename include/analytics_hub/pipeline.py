"""One window through the hub without Airflow: stage → audit and publish → load.

The DAG tasks run these stages one per task, with the window's lease held
(``orchestration``), by calling the same stage functions this does: ``ingest_window``
(land), ``validate_window`` (the lake gate), ``warehouse.load_window`` (load). ``Pipeline``
is the sequence for everything that runs windows in one process: ``make dbt-dev``, the
benchmarks and the tests. ``Pipeline.run`` is the whole of it for several modules and
windows; the other methods are its steps. Nothing here skips the lake gate: the warehouse
loads only what it approved, whoever asks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from analytics_hub.connectors import Endpoint, ModuleClient
from analytics_hub.fx import FxRates
from analytics_hub.ingest import Manifest, ingest_window
from analytics_hub.lake import Lake
from analytics_hub.quality.gate import GateResult, validate_window
from analytics_hub.quality.store import QualityStore, open_store
from analytics_hub.settings import GateSettings, HubSettings, quality_url
from analytics_hub.sources import MODULES, Entity, Module, get_module
from analytics_hub.warehouse import (
    LoadResult,
    WarehouseConnection,
    ensure_landing_tables,
    load_windows,
)
from analytics_hub.windows import Window


@dataclass(frozen=True)
class WindowRun:
    """One window of one module through ``Pipeline.run``: the gate's result of each entity,
    and each entity's load (none when nothing was loaded)."""

    module: str
    window: Window
    landed: list[GateResult]
    loaded: list[LoadResult]


@dataclass
class Pipeline:
    """The lake, the lake gate and the inputs of normalization, for windows in a row.

    ``settings`` are also those of the module clients it opens (``client``, ``run``).
    """

    settings: HubSettings
    lake: Lake
    store: QualityStore
    gate: GateSettings
    rates: FxRates
    pseudonym_key: bytes | None

    @classmethod
    def from_settings(
        cls,
        settings: HubSettings,
        gate: GateSettings | None = None,
        *,
        pseudonym_key: bytes | None,
    ) -> Pipeline:
        gate = settings.quality if gate is None else gate
        return cls(
            settings=settings,
            lake=Lake.from_settings(settings),
            store=open_store(quality_url(settings, gate), settings, gate.work_dir),
            gate=gate,
            rates=FxRates.load(),
            pseudonym_key=pseudonym_key,
        )

    def client(self, module: Module | str, endpoint: Endpoint) -> ModuleClient:
        """A client of the module at ``endpoint``, with this pipeline's settings (close it:
        ``with``)."""
        return ModuleClient(
            get_module(module) if isinstance(module, str) else module, endpoint, self.settings
        )

    def stage(
        self, client: ModuleClient, entity: Entity, window: Window, **ingest: Any
    ) -> Manifest:
        """Pull, normalize and stage one window of one entity (the land task's work); the
        staged version waits for the gate (``audit``)."""
        return ingest_window(
            client.module,
            entity,
            window,
            client=client,
            lake=self.lake,
            rates=self.rates,
            pseudonym_key=self.pseudonym_key,
            **ingest,
        )

    def audit(
        self, module: Module, entity: Entity, window: Window, version: str | None = None
    ) -> GateResult:
        """Audit a staged version (by default the newest) and publish it if approved."""
        return validate_window(
            module,
            entity,
            window,
            lake=self.lake,
            store=self.store,
            settings=self.gate,
            version=version,
        )

    def land(
        self, client: ModuleClient, entity: Entity, window: Window, **ingest: Any
    ) -> GateResult:
        """Stage one window of one entity, audit it and publish it (``WindowBlockedError``
        if the gate blocks it: the lake's current version then stays as it was)."""
        manifest = self.stage(client, entity, window, **ingest)
        return self.audit(client.module, entity, window, manifest.version)

    def land_and_load(
        self, client: ModuleClient, conn: WarehouseConnection, window: Window
    ) -> list[LoadResult]:
        """Every entity of the client's module for one window: land each, then load each."""
        return self._window(client, window, conn).loaded

    def load(
        self,
        conn: WarehouseConnection,
        windows: Iterable[Window],
        modules: Iterable[Module | str] | None = None,
    ) -> list[LoadResult]:
        """Load what the lake holds of each window of each module (by default all of them),
        every entity, into landing tables made first where missing."""
        chosen = [
            get_module(m) if isinstance(m, str) else m
            for m in (MODULES.values() if modules is None else modules)
        ]
        windows = list(windows)
        ensure_landing_tables(conn, chosen)
        return [
            result
            for module in chosen
            for window in windows
            for result in load_windows(conn, self.lake, module, window)
        ]

    def run(
        self,
        endpoints: Mapping[str, Endpoint],
        windows: Sequence[Window],
        conn: WarehouseConnection | None = None,
    ) -> list[WindowRun]:
        """Each module of ``endpoints`` (by name), each of ``windows`` in the order given:
        land every entity of the window, then load every entity when given a warehouse
        connection (its landing tables made first where missing)."""
        modules = [get_module(name) for name in endpoints]
        if conn is not None:
            ensure_landing_tables(conn, modules)
        runs = []
        for module in modules:
            with self.client(module, endpoints[module.name]) as client:
                runs += [self._window(client, window, conn) for window in windows]
        return runs

    def _window(
        self, client: ModuleClient, window: Window, conn: WarehouseConnection | None
    ) -> WindowRun:
        module = client.module
        landed = [self.land(client, entity, window) for entity in module.entities]
        loaded = [] if conn is None else load_windows(conn, self.lake, module, window)
        return WindowRun(module.name, window, landed, loaded)
