"""What the fault tests share: policy violations to serve, the lake's state, a stage worker.

Every fault test ends the same way: no data lost, no duplicates, the next retry succeeds.
The pieces here make that concrete:

- ``violations``: valid records of the policy module's violations in ``WINDOW``, each key
  (event id, violation id) built from a tag, so a version's rows are known exactly;
- ``published``: the SHA-256 of each object of a window's current version, to show that
  a fault left it byte for byte as it was; ``landed_keys``: the event ids it holds;
- ``staged_files``: what is under a window's ``staged/`` area, by version, so that a test
  can say what each leftover is;
- ``StageWorker``: ``ingest_window`` (the land task's work) in a child process, which a
  test can kill with SIGKILL or start under a file-size limit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from analytics_hub import warehouse
from analytics_hub.connectors import Endpoint, ModuleClient
from analytics_hub.lake import Lake, Zone
from analytics_hub.pipeline import Pipeline
from analytics_hub.settings import HubSettings, load_gate_settings, load_settings, project_root
from analytics_hub.sources import MODULES
from analytics_hub.windows import Window
from hub_dev.s3 import MotoS3Server

PROJECT = project_root()
WINDOW = Window(datetime(2026, 11, 25, 10, tzinfo=UTC), datetime(2026, 11, 25, 11, tzinfo=UTC))
POLICY = MODULES["policy"]
VIOLATIONS = POLICY.entity("violations")
PATH = VIOLATIONS.path
ZONES = (Zone.RAW, Zone.NORMALIZED, Zone.DEADLETTER, Zone.MANIFESTS)
# Quick limits: a fault ends in seconds, not in the production minutes.
QUICK = {
    "http_max_attempts": 2,
    "http_max_backoff_seconds": 0.1,
    "http_timeout_seconds": 5.0,
    "http_request_deadline_seconds": 2.0,
    "pull_deadline_seconds": 30.0,
}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def violation(
    n: int, tag: str, window: Window = WINDOW, *, description: str = ""
) -> dict[str, Any]:
    """Valid violation ``n`` of a batch tagged ``tag``: event id ``pol-<tag>-<n>``.

    Events fall in the window's last 20 minutes, ingested a second later, so the lake
    gate's freshness check (one 15-minute interval plus grace) passes.
    """
    at = window.end - timedelta(minutes=20) + timedelta(milliseconds=97 * n % 1_190_000)
    return {
        "event_id": f"pol-{tag}-{n}",
        "timestamp": _iso(at),
        "ingested_at": _iso(at + timedelta(seconds=1)),
        "source_module": "llm-policy-engine",
        "event_type": "violation.detected",
        "schema_version": "1.0.0",
        "severity": "warning",
        "environment": "production",
        "data": {
            "violation_id": f"vio-{tag}-{n}",
            "policy_id": f"policy-{n % 7}",
            "asset_id": f"asset-{n % 5}",
            "severity": ("low", "medium", "high", "critical")[n % 4],
            "violation_type": ("prompt_leak", "pii", "toxicity")[n % 3],
            "description": description or f"violation {n} of batch {tag}",
        },
    }


def violations(
    count: int, tag: str, window: Window = WINDOW, **fields: Any
) -> list[dict[str, Any]]:
    return [violation(n, tag, window, **fields) for n in range(count)]


def pages(records: Sequence[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [list(records[at : at + size]) for at in range(0, len(records), size)]


def keys(records: Sequence[dict[str, Any] | None]) -> set[str]:
    return {r["event_id"] for r in records if r is not None}


def local_settings(root: Path, **extra: object) -> HubSettings:
    return load_settings(lake_url=str(root / "lake"), **(QUICK | extra))


def s3_settings(
    s3: MotoS3Server, prefix: str, endpoint_url: str | None = None, **extra: object
) -> HubSettings:
    """Settings whose lake is ``s3://<bucket>/<prefix>`` on moto (or on ``endpoint_url``,
    a proxy in front of it)."""
    env = s3.hub_env() | {"HUB_LAKE_URL": f"s3://{s3.bucket}/{prefix}"}
    if endpoint_url:
        env["HUB_S3_ENDPOINT_URL"] = endpoint_url
    values = {k.removeprefix("HUB_").lower(): v for k, v in env.items()}
    return load_settings(**(values | QUICK | extra))


def pipeline(settings: HubSettings, work_dir: Path) -> Pipeline:
    """The hub's pipeline on the lake of ``settings``; the gate's history and Data Docs in
    ``work_dir`` (on local disk also for an S3 lake: no fault here is about them)."""
    gate = load_gate_settings(work_dir=str(work_dir), url=str(work_dir / "quality"))
    return Pipeline.from_settings(settings, gate, pseudonym_key=b"faults")


def land(hub: Pipeline, url: str, token: str, settings: HubSettings) -> Any:
    """Stage, audit and publish the violations of ``WINDOW`` from the module at ``url``."""
    with ModuleClient(POLICY, Endpoint(url, token), settings) as client:
        return hub.land(client, VIOLATIONS, WINDOW)


# --- the lake's state -----------------------------------------------------------------------


def current(lake: Lake, zone: Zone, window: Window = WINDOW) -> str:
    return lake.path(zone, POLICY.name, VIOLATIONS.name, window)


def manifest(lake: Lake, window: Window = WINDOW) -> dict[str, Any]:
    return lake.read_json(current(lake, Zone.MANIFESTS, window))


def published(lake: Lake, window: Window = WINDOW) -> dict[str, str]:
    """The SHA-256 of each object of the window's current version (manifest included)."""
    return {zone.value: lake.checksum(current(lake, zone, window)) for zone in ZONES}


def landed_keys(lake: Lake, window: Window = WINDOW) -> list[str]:
    """The event ids of the current normalized object, in order (duplicates kept)."""
    table = pq.read_table(current(lake, Zone.NORMALIZED, window), filesystem=lake.fs)
    return [str(key) for key in table.column("event_id").to_pylist()]


def loaded_keys(conn: psycopg.Connection[Any], window: Window = WINDOW) -> list[str]:
    """The event ids the landing table holds for the window (duplicates kept)."""
    table = warehouse.landing_table(POLICY.name, VIOLATIONS.name)
    rows = conn.execute(
        f"select event_id from {table} where _window_start = %s and _window_end = %s",
        (window.start, window.end),
    ).fetchall()
    return [str(row[0]) for row in rows]


def assert_loads_exactly(conn: psycopg.Connection[Any], lake: Lake, expected: set[str]) -> None:
    """Loading the window's current version leaves exactly ``expected`` in the landing
    table, each once."""
    warehouse.load_window(conn, lake, POLICY.name, VIOLATIONS.name, WINDOW)
    loaded = loaded_keys(conn)
    assert len(loaded) == len(set(loaded)) == len(expected) and set(loaded) == expected


def prune_when_kept_days_passed(lake: Lake, window: Window = WINDOW) -> None:
    """``Lake.prune`` as it acts once ``HUB_LAKE_KEEP_REPLACED_DAYS`` have passed."""
    keep, lake.keep_replaced = lake.keep_replaced, timedelta(0)
    try:
        lake.prune(POLICY.name, VIOLATIONS.name, window)
    finally:
        lake.keep_replaced = keep


def staged_manifest(lake: Lake, version: str, window: Window = WINDOW) -> dict[str, Any]:
    path = lake.staged_path(Zone.MANIFESTS, POLICY.name, VIOLATIONS.name, window, version)
    return lake.read_json(path)


def staged_table(lake: Lake, zone: Zone, version: str, window: Window = WINDOW) -> Any:
    path = lake.staged_path(zone, POLICY.name, VIOLATIONS.name, window, version)
    return pq.read_table(path, filesystem=lake.fs)


def staged_root(lake: Lake, window: Window = WINDOW) -> str:
    """The window's ``staged/`` area (its versions are directories below it)."""
    return lake.staged_path(Zone.RAW, POLICY.name, VIOLATIONS.name, window, "-").rsplit("/", 2)[0]


def staged_files(lake: Lake, window: Window = WINDOW) -> dict[str, set[str]]:
    """Each file under the window's ``staged/`` area, by version; versions without files
    (emptied by a publish) are left out."""
    base = staged_root(lake, window)
    found: dict[str, set[str]] = {}
    selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
    for info in lake.fs.get_file_info(selector):
        if info.type is pafs.FileType.File:
            version, _, name = info.path.removeprefix(f"{base}/").partition("/")
            found.setdefault(version, set()).add(name)
    return found


def is_partial(name: str) -> bool:
    """A staging name: an object whose writer never finished."""
    return ".inprogress-" in name


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


# --- a stage in a child process -------------------------------------------------------------


class StageWorker:
    """``python stage_worker.py``: imports the hub, then stages the one job it is sent.

    Started early, it imports while the test sets the lake up; ``run`` hands it the job
    (its settings, the module's URL and token, and limits to apply first), ``result``
    waits for what it reports and ``kill`` sends SIGKILL.
    """

    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(PROJECT / "include"), env.get("PYTHONPATH", "")) if p
        )
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("stage_worker.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._lines: list[str] = []
        self._errors: list[str] = []
        self._ready = threading.Event()
        self._done = threading.Event()
        # both drained as they come: a full pipe would stall the worker in its next write
        self._readers = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._read_errors, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip() == "READY":
                self._ready.set()
            else:
                self._lines.append(line)
        self._ready.set()
        self._done.set()

    def _read_errors(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._errors.append(line)

    def run(
        self,
        settings: HubSettings,
        url: str,
        token: str,
        *,
        file_size_limit: int | None = None,
    ) -> None:
        if not self._ready.wait(120):
            raise AssertionError("the stage worker did not start within 120 s")
        job = {
            "settings": {
                name: value.get_secret_value() if hasattr(value, "get_secret_value") else value
                for name, value in settings.model_dump().items()
            },
            "module": POLICY.name,
            "entity": VIOLATIONS.name,
            "window": WINDOW.to_dict(),
            "url": url,
            "token": token,
            "file_size_limit": file_size_limit,
        }
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(job, default=str) + "\n")  # paths as text
        self.process.stdin.flush()

    def result(self, timeout: float = 120.0) -> dict[str, Any]:
        """What the worker reported (``ok``, and ``version`` or ``error``), once it exited."""
        self.process.wait(timeout)
        self._done.wait(5)
        lines = [line for line in self._lines if line.startswith("RESULT ")]
        if not lines:
            stderr = "".join(self._errors[-40:])
            raise AssertionError(f"the stage worker reported nothing: {stderr}")
        report: dict[str, Any] = orjson.loads(lines[-1].removeprefix("RESULT "))
        return report | {"returncode": self.process.returncode}

    def kill(self) -> int:
        """SIGKILL, as the kernel's OOM killer or a lost node does; returns the exit code."""
        self.process.send_signal(signal.SIGKILL)
        return self.process.wait(30)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        assert self.process.stdin is not None
        self.process.stdin.close()
        for reader in self._readers:  # they end at the pipes' end of file
            reader.join(10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
