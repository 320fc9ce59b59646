"""One window through the hub without Airflow: stage → audit and publish → load.

The DAG tasks call the same stage functions, one per task, with the window's lease held
(``orchestration``); this is the sequence for everything that runs a window in one
process: ``make dbt-dev``, the benchmarks and the tests. Nothing here skips the lake
gate: the warehouse loads only what it approved, whoever asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analytics_hub.connectors import ModuleClient
from analytics_hub.fx import FxRates
from analytics_hub.ingest import ingest_window
from analytics_hub.lake import Lake
from analytics_hub.quality.config import GateSettings, load_gate_settings, quality_url
from analytics_hub.quality.gate import GateResult, validate_window
from analytics_hub.quality.store import QualityStore, open_store
from analytics_hub.settings import HubSettings
from analytics_hub.sources import Entity, Module
from analytics_hub.warehouse import LoadResult, WarehouseConnection, load_window
from analytics_hub.windows import Window


@dataclass
class Pipeline:
    """The lake, the lake gate and the inputs of normalization, for windows in a row."""

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
        gate = gate or load_gate_settings()
        return cls(
            lake=Lake.from_settings(settings),
            store=open_store(quality_url(settings, gate), settings, gate.work_dir),
            gate=gate,
            rates=FxRates.load(),
            pseudonym_key=pseudonym_key,
        )

    def land(
        self, client: ModuleClient, entity: Entity, window: Window, **ingest: Any
    ) -> GateResult:
        """Stage one window of one entity, audit it and publish it (``WindowBlockedError``
        if the gate blocks it: the lake's current version then stays as it was)."""
        module = client.module
        manifest = ingest_window(
            module,
            entity,
            window,
            client=client,
            lake=self.lake,
            rates=self.rates,
            pseudonym_key=self.pseudonym_key,
            **ingest,
        )
        return self.audit(module, entity, window, manifest.version)

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

    def land_and_load(
        self, client: ModuleClient, conn: WarehouseConnection, window: Window
    ) -> list[LoadResult]:
        """Every entity of the client's module for one window: land each, then load each."""
        module = client.module
        for entity in module.entities:
            self.land(client, entity, window)
        return [load_window(conn, self.lake, module, entity, window) for entity in module.entities]
