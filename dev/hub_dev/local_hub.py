"""The hub's settings for a local run: a local lake, a local secret, the modules.

Shared by the main job (``make run``) and the local Airflow UI (``make airflow``) so that
both see the same lake and the same connections. A module is pulled from its real host
when ``HUB_<MODULE>_URL`` and ``HUB_<MODULE>_TOKEN`` are set (in the environment or in
the project's ``.env``), and from a simulator process otherwise.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from analytics_hub.connectors import Endpoint
from analytics_hub.settings import ModuleHost, project_root
from analytics_hub.sources import MODULES
from hub_dev.airflow_env import airflow_env, connections_env, warehouse_connection_env
from hub_dev.postgres import PrivatePostgres

if TYPE_CHECKING:
    from simulators import SimulatorConfig


def local_dir(project: Path | None = None) -> Path:
    return (project or project_root()) / ".local"


def local_environ(
    project: Path | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of the local commands: ``base`` (default ``os.environ``) over the
    variables of the project's ``.env`` (git-ignored), as Docker Compose reads them: a
    variable set in the environment wins over the file."""
    from dotenv import dotenv_values

    path = (project or project_root()) / ".env"
    from_file = dotenv_values(path) if path.is_file() else {}
    environ = {name: value for name, value in from_file.items() if value is not None}
    return environ | dict(os.environ if base is None else base)


def local_pseudonym_key(project: Path | None = None) -> str:
    """A random key made once per checkout in ``.local/`` (git-ignored), never committed."""
    path = local_dir(project) / "pseudonym.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


WAREHOUSE_DATABASE = "warehouse"


@contextmanager
def simulators_for(simulated: Collection[str], config: SimulatorConfig) -> Iterator[str | None]:
    """A simulator process (its URL) when any module is simulated; None when none is."""
    if not simulated:
        yield None
        return
    from simulators import SimulatorProcess

    with SimulatorProcess(config) as sim:
        yield sim.url


def simulator_endpoints(
    simulator_url: str, modules: Iterable[str] = MODULES, tokens: Mapping[str, str] | None = None
) -> dict[str, Endpoint]:
    """Each module's endpoint on the simulator process at ``simulator_url``, with
    ``tokens`` (default the simulator's), by module name, in the order of ``modules``."""
    tokens = tokens or {}
    return {
        name: Endpoint(f"{simulator_url}/{name}", tokens.get(name, f"sim-{name}-token"))
        for name in modules
    }


def local_hub_env(
    simulator_url: str | None,
    pg: PrivatePostgres,
    project: Path | None = None,
    hosts: Mapping[str, ModuleHost] | None = None,
) -> dict[str, str]:
    """``HUB_*`` settings and Airflow connections: the local lake, a ``warehouse`` database
    in the private cluster (created if missing), and ``hub_<module>`` pointed at the
    module's real host in ``hosts``, else at the simulators (``simulator_url``)."""
    return {
        "HUB_LAKE_URL": str(local_dir(project) / "lake"),
        "HUB_PSEUDONYM_KEY": local_pseudonym_key(project),
        **warehouse_connection_env(pg, WAREHOUSE_DATABASE),
        **connections_env(simulator_url, hosts),
    }


def local_stack_env(
    pg: PrivatePostgres,
    simulator_url: str | None,
    hosts: Mapping[str, ModuleHost],
    environ: Mapping[str, str],
    *,
    api_port: int | None = None,
    home: Path | None = None,
    project: Path | None = None,
) -> dict[str, str]:
    """The environment of the local Airflow (``make run``'s ``dags test``, ``make airflow``'s
    ``standalone``): ``environ`` (see ``local_environ``), Airflow's settings (``home``, default
    ``.local/airflow``), and ``local_hub_env`` (``project`` places ``.local``)."""
    return airflow_env(pg, home=home, api_port=api_port, base=environ) | local_hub_env(
        simulator_url, pg, project, hosts
    )
