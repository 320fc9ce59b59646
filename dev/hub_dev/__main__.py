"""``python -m hub_dev {up,down,status,airflow}``: local services without Docker.

- ``up``       start the private PostgreSQL cluster (``.local/pg``) and print its DSN
- ``down``     stop it
- ``status``   say whether it runs, and where
- ``airflow``  start it and the module simulators, migrate Airflow's metadata database,
               then run ``airflow standalone`` with the hub's connections; a module whose
               ``HUB_<MODULE>_URL`` and ``_TOKEN`` are set (environment or ``.env``) is
               pulled from that host, not from a simulator
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

from analytics_hub.settings import (
    ConfigurationError,
    load_module_hosts,
    module_host_variable,
)
from analytics_hub.sources import MODULES
from hub_dev.airflow_env import (
    AIRFLOW_DATABASE,
    DEFAULT_API_PORT,
    choose_api_port,
    migrate_once,
    passwords_file,
)
from hub_dev.local_hub import local_environ, local_stack_env, simulators_for
from hub_dev.postgres import PrivatePostgres


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
    from simulators import SimulatorConfig

    airflow = shutil.which("airflow", path=os.pathsep.join([str(Path(sys.executable).parent)]))
    if airflow is None:
        print("airflow is not installed in this environment: run `make setup`", file=sys.stderr)
        return 1
    environ = local_environ()
    try:
        hosts = load_module_hosts(environ)
    except ConfigurationError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    simulated = [m for m in MODULES if m not in hosts]
    pg.start()
    port = choose_api_port(api_port)
    config = SimulatorConfig(seed=42, chaos=0.05, stall_seconds=0.5)
    with simulators_for(simulated, config) as simulator_url:
        env = local_stack_env(pg, simulator_url, hosts, environ, api_port=port)
        print(f"airflow metadata: {pg.sqlalchemy_url(AIRFLOW_DATABASE)}")
        took = migrate_once(pg, env)
        print("airflow db: up to date" if took is None else f"airflow db migrated in {took:.1f}s")
        if simulator_url is not None:
            print(
                f"module simulators: {simulator_url} (connections hub_<module> of "
                f"{', '.join(simulated)} point there)"
            )
        else:
            print("module simulators: not started (every module is a real host)")
        for module, host in hosts.items():
            variable = module_host_variable(module, "url")
            print(f"module {module}: real host {host.url} (from {variable})")
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
        prog="python -m hub_dev",
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
