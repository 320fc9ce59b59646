"""A private PostgreSQL cluster run from the installed server binaries.

Tests and ``python -m hub_dev`` use it instead of a system service or a
container: ``initdb`` into a directory of our own, trust authentication on the unix socket
and 127.0.0.1 only, a free TCP port, and durability switched off unless asked for.

PostgreSQL refuses to run as root, so as root the server binaries run through ``runuser``
(or ``setpriv``) as an unprivileged account (``HUB_PG_USER``, else ``postgres`` when it
exists, else ``nobody``) that owns the data directory.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import pwd
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from analytics_hub.settings import project_root
from hub_dev.net import HOST, free_port, port_is_free

SUPERUSER = "postgres"
# sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_SOCKET_PATH = 107
_PORT_ATTEMPTS = 5


class PostgresError(RuntimeError):
    """The private cluster could not be set up, started or stopped."""


def find_bindir() -> Path:
    """Directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    ``HUB_PG_BINDIR`` wins; then ``pg_config --bindir``; then the newest
    ``/usr/lib/postgresql/<major>/bin``; then whatever ``initdb`` is on ``PATH``.
    """
    override = os.environ.get("HUB_PG_BINDIR")
    if override:
        path = Path(override)
        if not (path / "initdb").is_file():
            raise PostgresError(f"HUB_PG_BINDIR={override} has no initdb")
        return path
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True
            ).stdout
            candidates.append(Path(out.strip()))
    debian = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(Path(p) for p in debian)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    raise PostgresError(
        "PostgreSQL server binaries not found: install them (apt-get install postgresql) "
        "or set HUB_PG_BINDIR to the directory holding initdb and pg_ctl"
    )


def _default_dir() -> Path:
    """``.local/pg`` in the project, unless the server's account could not reach it there.

    A checkout under a private home (``/root`` is 0700) cannot host a cluster that runs as
    an unprivileged account; then the cluster lives in a per-project temp dir instead.
    """
    project = project_root()
    preferred = project / ".local" / "pg"
    if os.geteuid() != 0 or all(
        parent.stat().st_mode & stat.S_IXOTH for parent in [project, *project.parents]
    ):
        return preferred
    digest = hashlib.sha1(str(project).encode()).hexdigest()[:8]
    return Path(tempfile.gettempdir()) / f"hub-pg-{digest}"


def _default_run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    wanted = os.environ.get("HUB_PG_USER")
    if wanted:
        return wanted
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise PostgresError("running as root needs an unprivileged account: set HUB_PG_USER")


class PrivatePostgres:
    """A PostgreSQL cluster in ``data_dir``, listening on 127.0.0.1 and a socket there.

    ``start()`` initialises the directory on first use and reuses a server that is already
    running from it (so ``hub_dev up`` and ``hub_dev down`` can be separate commands). As a
    context manager it stops on exit only the server it started itself.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        durable: bool = False,
        bindir: str | os.PathLike[str] | None = None,
        run_as: str | None = None,
        settings: Mapping[str, str] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.data_dir = Path(data_dir or os.environ.get("HUB_PG_DATA_DIR") or _default_dir())
        self.data_dir = self.data_dir.resolve()
        self.host = HOST
        self.user = SUPERUSER
        self.durable = durable
        self.bindir = Path(bindir) if bindir else find_bindir()
        self.run_as = run_as if run_as is not None else _default_run_as()
        self.extra_settings = dict(settings or {})
        self.start_timeout = start_timeout
        self._requested_port = port
        self._port: int | None = None
        self._started_here = False

    # -- paths and addresses -------------------------------------------------------------

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir

    @property
    def port(self) -> int:
        if self._port is None:
            running = self._read_pid_file()
            if running is None:
                raise PostgresError(f"no server is running from {self.data_dir}")
            self._port = running[1]
        return self._port

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq URL over TCP, e.g. ``postgresql://postgres@127.0.0.1:5433/airflow``."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def sqlalchemy_url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL with the psycopg 3 driver."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    # -- lifecycle -----------------------------------------------------------------------

    def is_initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    def running_pid(self) -> int | None:
        """PID of a live postmaster serving ``data_dir``, if any."""
        running = self._read_pid_file()
        return running[0] if running else None

    def is_running(self) -> bool:
        return self.running_pid() is not None

    def initdb(self) -> None:
        """Create the cluster unless ``data_dir`` already holds one."""
        if self.is_initialized():
            return
        self._prepare_dir()
        self._run(
            [
                str(self.bindir / "initdb"),
                "--pgdata",
                str(self.data_dir),
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ],
            what="initdb",
        )
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\ninclude_if_exists = 'hub.conf'\n")

    def start(self) -> Self:
        """Start (or reuse) the server and wait until it accepts connections."""
        running = self._read_pid_file()
        if running is not None:
            self._port = running[1]
            return self
        self.initdb()
        self._check_socket_path()
        self._write_settings()
        last_error = ""
        for _ in range(_PORT_ATTEMPTS):
            port = self._requested_port or free_port(self.host)
            try:
                self._pg_ctl(
                    "start",
                    "--wait",
                    f"--timeout={int(self.start_timeout)}",
                    f"--log={self.log_file}",
                    f"--options=-p {port}",
                )
            except PostgresError as exc:
                last_error = str(exc)
                if self._requested_port is None and not port_is_free(port, self.host):
                    continue  # another process took the port between our probe and bind
                raise
            self._port = port
            self._started_here = True
            return self
        raise PostgresError(
            f"could not find a free port after {_PORT_ATTEMPTS} tries: {last_error}"
        )

    def stop(self) -> None:
        """Stop the server (fast shutdown); kill it if that fails. Safe when not running."""
        running = self._read_pid_file()
        self._started_here = False
        self._port = None
        if running is None:
            return
        pid = running[0]
        try:
            self._pg_ctl("stop", "--mode=fast", "--wait", "--timeout=30")
        except PostgresError:
            for sig in (signal.SIGQUIT, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
                if _wait_gone(pid, timeout=5):
                    break
            (self.data_dir / "postmaster.pid").unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._started_here:
            self.stop()

    # -- SQL helpers ---------------------------------------------------------------------

    def create_database(self, name: str) -> None:
        """Create database ``name`` unless it exists."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            exists = conn.execute("select 1 from pg_database where datname = %s", (name,))
            if exists.fetchone() is None:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))

    # -- internals -----------------------------------------------------------------------

    def _prefix(self) -> list[str]:
        if self.run_as is None:
            return []
        runuser = shutil.which("runuser")
        if runuser:
            return [runuser, "-u", self.run_as, "--"]
        setpriv = shutil.which("setpriv")
        if setpriv:
            account = pwd.getpwnam(self.run_as)
            return [
                setpriv,
                f"--reuid={account.pw_uid}",
                f"--regid={account.pw_gid}",
                "--clear-groups",
                "--",
            ]
        raise PostgresError("running as root needs runuser or setpriv (util-linux)")

    def _run(self, argv: Sequence[str], *, what: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        result = subprocess.run(
            [*self._prefix(), *argv],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.data_dir.parent,
            check=False,
        )
        if result.returncode != 0:
            log_tail = ""
            if self.log_file.is_file():
                log_tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-15:])
            raise PostgresError(
                f"{what} failed ({result.returncode}): {shlex.join(argv)}\n"
                f"{result.stdout}{result.stderr}{log_tail}"
            )
        return result.stdout

    def _pg_ctl(self, action: str, *args: str) -> str:
        argv = [str(self.bindir / "pg_ctl"), action, "--pgdata", str(self.data_dir), *args]
        return self._run(argv, what=f"pg_ctl {action}")

    def _prepare_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if any(self.data_dir.iterdir()):
            raise PostgresError(f"{self.data_dir} is not empty and holds no cluster")
        self.data_dir.chmod(0o700)
        if self.run_as is not None:
            account = pwd.getpwnam(self.run_as)
            os.chown(self.data_dir, account.pw_uid, account.pw_gid)
            probe = subprocess.run([*self._prefix(), "test", "-w", str(self.data_dir)], check=False)
            if probe.returncode != 0:
                raise PostgresError(
                    f"user {self.run_as} cannot reach {self.data_dir}: every parent directory "
                    "must be searchable by others (chmod o+x), or choose another data dir"
                )

    def _check_socket_path(self) -> None:
        longest = self.socket_dir / ".s.PGSQL.65535.lock"
        if len(str(longest)) > _MAX_SOCKET_PATH:
            raise PostgresError(
                f"data dir path {self.data_dir} is too long for a unix socket; "
                "use a shorter HUB_PG_DATA_DIR"
            )

    def _write_settings(self) -> None:
        speed = "on" if self.durable else "off"
        settings = {
            "listen_addresses": HOST,
            "unix_socket_directories": str(self.socket_dir),
            "fsync": speed,
            "synchronous_commit": speed,
            "full_page_writes": speed,
            "max_connections": "200",
            "log_min_messages": "warning",
            **self.extra_settings,
        }
        lines = [f"{key} = '{value}'" for key, value in settings.items()]
        target = self.data_dir / "hub.conf"
        target.write_text(
            "# written by hub_dev.postgres on every start\n" + "\n".join(lines) + "\n"
        )
        if self.run_as is not None:
            account = pwd.getpwnam(self.run_as)
            os.chown(target, account.pw_uid, account.pw_gid)

    def _read_pid_file(self) -> tuple[int, int] | None:
        """(pid, port) of a live postmaster from ``postmaster.pid``, or None."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, IndexError, ValueError):
            return None
        if not _alive_postgres(pid):
            return None
        return pid, port


def _alive_postgres(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no procfs: trust the signal probe
    return b"postgres" in cmdline or b"postmaster" in cmdline


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive_postgres(pid):
            return True
        time.sleep(0.05)
    return False
