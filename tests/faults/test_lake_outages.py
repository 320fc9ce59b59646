"""The lake's storage fails under a stage or a publish: S3 goes away, a disk fills up.

- S3 (moto behind ``TcpProxy``) stops the moment the stage uploads its normalized object,
  and comes back: the stage fails naming the object, the published version is as it was,
  the retry publishes.
- S3 stops in the middle of a publish (the new normalized object in place, the old
  dead letters moved aside, the manifest not yet): the load refuses the half-published
  window; resuming the publish (what the validate task's retry does) completes it.
- The same half-published window, given to ``Pipeline.audit`` again: the gate resumes
  its publish instead of auditing what is left of it.
- The local disk is full: as a file-size limit on the stage's process (EFBIG; works
  anywhere) and as a small tmpfs (ENOSPC; where this user may mount one). The stage
  fails, the objects it was writing are removed, the published version is as it was, and
  once there is room the retry publishes.
"""

from __future__ import annotations

import random
import string
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from analytics_hub import warehouse
from analytics_hub.lake import Lake, Zone
from analytics_hub.pipeline import Pipeline
from analytics_hub.settings import HubSettings
from faults.bad_upstream import BadUpstream, listing
from faults.support import (
    PATH,
    POLICY,
    VIOLATIONS,
    WINDOW,
    StageWorker,
    assert_loads_exactly,
    current,
    keys,
    land,
    landed_keys,
    loaded_keys,
    local_settings,
    manifest,
    pages,
    pipeline,
    published,
    s3_settings,
    staged_files,
    violation,
    violations,
)
from faults.tcp_proxy import TcpProxy
from hub_dev.s3 import MotoS3Server

pytestmark = pytest.mark.integration

A = violations(30, "a")
B = violations(40, "b")


def _noise(n: int, size: int = 2_000) -> str:
    """Text no compressor shrinks much: a full disk needs bytes that stay bytes."""
    return "".join(random.Random(n).choices(string.ascii_letters + string.digits, k=size))


# About 450 kB of pages, and as much once normalized.
BULKY = [violation(n, "b", description=_noise(n)) for n in range(200)]


def assert_published_exactly(lake: Lake, expected: set[str]) -> None:
    landed = landed_keys(lake)
    assert len(landed) == len(set(landed)) and set(landed) == expected
    now = manifest(lake)
    assert now["balanced"] and now["landed"] == len(expected) and now["bad_pages"] == []


class S3Scene:
    """A lake on moto reached through a proxy, a pipeline on it, batch ``a`` published."""

    def __init__(
        self, s3: MotoS3Server, proxy: TcpProxy, upstream: BadUpstream, tmp_path: Path
    ) -> None:
        self.prefix = f"faults-{tmp_path.name}"
        self.settings = s3_settings(s3, self.prefix, endpoint_url=proxy.url)
        self.hub = pipeline(self.settings, tmp_path / "work")
        self.upstream = upstream
        self.land(A)
        self.before = published(self.hub.lake)

    @property
    def lake(self) -> Lake:
        return self.hub.lake

    def land(self, records: list[dict[str, Any]]) -> Any:
        self.upstream.route(PATH, listing(pages(records, 10)))
        return land(self.hub, self.upstream.url, self.upstream.token or "", self.settings)


@pytest.fixture
def proxy(s3_server: MotoS3Server) -> Iterator[TcpProxy]:
    with TcpProxy(s3_server.port) as running:
        yield running


@pytest.fixture
def s3_scene(
    s3_server: MotoS3Server, proxy: TcpProxy, module_server: BadUpstream, tmp_path: Path
) -> S3Scene:
    return S3Scene(s3_server, proxy, module_server, tmp_path)


def test_s3_gone_mid_write_fails_the_stage_and_the_retry_publishes(
    s3_scene: S3Scene, proxy: TcpProxy, landing: psycopg.Connection[Any]
) -> None:
    lake = s3_scene.lake
    gone = proxy.on(rb"PUT [^ ]*/normalized\.parquet\.inprogress-[^ ]*partNumber=", proxy.stop)

    with pytest.raises(OSError, match="AWS Error NETWORK_CONNECTION") as failure:
        s3_scene.land(B)

    assert gone.is_set()
    message = str(failure.value)
    # the object it could not write, and so the window, module and entity
    assert "staged/module=policy/entity=violations/date=2026-11-25/hour=10/" in message
    assert f"{WINDOW.id}/" in message
    proxy.start()  # S3 is back, with everything it held
    assert published(lake) == s3_scene.before
    assert lake.staged_versions(POLICY.name, VIOLATIONS.name, WINDOW) == []
    (failed,) = staged_files(lake).values()
    assert "manifests.json" not in failed, "a version without a manifest is never audited"
    assert_loads_exactly(landing, lake, keys(A))

    assert s3_scene.land(B).status == "passed"
    assert_published_exactly(lake, keys(B))
    assert_loads_exactly(landing, lake, keys(B))


def test_s3_gone_mid_publish_is_never_loaded_and_the_publish_resumes(
    s3_scene: S3Scene, proxy: TcpProxy, landing: psycopg.Connection[Any]
) -> None:
    lake = s3_scene.lake
    old_manifest = manifest(lake)
    assert_loads_exactly(landing, lake, keys(A))
    # the new normalized object is in place, the old dead letters are moved aside: S3 goes
    gone = proxy.on(rb"PUT /[^ ]*/deadletter/module%3Dpolicy/", proxy.stop)

    with pytest.raises(OSError, match="AWS Error NETWORK_CONNECTION"):
        s3_scene.land(B)

    assert gone.is_set()
    proxy.start()
    assert manifest(lake) == old_manifest, "the manifest moves last"
    assert not lake.exists(current(lake, Zone.DEADLETTER))
    with pytest.raises(warehouse.UnapprovedWindowError, match="not the version the gate"):
        warehouse.load_window(landing, lake, POLICY.name, VIOLATIONS.name, WINDOW)
    assert set(loaded_keys(landing)) == keys(A), "the refused load changed nothing"

    # The validate task's retry: the staged version was approved, so it is published.
    (version,) = lake.staged_versions(POLICY.name, VIOLATIONS.name, WINDOW)
    resumed = lake.publish(POLICY.name, VIOLATIONS.name, WINDOW, version)
    assert manifest(lake) == resumed and resumed["version"] == version
    assert_published_exactly(lake, keys(B))
    assert_loads_exactly(landing, lake, keys(B))
    assert staged_files(lake) == {}


# --- a local lake: the gate run again, a full disk -----------------------------------------


class LocalScene:
    """A local lake where batch ``a`` is published, and a module serving batch ``b``: 200
    violations, each with 2 kB of text that does not compress."""

    def __init__(self, root: Path, upstream: BadUpstream, work: Path) -> None:
        self.settings: HubSettings = local_settings(root)
        self.hub: Pipeline = pipeline(self.settings, work)
        self.upstream = upstream
        upstream.route(PATH, listing(pages(A, 10)))
        land(self.hub, upstream.url, upstream.token or "", self.settings)
        self.before = published(self.hub.lake)
        upstream.route(PATH, listing(pages(BULKY, 50)))

    @property
    def lake(self) -> Lake:
        return self.hub.lake

    def assert_untouched(self, conn: psycopg.Connection[Any]) -> None:
        """The published version as it was, and no staged object left, whole or partial."""
        assert published(self.lake) == self.before
        assert self.lake.staged_versions(POLICY.name, VIOLATIONS.name, WINDOW) == []
        assert staged_files(self.lake) == {}
        assert_loads_exactly(conn, self.lake, keys(A))

    def assert_retry_published(self, conn: psycopg.Connection[Any]) -> None:
        assert_published_exactly(self.lake, keys(BULKY))
        assert_loads_exactly(conn, self.lake, keys(BULKY))
        assert staged_files(self.lake) == {}


def test_rerunning_the_gate_on_a_half_published_version_resumes_the_publish(
    module_server: BadUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scene = LocalScene(tmp_path, module_server, tmp_path / "work")
    lake = scene.lake
    moves = 0
    real_move = Lake._move

    def storage_gone_after_two_moves(self: Lake, source: str, target: str) -> None:
        nonlocal moves
        if moves == 2:  # the old normalized object moved aside, the new one moved in
            raise OSError("storage gone")
        moves += 1
        real_move(self, source, target)

    monkeypatch.setattr(Lake, "_move", storage_gone_after_two_moves)
    with pytest.raises(OSError, match="storage gone"):
        land(scene.hub, module_server.url, module_server.token or "", scene.settings)
    monkeypatch.undo()

    (version,) = lake.staged_versions(POLICY.name, VIOLATIONS.name, WINDOW)
    scene.hub.audit(POLICY, VIOLATIONS, WINDOW, version)  # the Pipeline's retry of the gate
    assert_published_exactly(lake, keys(BULKY))


def test_a_full_disk_under_the_stage_process_keeps_the_window(
    module_server: BadUpstream, landing: psycopg.Connection[Any], tmp_path: Path
) -> None:
    full, retry = StageWorker(), StageWorker()
    try:
        scene = LocalScene(tmp_path, module_server, tmp_path / "work")
        full.run(
            scene.settings, module_server.url, module_server.token or "", file_size_limit=128 * 1024
        )
        report = full.result()
        assert not report["ok"] and report["returncode"] == 1
        assert report["error"] == "OSError" and "File too large" in report["message"], report
        scene.assert_untouched(landing)

        retry.run(scene.settings, module_server.url, module_server.token or "")
        report = retry.result()
        assert report["ok"], report
        assert scene.hub.audit(POLICY, VIOLATIONS, WINDOW, report["version"]).status == "passed"
        scene.assert_retry_published(landing)
    finally:
        full.close()
        retry.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 kB tmpfs, or a skip where mounting one is not allowed."""
    disk = tmp_path / "lake"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=False)


def test_a_full_disk_under_the_lake_keeps_the_window(
    small_disk: Path, module_server: BadUpstream, landing: psycopg.Connection[Any], tmp_path: Path
) -> None:
    scene = LocalScene(tmp_path, module_server, tmp_path / "work")  # lake at tmp_path/lake
    with pytest.raises(OSError, match="No space left on device"):
        land(scene.hub, module_server.url, module_server.token or "", scene.settings)
    scene.assert_untouched(landing)

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    assert land(scene.hub, module_server.url, module_server.token or "", scene.settings).status == (
        "passed"
    )
    scene.assert_retry_published(landing)
