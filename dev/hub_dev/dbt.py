"""dbt outside Airflow: ``make dbt-dev``, the tests and the benchmarks.

The DAGs run dbt through cosmos (``analytics_hub.dbt_airflow``), with the Airflow
connection ``hub_warehouse`` as the profile. Everything else runs the same dbt
(``HubSettings.dbt_executable``) on the same project (``HubSettings.dbt_project_dir``)
with ``DbtRunner``, which points the project's profile (``profiles.yml``, read from the
project) at a warehouse given by its libpq DSN, through the profile's ``HUB_WAREHOUSE_*``
variables.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg

from analytics_hub.settings import load_settings

# No usage pings and no version checks: these machines have no internet, and need none.
QUIET = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DBT_VERSION_CHECK": "false"}
# The part of a failed run's output that its error shows.
TAIL_CHARS = 6000

# dbt's output: a pipe (the result's stdout), a file, or None (this process's stdout)
Output = int | IO[Any] | None

_PROFILE_VARIABLES = {
    "host": "HUB_WAREHOUSE_HOST",
    "port": "HUB_WAREHOUSE_PORT",
    "user": "HUB_WAREHOUSE_USER",
    "password": "HUB_WAREHOUSE_PASSWORD",
    "dbname": "HUB_WAREHOUSE_DB",
}


def warehouse_env(dsn: str) -> dict[str, str]:
    """The profile's ``HUB_WAREHOUSE_*`` variables for the database of a libpq DSN (those
    the DSN leaves out keep the profile's defaults)."""
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    return {
        variable: str(info[key])
        for key, variable in _PROFILE_VARIABLES.items()
        if info.get(key) is not None
    }


class DbtError(subprocess.CalledProcessError):
    """A dbt run that failed; the message ends with the tail of its output."""

    def __str__(self) -> str:
        args = list(self.cmd[1:])
        if "--project-dir" in args:  # the paths every run has
            args = args[: args.index("--project-dir")]
        tail = self.stdout[-TAIL_CHARS:] if isinstance(self.stdout, str) else ""
        failed = f"dbt {' '.join(args)} exited with {self.returncode}"
        return failed + (f":\n{tail}" if tail else "")


@dataclass(frozen=True)
class DbtRunner:
    """dbt on the project against one warehouse: ``DbtRunner(dsn).run("build")``.

    - ``dsn``: the warehouse; None for commands that need none (``parse``).
    - ``project_dir``: by default ``HUB_DBT_PROJECT_DIR`` (a benchmark passes a snapshot of
      it); also the profiles dir and dbt's working dir.
    - ``target_path``, ``log_path``: dbt's own, where given; by default those of the
      project. A run beside others (tests, a DAG render reading the project's manifest)
      keeps its own.
    - ``env``: variables over this process's environment and the warehouse's; None
      unsets one (e.g. ``HUB_WAREHOUSE_KIND``, to let dbt detect the kind).
    """

    dsn: str | None
    project_dir: Path | None = None
    target_path: Path | None = None
    log_path: Path | None = None
    env: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def project(self) -> Path:
        return self.project_dir or load_settings().dbt_project_dir

    def command(self, *args: str) -> list[str]:
        """``dbt <args>`` with the project, profiles, target and log paths."""
        project = str(self.project)
        command = [str(load_settings().dbt_executable), *args]
        command += ["--project-dir", project, "--profiles-dir", project]
        if self.target_path is not None:
            command += ["--target-path", str(self.target_path)]
        if self.log_path is not None:
            command += ["--log-path", str(self.log_path)]
        return command

    def environ(self, env: Mapping[str, str | None] | None = None) -> dict[str, str]:
        """dbt's environment, with ``env`` over the runner's own."""
        warehouse = warehouse_env(self.dsn) if self.dsn is not None else {}
        merged = {**os.environ, **QUIET, **warehouse, **self.env, **(env or {})}
        return {name: value for name, value in merged.items() if value is not None}

    def start(
        self,
        *args: str,
        env: Mapping[str, str | None] | None = None,
        output: Output = subprocess.PIPE,
    ) -> subprocess.Popen[str]:
        """dbt started, not waited for; ``output`` as for ``run``."""
        return subprocess.Popen(
            self.command(*args),
            cwd=self.project,
            env=self.environ(env),
            stdout=output,
            stderr=None if output is None else subprocess.STDOUT,
            text=True,
        )

    def run(
        self,
        *args: str,
        check: bool = True,
        env: Mapping[str, str | None] | None = None,
        output: Output = subprocess.PIPE,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """dbt run to its end. Its output (stderr merged) is the result's ``stdout``, or
        goes to ``output``: a file, or None for this process's own stdout and stderr.
        ``check``: a failed run raises ``DbtError``."""
        result = subprocess.run(
            self.command(*args),
            cwd=self.project,
            env=self.environ(env),
            stdout=output,
            stderr=None if output is None else subprocess.STDOUT,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise DbtError(result.returncode, result.args, result.stdout)
        return result
