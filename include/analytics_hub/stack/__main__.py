"""``python -m analytics_hub.stack {up,down,status,airflow}``: local services without Docker.

- ``up``       start the private PostgreSQL cluster (``.local/pg``) and print its DSN
- ``down``     stop it
- ``status``   say whether it runs, and where
- ``airflow``  start it and the module simulators, migrate Airflow's metadata database,
               then run ``airflow standalone`` with the hub's connections
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from analytics_hub.stack.airflow_env import (
    AIRFLOW_DATABASE,
    DEFAULT_API_PORT,
    airflow_env,
    choose_api_port,
    migrate_once,
    passwords_file,
)
from analytics_hub.stack.local_hub import local_hub_env
from analytics_hub.stack.postgres import PrivatePostgres


def _up(pg: PrivatePostgres) -> int:
    was_running = pg.is_running()
    started = time.monotonic()
    pg.start()
    verb = "already running" if was_running else f"started in {time.monotonic() - started:.1f}s"
    print(f"postgres {verb}: {pg.data_dir}")
    print(f"  dsn:        {pg.dsn()}")
    print(f"  sqlalchemy: {pg.sqlalchemy_url()}")
    print(f"  psql:       psql -h {pg.socket_dir} -p {pg.port} -U {pg.user}")
    return 0


def _down(pg: PrivatePostgres) -> int:
    if not pg.is_running():
        print(f"postgres not running: {pg.data_dir}")
        return 0
    pg.stop()
    print(f"postgres stopped: {pg.data_dir}")
    return 0


def _status(pg: PrivatePostgres) -> int:
    pid = pg.running_pid()
    if pid is None:
        print(f"postgres not running: {pg.data_dir}")
        return 1
    print(f"postgres running (pid {pid}): {pg.dsn()}")
    return 0


def _airflow(pg: PrivatePostgres, api_port: int) -> int:
    from simulators import SimulatorConfig, SimulatorProcess

    airflow = shutil.which("airflow", path=os.pathsep.join([str(Path(sys.executable).parent)]))
    if airflow is None:
        print("airflow is not installed in this environment: run `make setup`", file=sys.stderr)
        return 1
    pg.start()
    port = choose_api_port(api_port)
    with SimulatorProcess(SimulatorConfig(seed=42, chaos=0.05, stall_seconds=0.5)) as sim:
        env = airflow_env(pg, api_port=port) | local_hub_env(sim.url, pg)
        print(f"airflow metadata: {pg.sqlalchemy_url(AIRFLOW_DATABASE)}")
        took = migrate_once(pg, env)
        print("airflow db: up to date" if took is None else f"airflow db migrated in {took:.1f}s")
        print(f"module simulators: {sim.url} (connections hub_<module> point there)")
        print(f"lake: {env['HUB_LAKE_URL']}")
        print(f"airflow UI: http://localhost:{port}")
        print(f"  login:    {_login_hint(passwords_file(Path(env['AIRFLOW_HOME'])))}")
        print("  stop with Ctrl-C, then `make down` to stop postgres")
        sys.stdout.flush()
        try:
            return subprocess.run([airflow, "standalone"], env=env, check=False).returncode
        except KeyboardInterrupt:
            return 0


def _login_hint(password_file: Path) -> str:
    """Airflow 3's simple auth manager generates the admin password on first start."""
    try:
        passwords = json.loads(password_file.read_text())
    except (OSError, ValueError):
        return f"admin / the password Airflow prints below and stores in {password_file}"
    return f"admin / {passwords.get('admin', '?')}  (from {password_file})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analytics_hub.stack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["up", "down", "status", "airflow"])
    parser.add_argument(
        "--data-dir", help="cluster directory (default: HUB_PG_DATA_DIR or .local/pg)"
    )
    parser.add_argument(
        "--api-port",
        type=int,
        default=DEFAULT_API_PORT,
        help="Airflow API/UI port, if free (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    pg = PrivatePostgres(args.data_dir)
    if args.command == "up":
        return _up(pg)
    if args.command == "down":
        return _down(pg)
    if args.command == "status":
        return _status(pg)
    return _airflow(pg, args.api_port)


if __name__ == "__main__":
    sys.exit(main())
