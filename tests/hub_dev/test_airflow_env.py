"""The local Airflow environment points at the private cluster and migrates only once."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from hub_dev.airflow_env import (
    WAREHOUSE_CONN_ENV,
    airflow_env,
    dags_test_many,
    migrate_once,
    serialize_dags,
)
from hub_dev.net import port_is_free
from hub_dev.postgres import PrivatePostgres


def test_env_settings(private_pg: PrivatePostgres, tmp_path: Path) -> None:
    env = airflow_env(private_pg, home=tmp_path / "af", project=tmp_path, api_port=8123, base={})
    assert env["AIRFLOW_HOME"] == str(tmp_path / "af")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == (
        f"postgresql+psycopg://postgres@127.0.0.1:{private_pg.port}/airflow"
    )
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(tmp_path / "dags")
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(tmp_path / "plugins")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "4"
    assert env["AIRFLOW__API__PORT"] == "8123"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://localhost:8123/execution/"
    assert WAREHOUSE_CONN_ENV not in env  # only when asked for: base={} had none


def test_the_warehouse_connection_is_the_one_the_tasks_read(
    private_pg: PrivatePostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``warehouse=`` points ``hub_warehouse`` at a database of the cluster (created), which
    the tasks' window lease and the load reach through ``orchestration``."""
    from analytics_hub import orchestration

    env = airflow_env(private_pg, home=tmp_path, project=tmp_path, base={}, warehouse="wh_env")
    assert f"AIRFLOW_CONN_{orchestration.WAREHOUSE_CONN_ID.upper()}" == WAREHOUSE_CONN_ENV
    monkeypatch.setenv(WAREHOUSE_CONN_ENV, env[WAREHOUSE_CONN_ENV])
    with psycopg.connect(orchestration.warehouse_conninfo()) as conn:
        assert conn.execute("select current_database()").fetchone() == ("wh_env",)


def test_default_api_port_is_free(private_pg: PrivatePostgres, tmp_path: Path) -> None:
    port = int(airflow_env(private_pg, home=tmp_path, project=tmp_path)["AIRFLOW__API__PORT"])
    assert port_is_free(port)


PROBE_DAGS = """
from datetime import datetime

from airflow.sdk import DAG, get_current_context, task

for dag_id in ("probe", "probe_fails"):
    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1)):

        @task
        def say(fail: bool = dag_id == "probe_fails") -> None:
            print(f"probe says {get_current_context()['params']}")
            if fail:
                raise RuntimeError("probe failed on purpose")

        say()
"""


@pytest.fixture(scope="module")
def migrated(
    private_pg: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    project = tmp_path_factory.mktemp("project")
    project.chmod(0o755)
    env = airflow_env(private_pg, home=project / "af", project=project)
    env["HUB_TEST_MIGRATION_SECONDS"] = str(migrate_once(private_pg, env))
    return env


@pytest.mark.integration
def test_migrate_once(private_pg: PrivatePostgres, migrated: dict[str, str]) -> None:
    env = migrated
    assert env["HUB_TEST_MIGRATION_SECONDS"] != "None"  # the first call migrated
    assert migrate_once(private_pg, env) is None  # stamped: nothing to do
    with psycopg.connect(private_pg.dsn("airflow")) as conn:
        tables = conn.execute(
            "select count(*) from information_schema.tables where table_name in "
            "('dag', 'task_instance', 'alembic_version')"
        ).fetchone()
    assert tables == (3,)


@pytest.mark.integration
def test_a_batch_of_dag_runs_reports_each_run_on_its_own(migrated: dict[str, str]) -> None:
    """Runs in one process each get their own code and output; one failing, or a DAG that
    does not exist, fails that run alone."""
    dags = Path(migrated["AIRFLOW__CORE__DAGS_FOLDER"])
    dags.mkdir(exist_ok=True)
    (dags / "probe.py").write_text(PROBE_DAGS)
    serialize_dags(migrated)
    runs = [("probe", {"n": 1}), ("probe_fails", None), ("probe", {"n": 2}), ("nowhere", None)]
    results = dags_test_many(migrated, runs, processes=2)
    assert [r.returncode for r in results] == [0, 1, 0, 1]
    first, failed, second, missing = (r.stdout for r in results)
    assert "probe says {'n': 1}" in first and "{'n': 2}" not in first
    assert "probe failed on purpose" in failed and "probe says" in failed
    assert "probe says {'n': 2}" in second and "{'n': 1}" not in second
    assert "nowhere" in missing and "could not be found" in missing
