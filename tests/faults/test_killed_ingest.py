"""A land task killed with SIGKILL while it writes its staged version, on both kinds of lake.

The stage runs in a child process (``StageWorker``), as it does in an Airflow worker, and is
killed mid-write at a point the test chooses, not a moment it guesses:

- local lake: the module hangs on page 4 of 6; the kill comes once the staged objects
  are open and hold row groups of the pages before it (no footer yet);
- S3 lake (moto behind ``TcpProxy``): the upload of the normalized object's part is held
  on the wire; the kill comes while the worker waits on it.

Before: batch ``a`` is the window's published version. After the kill: that version byte
for byte, the load still gives batch ``a``, and what the killed worker left in ``staged/``
is an incomplete version (no manifest) that the gate does not see. A retry in a new
process stages batch ``b``; the gate publishes it; the load gives batch ``b``, once each.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from analytics_hub.lake import Lake
from analytics_hub.quality.gate import WindowBlockedError
from analytics_hub.settings import HubSettings
from faults.bad_upstream import BadUpstream, Request, json_page, listing
from faults.support import (
    PATH,
    POLICY,
    VIOLATIONS,
    WINDOW,
    StageWorker,
    assert_loads_exactly,
    is_partial,
    keys,
    land,
    landed_keys,
    local_settings,
    manifest,
    pages,
    pipeline,
    prune_when_kept_days_passed,
    published,
    s3_settings,
    staged_files,
    staged_root,
    violations,
    wait_for,
)
from faults.tcp_proxy import TcpProxy
from hub_dev.s3 import MotoS3Server

pytestmark = pytest.mark.integration

A = violations(30, "a")
B = violations(600, "b")
B_PAGES = pages(B, 100)
HANG_AT = 4


@pytest.fixture
def workers() -> Iterator[tuple[StageWorker, StageWorker]]:
    """The killed worker and the one that retries, both importing while the test sets up."""
    killed, retry = StageWorker(), StageWorker()
    try:
        yield killed, retry
    finally:
        killed.close()
        retry.close()


def hanging_page(release: threading.Event) -> Any:
    """Page ``HANG_AT`` of batch ``b`` answers only once ``release`` is set."""

    def answer(request: Request) -> Any:
        release.wait(60)
        return json_page(B_PAGES[HANG_AT], f"page-{HANG_AT + 1}")

    return listing(B_PAGES, faults={HANG_AT: answer})


def test_a_stage_killed_mid_write_on_a_local_lake_costs_nothing(
    workers: tuple[StageWorker, StageWorker],
    module_server: BadUpstream,
    landing: psycopg.Connection[Any],
    tmp_path: Path,
) -> None:
    killed, retry = workers
    settings = local_settings(tmp_path)
    hub = pipeline(settings, tmp_path / "work")
    module_server.route(PATH, listing(pages(A, 10)))
    land(hub, module_server.url, module_server.token or "", settings)
    lake = hub.lake
    before = published(lake)
    assert_loads_exactly(landing, lake, keys(A))

    release = threading.Event()
    module_server.route(PATH, hanging_page(release))
    try:
        killed.run(settings, module_server.url, module_server.token or "")
        wait_for(
            lambda: f"page-{HANG_AT}" in [r.page_token for r in module_server.requests(PATH)],
            "the worker to ask for the hanging page",
        )
        wait_for(lambda: _written(lake) > 1024, "row groups in the staged raw object")
        assert killed.kill() == -signal.SIGKILL
    finally:
        release.set()

    ((version, partials),) = staged_files(lake).items()
    assert len(partials) == 3 and all(is_partial(name) for name in partials)
    for name in partials:  # half-written: no footer, nothing a reader could take for whole
        with pytest.raises(pa.ArrowInvalid):
            pq.read_metadata(f"{staged_root(lake)}/{version}/{name}", filesystem=lake.fs)
    _assert_untouched(hub, before, landing)

    assert_retry_publishes_b(hub, retry, settings, module_server, landing)
    assert staged_files(lake) == {version: partials}, "only the killed worker's debris"
    prune_when_kept_days_passed(lake)
    assert staged_files(lake) == {}


def test_a_stage_killed_mid_upload_on_an_s3_lake_costs_nothing(
    workers: tuple[StageWorker, StageWorker],
    module_server: BadUpstream,
    s3_server: MotoS3Server,
    landing: psycopg.Connection[Any],
    tmp_path: Path,
) -> None:
    killed, retry = workers
    with TcpProxy(s3_server.port) as proxy:
        prefix = f"faults-kill-{tmp_path.name}"
        settings = s3_settings(s3_server, prefix, endpoint_url=proxy.url)
        hub = pipeline(settings, tmp_path / "work")
        module_server.route(PATH, listing(pages(A, 10)))
        land(hub, module_server.url, module_server.token or "", settings)
        lake = hub.lake
        before = published(lake)
        assert_loads_exactly(landing, lake, keys(A))

        module_server.route(PATH, listing(B_PAGES))
        held = proxy.on(rb"PUT [^ ]*/normalized\.parquet\.inprogress-[^ ]*partNumber=")
        killed.run(settings, module_server.url, module_server.token or "")
        assert held.wait(120), "the worker never uploaded its normalized object"
        assert killed.kill() == -signal.SIGKILL

        files = staged_files(lake)
        (version,) = files
        assert not any(name.startswith("manifests.") for name in files[version])
        # The uploads the worker had begun stay open and invisible in the bucket: only a
        # lifecycle rule (AbortIncompleteMultipartUpload) reclaims them.
        uploads = (
            s3_server.client()
            .list_multipart_uploads(Bucket=s3_server.bucket, Prefix=f"{prefix}/staged/")
            .get("Uploads", [])
        )
        began = {upload["Key"].rsplit("/", 1)[1].split(".", 1)[0] for upload in uploads}
        assert "normalized" in began
        assert all(f"/{version}/" in u["Key"] and is_partial(u["Key"]) for u in uploads), (
            "every open upload is a staging name of the killed version"
        )
        _assert_untouched(hub, before, landing)

        assert_retry_publishes_b(hub, retry, settings, module_server, landing)
        assert set(staged_files(lake)) <= {version}, "only the killed worker's debris"
        prune_when_kept_days_passed(lake)
        assert staged_files(lake) == {}


def _written(lake: Lake) -> int:
    """Bytes in the staged raw object being written (0 before it exists)."""
    selector = pafs.FileSelector(staged_root(lake), recursive=True, allow_not_found=True)
    return max(
        (
            i.size or 0
            for i in lake.fs.get_file_info(selector)
            if "/raw.parquet.inprogress-" in i.path
        ),
        default=0,
    )


def _assert_untouched(hub: Any, before: dict[str, str], conn: psycopg.Connection[Any]) -> None:
    """The published version as it was, byte for byte, and the gate sees nothing to audit."""
    lake = hub.lake
    assert published(lake) == before
    assert lake.staged_versions(POLICY.name, VIOLATIONS.name, WINDOW) == []
    with pytest.raises(WindowBlockedError, match="no staged version"):
        hub.audit(POLICY, VIOLATIONS, WINDOW)
    assert_loads_exactly(conn, lake, keys(A))


def assert_retry_publishes_b(
    hub: Any,
    retry: StageWorker,
    settings: HubSettings,
    upstream: BadUpstream,
    conn: psycopg.Connection[Any],
) -> None:
    """A new process stages the window again, the gate publishes it, the load takes it."""
    retry.run(settings, upstream.url, upstream.token or "")
    report = retry.result()
    assert report["ok"] and report["returncode"] == 0, report
    assert hub.audit(POLICY, VIOLATIONS, WINDOW, report["version"]).status == "passed"
    lake = hub.lake
    now = manifest(lake)
    assert now["version"] == report["version"] and now["balanced"]
    assert now["landed"] == len(B)
    landed = landed_keys(lake)
    assert len(landed) == len(set(landed)) and set(landed) == keys(B)
    assert_loads_exactly(conn, lake, keys(B))
