"""The hub's settings for a local run: a local lake, a local secret, simulated modules.

Shared by the main job (``make run``) and the local Airflow UI (``make airflow``) so that
both see the same lake and the same connections.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from analytics_hub.stack.airflow_env import connections_env
from analytics_hub.stack.net import project_root
from analytics_hub.stack.postgres import PrivatePostgres


def local_dir(project: Path | None = None) -> Path:
    return (project or project_root()) / ".local"


def local_pseudonym_key(project: Path | None = None) -> str:
    """A random key made once per checkout in ``.local/`` (git-ignored), never committed."""
    path = local_dir(project) / "pseudonym.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


WAREHOUSE_DATABASE = "warehouse"


def local_hub_env(
    simulator_url: str, pg: PrivatePostgres, project: Path | None = None
) -> dict[str, str]:
    """``HUB_*`` settings and Airflow connections: the local lake, the simulators, and a
    ``warehouse`` database in the private cluster (created if missing)."""
    pg.create_database(WAREHOUSE_DATABASE)
    warehouse = {
        "conn_type": "postgres",
        "host": pg.host,
        "port": pg.port,
        "login": pg.user,
        # The private cluster trusts local connections and ignores this; cosmos's profile
        # mapping insists on some password.
        "password": "trust",
        "schema": WAREHOUSE_DATABASE,
    }
    return {
        "HUB_LAKE_URL": str(local_dir(project) / "lake"),
        "HUB_PSEUDONYM_KEY": local_pseudonym_key(project),
        "AIRFLOW_CONN_HUB_WAREHOUSE": json.dumps(warehouse),
        **connections_env(simulator_url),
    }
