"""The lake: Parquet in a local directory or an S3-compatible bucket, laid out by window.

Layout of the current version of every window (Hive-style partitions):

    <root>/<zone>/module=<m>/entity=<e>/date=<YYYY-MM-DD>/hour=<HH>/<window id>.<ext>

with zones ``raw`` (the pages as received), ``normalized`` (one schema per entity),
``deadletter`` (rejected records with reasons) and ``manifests`` (the window's counts,
gate verdict and checksums; a window is published when its manifest is there).

Write-audit-publish: nothing writes the current version directly. A pull (or a replay)
writes a *staged version* under a name of its own,

    <root>/staged/module=<m>/entity=<e>/date=<d>/hour=<h>/<window id>/<version>/<zone>.<ext>

the lake gate audits it there, and only an approved one is published: each of its objects
replaces the current one, which moves to ``replaced/`` (same layout as ``staged/``) and
is kept for ``HUB_LAKE_KEEP_REPLACED_DAYS``. A blocked version stays where it was written,
for inspection. Publishing moves the manifest last and can be resumed after a crash, so a
reader sees a window's old manifest until every new object is in place; the warehouse
load compares each object with its manifest's checksum and refuses a mismatch.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
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


STAGED = "staged"
REPLACED = "replaced"
# Objects moved into place before the manifest, which says the window is published.
PUBLISH_ORDER = (Zone.NORMALIZED, Zone.DEADLETTER, Zone.RAW)
# Verdicts of the lake gate under which a version may be published (and loaded).
APPROVED = frozenset({"passed", "warned", "quarantined"})


class PublishError(RuntimeError):
    """A staged version cannot be published: it is missing, unaudited or blocked."""


def new_version() -> str:
    """A name for a staged version: sortable by creation time, unique across workers."""
    return f"v{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"


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
    def __init__(
        self,
        filesystem: pafs.FileSystem,
        root: str,
        url: str,
        *,
        keep_replaced: timedelta = timedelta(days=7),
    ):
        self.fs = filesystem
        self.root = root.rstrip("/")
        self.url = url
        self.keep_replaced = keep_replaced  # how long a replaced or unpublished version stays

    @classmethod
    def from_settings(cls, settings: HubSettings) -> Lake:
        parsed = urlparse(settings.lake_url)
        keep = timedelta(days=settings.lake_keep_replaced_days)
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
            return cls(filesystem, root, settings.lake_url, keep_replaced=keep)
        if parsed.scheme not in ("", "file"):
            raise ValueError(
                f"HUB_LAKE_URL {settings.lake_url!r}: use a local path, file:// or s3://bucket/prefix"
            )
        root = parsed.path if parsed.scheme == "file" else settings.lake_url
        return cls(pafs.LocalFileSystem(), root, settings.lake_url, keep_replaced=keep)

    def path(self, zone: Zone, module: str, entity: str, window: Window) -> str:
        extension = "json" if zone is Zone.MANIFESTS else "parquet"
        return (
            f"{self.root}/{zone}/module={module}/entity={entity}/"
            f"date={window.start:%Y-%m-%d}/hour={window.start:%H}/{window.id}.{extension}"
        )

    def _window_dir(self, area: str, module: str, entity: str, window: Window) -> str:
        return (
            f"{self.root}/{area}/module={module}/entity={entity}/"
            f"date={window.start:%Y-%m-%d}/hour={window.start:%H}/{window.id}"
        )

    def staged_path(
        self, zone: Zone, module: str, entity: str, window: Window, version: str
    ) -> str:
        """Where a staged version of a window keeps one zone's object."""
        extension = "json" if zone is Zone.MANIFESTS else "parquet"
        return f"{self._window_dir(STAGED, module, entity, window)}/{version}/{zone}.{extension}"

    def staged_versions(self, module: str, entity: str, window: Window) -> list[str]:
        """The window's staged versions that were completely written (have a manifest),
        oldest first."""
        base = self._window_dir(STAGED, module, entity, window)
        if self.fs.get_file_info(base).type is not pafs.FileType.Directory:
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True))
        manifest = f"/{Zone.MANIFESTS}.json"
        return sorted(
            info.path.removeprefix(f"{base}/").removesuffix(manifest)
            for info in infos
            if info.type is pafs.FileType.File and info.path.endswith(manifest)
        )

    def checksum(self, path: str) -> str:
        """SHA-256 of an object's bytes, which the manifest keeps and the load compares."""
        digest = hashlib.sha256()
        with self.fs.open_input_stream(path) as source:
            while block := source.read(8 * 1024 * 1024):
                digest.update(block)
        return digest.hexdigest()

    def publish(
        self,
        module: str,
        entity: str,
        window: Window,
        version: str,
    ) -> dict[str, Any]:
        """Make an audited, approved staged version the window's current one.

        Each staged object replaces the current one (moved to ``replaced/``), the manifest
        last. Re-running after a crash resumes where it stopped; re-running after it
        completed changes nothing. Returns the published manifest.
        """
        current_manifest = self.path(Zone.MANIFESTS, module, entity, window)
        staged_manifest = self.staged_path(Zone.MANIFESTS, module, entity, window, version)
        if not self.exists(staged_manifest):
            if self.exists(current_manifest):
                published = self.read_json(current_manifest)
                if published.get("version") == version:
                    return published
            raise PublishError(
                f"{module}/{entity} {window}: no staged version {version!r} to publish"
            )
        manifest = self.read_json(staged_manifest)
        verdict = (manifest.get("quality") or {}).get("status")
        if verdict not in APPROVED:
            raise PublishError(
                f"{module}/{entity} {window}: version {version} is "
                f"{'not audited' if verdict is None else verdict}; only a version the lake "
                "gate approved is published"
            )
        stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"
        for zone in (*PUBLISH_ORDER, Zone.MANIFESTS):
            source = self.staged_path(zone, module, entity, window, version)
            target = self.path(zone, module, entity, window)
            if not self.exists(source):
                continue  # moved by an earlier, interrupted run; or not part of it
            if self.exists(target):
                replaced = self._window_dir(REPLACED, module, entity, window)
                self._move(target, f"{replaced}/{stamp}/{source.rsplit('/', 1)[1]}")
            self._move(source, target)
        self.prune(module, entity, window)
        return manifest

    def _move(self, source: str, target: str) -> None:
        self.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        self.fs.move(source, target)

    def prune(self, module: str, entity: str, window: Window) -> None:
        """Delete the window's replaced versions, and staged ones never published, once
        older than ``keep_replaced``; the newest staged version always stays."""
        cutoff = f"{datetime.now(UTC) - self.keep_replaced:%Y%m%dT%H%M%S%fZ}"
        for area in (REPLACED, STAGED):
            base = self._window_dir(area, module, entity, window)
            if self.fs.get_file_info(base).type is not pafs.FileType.Directory:
                continue
            entries = sorted(
                info.path
                for info in self.fs.get_file_info(pafs.FileSelector(base))
                if info.type is pafs.FileType.Directory
            )
            if area == STAGED:
                entries = entries[:-1]
            for entry in entries:
                name = entry.rsplit("/", 1)[1]
                if name.removeprefix("v")[: len(cutoff)] < cutoff:
                    self.fs.delete_dir(entry)

    def prune_versions(self, *, dry_run: bool = False) -> list[str]:
        """``prune`` for every window of the lake: what the daily maintenance runs, since
        most windows are never published again. Returns the versions deleted (with
        ``dry_run``, those it would delete)."""
        versions: dict[str, set[str]] = {}  # window directory -> its version directories
        for area in (REPLACED, STAGED):
            base = f"{self.root}/{area}"
            selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
            for info in self.fs.get_file_info(selector):
                if info.type is pafs.FileType.File:
                    version_dir = info.path.rsplit("/", 1)[0]
                    window_dir, _ = version_dir.rsplit("/", 1)
                    versions.setdefault(window_dir, set()).add(version_dir)
        cutoff = f"{datetime.now(UTC) - self.keep_replaced:%Y%m%dT%H%M%S%fZ}"
        deleted = []
        for window_dir, found in sorted(versions.items()):
            ordered = sorted(found)
            if window_dir.startswith(f"{self.root}/{STAGED}/"):
                ordered = ordered[:-1]  # the newest staged version stays
            for version_dir in ordered:
                name = version_dir.rsplit("/", 1)[1]
                if name.removeprefix("v")[: len(cutoff)] < cutoff:
                    if not dry_run:
                        self.fs.delete_dir(version_dir)
                    deleted.append(self.uri(version_dir))
        return deleted

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
