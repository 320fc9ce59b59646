"""The lake: Parquet in a local directory or an S3-compatible bucket, laid out by window.

Layout (Hive-style partitions, one object per window, so a re-run replaces):

    <root>/<zone>/module=<m>/entity=<e>/date=<YYYY-MM-DD>/hour=<HH>/<window id>.<ext>

with zones ``raw`` (the pages as received), ``normalized`` (one schema per entity),
``deadletter`` (rejected records with reasons) and ``manifests`` (the batch's counts,
written last: a window is complete when its manifest is there).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from enum import StrEnum
from typing import Any
from urllib.parse import urlparse

import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from analytics_hub.settings import HubSettings
from analytics_hub.windows import Window


class Zone(StrEnum):
    RAW = "raw"
    NORMALIZED = "normalized"
    DEADLETTER = "deadletter"
    MANIFESTS = "manifests"


PARTITIONING = ds.partitioning(
    pa.schema(
        [
            ("module", pa.string()),
            ("entity", pa.string()),
            ("date", pa.string()),
            ("hour", pa.string()),
        ]
    ),
    flavor="hive",
)


class Lake:
    def __init__(self, filesystem: pafs.FileSystem, root: str, url: str):
        self.fs = filesystem
        self.root = root.rstrip("/")
        self.url = url

    @classmethod
    def from_settings(cls, settings: HubSettings) -> Lake:
        parsed = urlparse(settings.lake_url)
        if parsed.scheme == "s3":
            endpoint = urlparse(settings.s3_endpoint_url) if settings.s3_endpoint_url else None
            key = settings.s3_access_key_id
            secret = settings.s3_secret_access_key
            filesystem = pafs.S3FileSystem(
                access_key=key.get_secret_value() if key else None,
                secret_key=secret.get_secret_value() if secret else None,
                region=settings.s3_region,
                endpoint_override=endpoint.netloc if endpoint else None,
                scheme=endpoint.scheme if endpoint else "https",
            )
            root = f"{parsed.netloc}{parsed.path}"
            return cls(filesystem, root, settings.lake_url)
        if parsed.scheme not in ("", "file"):
            raise ValueError(
                f"HUB_LAKE_URL {settings.lake_url!r}: use a local path, file:// or s3://bucket/prefix"
            )
        root = parsed.path if parsed.scheme == "file" else settings.lake_url
        return cls(pafs.LocalFileSystem(), root, settings.lake_url)

    def path(self, zone: Zone, module: str, entity: str, window: Window) -> str:
        extension = "json" if zone is Zone.MANIFESTS else "parquet"
        return (
            f"{self.root}/{zone}/module={module}/entity={entity}/"
            f"date={window.start:%Y-%m-%d}/hour={window.start:%H}/{window.id}.{extension}"
        )

    def uri(self, path: str) -> str:
        return f"s3://{path}" if isinstance(self.fs, pafs.S3FileSystem) else path

    @contextmanager
    def _staged(self, path: str) -> Iterator[str]:
        """Write to a staging name, then move into place: readers see old or new, not half."""
        staging = f"{path}.inprogress-{uuid.uuid4().hex}"
        self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        try:
            yield staging
            self.fs.move(staging, path)
        except BaseException:
            with suppress(OSError):  # nothing staged yet, or already gone
                self.fs.delete_file(staging)
            raise

    @contextmanager
    def parquet_writer(
        self, path: str, schema: pa.Schema, **options: Any
    ) -> Iterator[pq.ParquetWriter]:
        """A streaming Parquet writer (one row group per write) that lands atomically.

        ``options`` go to ``pyarrow.parquet.ParquetWriter`` (default: zstd compression).
        """
        with self._staged(path) as staging, self.fs.open_output_stream(staging) as sink:
            writer = pq.ParquetWriter(sink, schema, **({"compression": "zstd"} | options))
            try:
                yield writer
            finally:
                writer.close()

    def write_json(self, path: str, document: dict[str, Any]) -> None:
        with self._staged(path) as staging, self.fs.open_output_stream(staging) as sink:
            sink.write(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))

    def read_json(self, path: str) -> dict[str, Any]:
        with self.fs.open_input_stream(path) as source:
            document: dict[str, Any] = orjson.loads(source.read())
            return document

    def exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type is pafs.FileType.File

    def dataset(self, zone: Zone, module: str, entity: str) -> ds.Dataset:
        """Every window landed for one entity, with partition columns."""
        base = f"{self.root}/{zone}"
        selector = pafs.FileSelector(f"{base}/module={module}/entity={entity}", recursive=True)
        files = (
            [
                info.path
                for info in self.fs.get_file_info(selector)
                if info.type is pafs.FileType.File and info.path.endswith(".parquet")
            ]
            if self.fs.get_file_info(selector.base_dir).type is pafs.FileType.Directory
            else []
        )
        return ds.dataset(
            sorted(files),
            filesystem=self.fs,
            format="parquet",
            partitioning=PARTITIONING,
            partition_base_dir=base,
        )

    def read(self, zone: Zone, module: str, entity: str) -> pa.Table:
        return self.dataset(zone, module, entity).to_table()

    def manifests(self) -> list[dict[str, Any]]:
        base = f"{self.root}/{Zone.MANIFESTS}"
        if self.fs.get_file_info(base).type is not pafs.FileType.Directory:
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True))
        return [
            self.read_json(info.path)
            for info in sorted(infos, key=lambda i: i.path)
            if info.type is pafs.FileType.File and info.path.endswith(".json")
        ]
