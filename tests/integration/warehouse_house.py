"""A warehouse of the integration tests: a database of the private PostgreSQL cluster, its
own lake, the pipeline that fills both from a simulator, and dbt on it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from analytics_hub.lake import Lake
from analytics_hub.pipeline import Pipeline
from analytics_hub.settings import load_gate_settings, load_settings
from analytics_hub.windows import Window
from hub_dev.dbt import DbtRunner
from hub_dev.local_hub import simulator_endpoints
from hub_dev.postgres import PrivatePostgres
from simulators import SimulatorProcess


class Warehouse:
    def __init__(
        self,
        pg: PrivatePostgres,
        root: Path,
        sim: SimulatorProcess,
        database: str = "warehouse_truth",
        lake_of: Warehouse | None = None,
    ):
        """``lake_of``: start from a copy of that warehouse's lake (see ``load``)."""
        self.pg, self.root, self.sim = pg, root, sim
        self.database = database
        pg.create_database(self.database)
        self.dsn = pg.dsn(self.database)
        if lake_of is not None:
            shutil.copytree(lake_of.lake.root, root / "lake")
        self.pipeline = Pipeline.from_settings(
            load_settings(lake_url=str(root / "lake")),
            load_gate_settings(work_dir=str(root / "work")),
            pseudonym_key=b"k",
        )
        self.lake: Lake = self.pipeline.lake
        self.dbt_runner = DbtRunner(self.dsn, target_path=root / "target", log_path=root / "logs")

    def ingest_and_load(self, windows: list[Window]) -> None:
        """Pull the windows of every module (the lake gate audits and publishes each), and
        load them."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            self.pipeline.run(simulator_endpoints(self.sim.url), windows, conn)

    def load(self, windows: list[Window]) -> None:
        """Load the windows of every module from the lake, where the gate approved them
        already: the same rows as pulling them again, without paying the pull and the gate
        for every warehouse."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            self.pipeline.load(conn, windows)

    def dbt_build(self, *extra: str) -> None:
        self.dbt_runner.run("build", *extra)

    def dbt(self, command: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.dbt_runner.run(command, *extra, check=False)

    def dbt_process(self, command: str, *extra: str) -> subprocess.Popen[str]:
        """dbt started, not waited for (its output: stdout, stderr merged into it)."""
        return self.dbt_runner.start(command, *extra)

    def query(self, sql: str) -> list[dict[str, Any]]:
        with psycopg.connect(self.dsn) as conn, conn.cursor(row_factory=dict_row) as cursor:
            cursor.execute(sql)  # type: ignore[arg-type]
            return cursor.fetchall()

    def one(self, sql: str) -> Any:
        return next(iter(self.query(sql)[0].values()))
