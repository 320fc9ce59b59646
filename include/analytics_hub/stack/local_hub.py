"""The hub's settings for a local run: a local lake, a local secret, simulated modules.

Shared by the main job (``make run``) and the local Airflow UI (``make airflow``) so that
both see the same lake and the same connections.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from analytics_hub.stack.airflow_env import connections_env
from analytics_hub.stack.net import project_root


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


def local_hub_env(simulator_url: str, project: Path | None = None) -> dict[str, str]:
    """``HUB_*`` settings and Airflow connections for the local lake and the simulators."""
    return {
        "HUB_LAKE_URL": str(local_dir(project) / "lake"),
        "HUB_PSEUDONYM_KEY": local_pseudonym_key(project),
        **connections_env(simulator_url),
    }
