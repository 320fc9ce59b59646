"""Where validation runs go: the GX context (defined here, in code), Data Docs, history.

The context is ephemeral: its data source, and each entity's suite, validation
definition and checkpoint, are built from ``sources`` at first use in a process, never read from a
generated ``great_expectations/`` folder. Only its validation results store and Data Docs
site are on disk, under the quality root (``config.quality_url``):

    <quality>/docs/index.html                      Data Docs: suites and validation runs
    <quality>/gx/validation_results/...            GX's JSON results (the docs' source)
    <quality>/validations/module=<m>/entity=<e>/date=<d>/hour=<h>/<window>__<run>.parquet
                                                   one row per expectation per run

The Parquet rows are the queryable history (``history`` reads them as one dataset). GX
Core writes its stores to a filesystem only, so for a quality root on S3 they live in
``HUB_QUALITY_WORK_DIR`` and each run's Data Docs pages are copied up.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import great_expectations as gx
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
from great_expectations.checkpoint import UpdateDataDocsAction
from great_expectations.data_context import AbstractDataContext
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.datasource.fluent import PandasDatasource
from great_expectations.execution_engine import pandas_execution_engine

from analytics_hub.lake import PARTITIONING, Lake
from analytics_hub.quality.suites import build_suite, suite_name
from analytics_hub.settings import HubSettings
from analytics_hub.sources import MODULES
from analytics_hub.windows import Window

DATA_SOURCE = "lake"
BATCH_DEFINITION = "window"
DOCS_SITE = "lake_gate"
HISTORY_PARTITIONING = PARTITIONING  # the lake's: module=/entity=/date=/hour=
HISTORY_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("validated_at", pa.timestamp("us", "UTC")),
        ("gate", pa.string()),
        ("window_start", pa.timestamp("us", "UTC")),
        ("window_end", pa.timestamp("us", "UTC")),
        ("window_status", pa.string()),
        ("suite", pa.string()),
        ("expectation", pa.string()),
        ("expectation_type", pa.string()),
        ("severity", pa.string()),
        ("scope", pa.string()),
        ("success", pa.bool_()),
        ("unexpected_count", pa.int64()),
        ("unexpected_percent", pa.float64()),
        ("observed_value", pa.string()),
        ("exception", pa.string()),
        ("action", pa.string()),
    ]
)


def checkpoint_name(module: str, entity: str) -> str:
    return f"lake.{module}.{entity}"


@dataclass(frozen=True)
class QualityStore:
    """The quality root (a Lake on its own URL) and the local folders of GX's stores."""

    root: Lake
    gx_dir: Path  # GX's validation results and Data Docs, on the local filesystem

    @property
    def local(self) -> bool:
        return isinstance(self.root.fs, pafs.LocalFileSystem)

    @property
    def docs_index(self) -> str:
        return self.root.uri(f"{self.root.root}/docs/index.html")

    def context(self, docs_limit: int) -> AbstractDataContext:
        return _context(str(self.gx_dir), docs_limit)[0]

    def checkpoint(self, module: str, entity: str, docs_limit: int) -> gx.Checkpoint:
        return _checkpoint(str(self.gx_dir), docs_limit, module, entity)

    def history_path(self, module: str, entity: str, window: Window, run_stamp: str) -> str:
        return (
            f"{self.root.root}/validations/module={module}/entity={entity}/"
            f"date={window.start:%Y-%m-%d}/hour={window.start:%H}/{window.id}__{run_stamp}.parquet"
        )

    def record(self, path: str, rows: list[dict[str, Any]]) -> None:
        with self.root.parquet_writer(path, HISTORY_SCHEMA) as writer:
            writer.write_table(pa.Table.from_pylist(rows, HISTORY_SCHEMA))

    def history(self) -> ds.Dataset:
        """Every recorded expectation run, with module/entity/date/hour partition columns."""
        base = f"{self.root.root}/validations"
        if self.root.fs.get_file_info(base).type is not pafs.FileType.Directory:
            return ds.dataset(pa.table({}, HISTORY_SCHEMA))
        return ds.dataset(
            base,
            filesystem=self.root.fs,
            format="parquet",
            partitioning=HISTORY_PARTITIONING,
        )

    def publish_docs(self, since: datetime) -> None:
        """Copy the Data Docs pages written since ``since`` up to a remote quality root."""
        if self.local:
            return
        local = self.gx_dir / "docs"
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            if datetime.fromtimestamp(path.stat().st_mtime, since.tzinfo) < since:
                continue
            target = f"{self.root.root}/docs/{path.relative_to(local).as_posix()}"
            self.root.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
            with self.root.fs.open_output_stream(target) as sink:
                sink.write(path.read_bytes())


def open_store(quality_url: str, lake_settings: HubSettings, work_dir: str) -> QualityStore:
    """The store for a quality URL (local or S3, with the lake's S3 settings)."""
    root = Lake.from_settings(lake_settings.model_copy(update={"lake_url": quality_url}))
    if isinstance(root.fs, pafs.LocalFileSystem):
        gx_dir = Path(root.root)
    else:
        gx_dir = Path(work_dir) / root.root.replace("/", "_")
    return QualityStore(root=root, gx_dir=gx_dir)


@functools.cache
def _context(gx_dir: str, docs_limit: int) -> tuple[AbstractDataContext, PandasDatasource]:
    """One GX context per process and store: its stores, Data Docs site and data source."""
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    config.stores["validation_results_store"] = {
        "class_name": "ValidationResultsStore",
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": f"{gx_dir}/gx/validation_results",
        },
    }
    config.data_docs_sites = {
        DOCS_SITE: {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": f"{gx_dir}/docs",
            },
            "site_index_builder": {
                "class_name": "DefaultSiteIndexBuilder",
                "validation_results_limit": docs_limit,
            },
        }
    }
    # GX fingerprints every in-memory batch below this size by hashing all of its rows, a
    # cost in proportion to the window; a lake window is named by its window id instead.
    pandas_execution_engine.HASH_THRESHOLD = 0
    context = gx.get_context(mode="ephemeral", project_config=config)
    return context, context.data_sources.add_pandas(DATA_SOURCE)


@functools.cache
def _checkpoint(gx_dir: str, docs_limit: int, module_name: str, entity_name: str) -> gx.Checkpoint:
    """The entity's suite, validation definition and checkpoint, added at first use."""
    context, source = _context(gx_dir, docs_limit)
    module = MODULES[module_name]
    entity = module.entity(entity_name)
    asset = source.add_dataframe_asset(f"{module.name}.{entity.name}")
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(
            name=suite_name(module, entity),
            data=asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION),
            suite=context.suites.add(build_suite(module, entity)),
        )
    )
    return context.checkpoints.add(
        gx.Checkpoint(
            name=checkpoint_name(module.name, entity.name),
            validation_definitions=[definition],
            actions=[UpdateDataDocsAction(name="data_docs", site_names=[DOCS_SITE])],
            result_format={"result_format": "COMPLETE", "return_unexpected_index_query": False},
        )
    )
