"""A dev warehouse for dbt work: ``make dbt-dev`` (``python -m hub_dev.dbt_dev``).

Fills the ``warehouse_dev`` database of the private cluster with a few days of simulated
data (pulled from the simulators, normalized, audited by the lake gate and published in
``.local/dev-lake``, loaded with the same code the DAGs run: ``Pipeline``), then runs
``dbt build`` and ``dbt docs generate`` against it and prints how to point dbt at it for
the next edit-build loop. The gate's history and Data Docs go to ``.local/dev-quality``.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

import psycopg

from analytics_hub.pipeline import Pipeline
from analytics_hub.settings import load_settings
from analytics_hub.windows import Window
from hub_dev.dbt import DbtRunner
from hub_dev.local_hub import local_dir, local_pseudonym_key, simulator_endpoints
from hub_dev.postgres import PrivatePostgres

DEV_DATABASE = "warehouse_dev"


def fill(pg: PrivatePostgres, days: int, seed: int) -> None:
    from simulators import SimulatorConfig, SimulatorProcess

    pg.create_database(DEV_DATABASE)
    hub = Pipeline.from_settings(
        load_settings(
            lake_url=str(local_dir() / "dev-lake"),
            # not beside the lake: that is .local/quality, the local hub's (make run, make airflow)
            quality={"url": str(local_dir() / "dev-quality")},
        ),
        pseudonym_key=local_pseudonym_key().encode(),
    )
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=days)
    # oldest first: the gate's volume history
    hours = [
        Window(start + timedelta(hours=h), start + timedelta(hours=h + 1)) for h in range(days * 24)
    ]
    print(f"landing, auditing and loading {len(hours)} hours of every module...")
    with (
        SimulatorProcess(SimulatorConfig(seed=seed, chaos=0.05, stall_seconds=0.0)) as sim,
        psycopg.connect(pg.dsn(DEV_DATABASE), autocommit=True) as conn,
    ):
        runs = hub.run(simulator_endpoints(sim.url), hours, conn)
    rows: Counter[str] = Counter()
    for run in runs:
        rows[run.module] += sum(load.rows for load in run.loaded)
    for module, loaded in rows.items():
        print(f"{module}: {len(hours)} hours landed, audited and loaded ({loaded:,} rows)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hub_dev.dbt_dev", description=__doc__)
    parser.add_argument("--days", type=int, default=3, help="days of simulated data (default 3)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    pg = PrivatePostgres().start()  # left running: the dev loop goes on against it
    fill(pg, args.days, args.seed)
    dbt = DbtRunner(pg.dsn(DEV_DATABASE))
    dbt.run("build", output=None)
    dbt.run("docs", "generate", output=None)
    print(
        f"\ndev warehouse: {pg.dsn(DEV_DATABASE)} (schema analytics); docs in "
        "dbt_project/target/index.html\nnext builds: cd dbt_project && "
        f"HUB_WAREHOUSE_PORT={pg.port} HUB_WAREHOUSE_DB={DEV_DATABASE} "
        "../.venv-dbt/bin/dbt build --profiles-dir .\nstop the cluster with `make down`"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
