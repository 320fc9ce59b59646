"""Environment for running Airflow locally against the private PostgreSQL cluster.

``airflow_env()`` returns the variables (``AIRFLOW_HOME``, metadata database, DAG and plugin
folders, LocalExecutor, API port, and optionally the warehouse connection) that ``airflow
standalone``, ``airflow dags test`` or a test need; ``migrate_once()`` runs ``airflow db
migrate`` only when the cluster or the Airflow version changed since the last run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from analytics_hub.settings import ModuleHost, project_root
from hub_dev import dag_batch
from hub_dev.net import free_port, port_is_free
from hub_dev.postgres import PrivatePostgres

AIRFLOW_DATABASE = "airflow"
DEFAULT_API_PORT = 8080
PASSWORDS_FILE_NAME = "simple_auth_manager_passwords.json.generated"
# The connection ``orchestration.WAREHOUSE_CONN_ID`` as an environment variable; spelled out
# here because importing ``orchestration`` imports Airflow, seconds a launcher need not pay.
WAREHOUSE_CONN_ENV = "AIRFLOW_CONN_HUB_WAREHOUSE"
_MIGRATE_STAMP = ".hub-db-migrate.stamp"


def default_airflow_home(project: Path | None = None) -> Path:
    """``<project>/.local/airflow`` (git-ignored)."""
    return (project or project_root()) / ".local" / "airflow"


def choose_api_port(preferred: int = DEFAULT_API_PORT) -> int:
    """``preferred`` when it is free on 127.0.0.1, else any free port."""
    return preferred if port_is_free(preferred) else free_port()


def passwords_file(home: Path) -> Path:
    """Where Airflow 3's simple auth manager writes the generated admin password."""
    return home / PASSWORDS_FILE_NAME


def warehouse_connection_env(pg: PrivatePostgres, database: str) -> dict[str, str]:
    """The Airflow connection ``hub_warehouse`` pointed at ``database`` of the private
    cluster (created if missing): where the warehouse load writes, and where the land,
    validate and replay tasks hold each window's lease (an advisory lock)."""
    pg.create_database(database)
    connection = {
        "conn_type": "postgres",
        "host": pg.host,
        "port": pg.port,
        "login": pg.user,
        # The private cluster trusts local connections and ignores this; cosmos's profile
        # mapping insists on some password.
        "password": "trust",
        "schema": database,
    }
    return {WAREHOUSE_CONN_ENV: json.dumps(connection)}


def airflow_env(
    pg: PrivatePostgres,
    *,
    home: Path | None = None,
    project: Path | None = None,
    api_port: int | None = None,
    base: Mapping[str, str] | None = None,
    warehouse: str | None = None,
) -> dict[str, str]:
    """A full process environment (``base``, default ``os.environ``, plus Airflow's settings).

    ``pg`` must be started: the metadata database URL carries its port. ``warehouse`` names
    a database of ``pg`` for the connection ``hub_warehouse`` (``warehouse_connection_env``),
    which every task that lands, validates, replays or loads a window needs; without it the
    connection is whatever ``base`` says.
    """
    project = project or project_root()
    home = home or default_airflow_home(project)
    port = api_port if api_port is not None else choose_api_port()
    env = dict(os.environ if base is None else base)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([venv_bin, env.get("PATH", "")])
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.sqlalchemy_url(AIRFLOW_DATABASE),
            "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(project / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file(home)),
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
            # no usage pings from cosmos: these machines have no internet, and need none
            "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        }
    )
    if warehouse is not None:
        env.update(warehouse_connection_env(pg, warehouse))
    return env


def _stamp_key(pg: PrivatePostgres, env: Mapping[str, str]) -> str:
    from importlib.metadata import version

    # PG_VERSION is rewritten by every initdb, so a recreated cluster invalidates the stamp.
    cluster = pg.data_dir / "PG_VERSION"
    cluster_id = f"{cluster}:{cluster.stat().st_ino}:{cluster.stat().st_mtime_ns}"
    database = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].rsplit("/", 1)[-1]
    return f"apache-airflow {version('apache-airflow')} {cluster_id} {database}\n"


def migrate_once(
    pg: PrivatePostgres, env: Mapping[str, str], *, force: bool = False
) -> float | None:
    """Create the ``airflow`` database and run ``airflow db migrate`` unless already done.

    Returns the seconds the migration took, or None when the stamp said it was current.
    """
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    stamp = home / _MIGRATE_STAMP
    key = _stamp_key(pg, env)
    if not force and stamp.is_file() and stamp.read_text() == key:
        return None
    pg.create_database(AIRFLOW_DATABASE)
    started = time.monotonic()
    airflow = shutil.which("airflow", path=env.get("PATH"))
    if airflow is None:
        raise FileNotFoundError("the airflow command is not installed in this environment")
    subprocess.run(
        [airflow, "db", "migrate"],
        env=dict(env),
        check=True,
    )
    elapsed = time.monotonic() - started
    stamp.write_text(key)
    return elapsed


def connections_env(
    simulator_url: str | None,
    hosts: Mapping[str, ModuleHost] | None = None,
    tokens: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """``AIRFLOW_CONN_HUB_<MODULE>`` for every module: its real host where ``hosts`` names
    one, else the simulator process at ``simulator_url`` (with ``tokens``, default the
    simulator's). With no simulator (None), only the real hosts get a connection."""
    from analytics_hub.sources import MODULES

    hosts = hosts or {}
    tokens = tokens or {}
    connections: dict[str, dict[str, object]] = {}
    for name, module in MODULES.items():
        host = hosts.get(name)
        if host is not None:
            connections[module.conn_id] = {
                "conn_type": "http",
                "host": host.url,
                "password": host.token.get_secret_value(),
            } | ({"extra": {"timezone": host.timezone}} if host.timezone else {})
        elif simulator_url is not None:
            connections[module.conn_id] = {
                "conn_type": "http",
                "host": f"{simulator_url}/{name}",
                "password": tokens.get(name, f"sim-{name}-token"),
            }
    return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(c) for conn_id, c in connections.items()}


def dags_test(
    env: Mapping[str, str], dag_id: str, conf: Mapping[str, object] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one DAG run in-process with ``airflow dags test`` (no scheduler); output captured."""
    airflow = shutil.which("airflow", path=env.get("PATH"))
    if airflow is None:
        raise FileNotFoundError("the airflow command is not installed in this environment")
    command = [airflow, "dags", "test", dag_id]
    path = dag_file(env, dag_id)
    if path is not None:
        command += ["--dagfile-path", str(path)]
    if conf:
        command += ["--conf", json.dumps(dict(conf))]
    return subprocess.run(command, env=dict(env), capture_output=True, text=True, check=False)


def dags_test_many(
    env: Mapping[str, str],
    runs: Sequence[tuple[str, Mapping[str, object] | None]],
    processes: int = 1,
) -> list[subprocess.CompletedProcess[str]]:
    """Run ``dags test`` for each ``(dag_id, conf)``, in ``processes`` processes side by
    side (``dag_batch``; runs dealt out in turn, each process's in order); one result per
    run, in the order given, with its own output (stderr merged into stdout).

    The same runs as ``dags_test`` one by one, less a start-up per run: Airflow's, its
    in-process execution API's and the tasks' imports. A run whose process died reports
    the process's code and what it printed.
    """
    shares = [list(range(i, len(runs), processes)) for i in range(processes)]
    with ThreadPoolExecutor(max_workers=processes) as pool:
        batches = pool.map(lambda share: _batch(env, [runs[i] for i in share]), shares)
        by_index = {
            i: r
            for share, rs in zip(shares, batches, strict=True)
            for i, r in zip(share, rs, strict=True)
        }
    return [by_index[i] for i in range(len(runs))]


def _batch(
    env: Mapping[str, str], runs: Sequence[tuple[str, Mapping[str, object] | None]]
) -> list[subprocess.CompletedProcess[str]]:
    if not runs:
        return []
    python = Path(shutil.which("airflow", path=env.get("PATH")) or sys.executable).parent / "python"
    batch = [
        (dag_id, _path_or_none(dag_file(env, dag_id)), dict(conf or {})) for dag_id, conf in runs
    ]
    process = subprocess.run(
        [str(python), "-m", "hub_dev.dag_batch", json.dumps(batch)],
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    results: list[subprocess.CompletedProcess[str]] = []
    output, mark = process.stdout, f"{dag_batch.MARK} "
    for dag_id, _, _ in batch:
        start = output.find(f"{mark}start {dag_id}\n")
        end = output.find(f"{mark}end {dag_id} ", max(start, 0))
        if start < 0 or end < 0:  # the process died before or during this run
            code = process.returncode or 1
            text = output[start:] if start >= 0 else output[-20000:]
            results.append(subprocess.CompletedProcess(process.args, code, text, ""))
            output = ""
            continue
        code = int(output[end:].split("\n", 1)[0].rsplit(" ", 1)[1])
        results.append(subprocess.CompletedProcess(process.args, code, output[start:end], ""))
        output = output[end:].split("\n", 1)[-1]
    return results


def _path_or_none(path: Path | None) -> str | None:
    return None if path is None else str(path)


def dag_file(env: Mapping[str, str], dag_id: str) -> Path | None:
    """The file of the DAGs folder that declares ``dag_id`` (its stem is the id, or the id's
    prefix: ``ingest.py`` declares ``ingest_<module>``), so that ``dags test`` parses that
    file alone rather than every DAG, cosmos's render of the dbt project among them."""
    folder = Path(env["AIRFLOW__CORE__DAGS_FOLDER"])
    for path in sorted(folder.glob("*.py"), key=lambda p: -len(p.stem)):
        if dag_id == path.stem or dag_id.startswith(f"{path.stem}_"):
            return path
    return None


def serialize_dags(env: Mapping[str, str]) -> None:
    """Parse and store every DAG once, before ``dags test`` processes run side by side.

    Two processes that both find a DAG unserialized race to insert it; done once up front,
    each later process finds it stored.
    """
    airflow = shutil.which("airflow", path=env.get("PATH"))
    if airflow is None:
        raise FileNotFoundError("the airflow command is not installed in this environment")
    subprocess.run([airflow, "dags", "reserialize"], env=dict(env), check=True, capture_output=True)


def failure_excerpt(result: subprocess.CompletedProcess[str], limit: int = 4000) -> str:
    """The part of a failed ``dags test``'s output worth reading: its traceback, or its end."""
    output = result.stdout + result.stderr
    start = output.rfind("Traceback (most recent call last)")
    return output[start : start + limit] if start >= 0 else output[-limit:]
