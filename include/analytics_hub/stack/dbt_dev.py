"""A dev warehouse for dbt work: ``make dbt-dev`` (``python -m analytics_hub.stack.dbt_dev``).

Fills the ``warehouse_dev`` database of the private cluster with a few days of simulated
data (pulled from the simulators, normalized, audited by the lake gate and published in
``.local/dev-lake``, loaded with the same code the DAGs run: ``Pipeline``), then runs
``dbt build`` and ``dbt docs generate`` against it and prints how to point dbt at it for
the next edit-build loop. The gate's history and Data Docs go to ``.local/dev-quality``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import psycopg

from analytics_hub import warehouse
from analytics_hub.connectors import Endpoint, ModuleClient
from analytics_hub.pipeline import Pipeline
from analytics_hub.quality.config import load_gate_settings
from analytics_hub.settings import load_settings
from analytics_hub.sources import MODULES
from analytics_hub.stack.local_hub import local_dir, local_pseudonym_key
from analytics_hub.stack.net import project_root
from analytics_hub.stack.postgres import PrivatePostgres
from analytics_hub.windows import Window

DEV_DATABASE = "warehouse_dev"


def fill(pg: PrivatePostgres, days: int, seed: int) -> None:
    from simulators import SimulatorConfig, SimulatorProcess

    pg.create_database(DEV_DATABASE)
    hub = Pipeline.from_settings(
        load_settings(lake_url=str(local_dir() / "dev-lake")),
        # not beside the lake: that is .local/quality, the local hub's (make run, make airflow)
        load_gate_settings(url=str(local_dir() / "dev-quality")),
        pseudonym_key=local_pseudonym_key().encode(),
    )
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    hours = [
        Window(end - timedelta(hours=h + 1), end - timedelta(hours=h)) for h in range(days * 24)
    ]
    with (
        SimulatorProcess(SimulatorConfig(seed=seed, chaos=0.05, stall_seconds=0.0)) as sim,
        psycopg.connect(pg.dsn(DEV_DATABASE), autocommit=True) as conn,
    ):
        warehouse.ensure_landing_tables(conn)
        for module in MODULES.values():
            endpoint = Endpoint(sim.module_url(module.name), f"sim-{module.name}-token")
            with ModuleClient(module, endpoint, load_settings()) as client:
                for window in reversed(hours):  # oldest first: the gate's volume history
                    hub.land_and_load(client, conn, window)
            print(f"{module.name}: {len(hours)} hours landed, audited and loaded")


def dbt(pg: PrivatePostgres, *args: str) -> None:
    project = project_root()
    env = os.environ | {
        "HUB_WAREHOUSE_HOST": pg.host,
        "HUB_WAREHOUSE_PORT": str(pg.port),
        "HUB_WAREHOUSE_USER": pg.user,
        "HUB_WAREHOUSE_DB": DEV_DATABASE,
    }
    executable = project / ".venv-dbt" / "bin" / "dbt"
    subprocess.run(
        [str(executable), *args, "--profiles-dir", "."],
        cwd=project / "dbt_project",
        env=env,
        check=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analytics_hub.stack.dbt_dev", description=__doc__
    )
    parser.add_argument("--days", type=int, default=3, help="days of simulated data (default 3)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    pg = PrivatePostgres().start()  # left running: the dev loop goes on against it
    fill(pg, args.days, args.seed)
    dbt(pg, "build")
    dbt(pg, "docs", "generate")
    print(
        f"\ndev warehouse: {pg.dsn(DEV_DATABASE)} (schema analytics); docs in "
        "dbt_project/target/index.html\nnext builds: cd dbt_project && "
        f"HUB_WAREHOUSE_PORT={pg.port} HUB_WAREHOUSE_DB={DEV_DATABASE} "
        "../.venv-dbt/bin/dbt build --profiles-dir .\nstop the cluster with `make down`"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
