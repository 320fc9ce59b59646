"""Real module hosts: ``HUB_<MODULE>_URL`` / ``_TOKEN`` / ``_TIMEZONE``, from the environment
or ``.env``, decide per module whether ``make run`` and ``make airflow`` pull its real host
or a simulator, and the local Airflow's ``hub_<module>`` connections follow."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from analytics_hub.settings import ConfigurationError, load_module_hosts
from analytics_hub.sources import MODULES
from hub_dev.airflow_env import connections_env
from hub_dev.local_hub import local_environ, local_stack_env, simulators_for
from hub_dev.postgres import PrivatePostgres
from simulators import SimulatorConfig

SIMULATOR_URL = "http://127.0.0.1:8600"


def test_no_module_variable_means_no_real_host() -> None:
    assert load_module_hosts({}) == {}
    assert load_module_hosts({"HUB_REGISTRY_URL": "  ", "HUB_LAKE_URL": "/tmp/lake"}) == {}


def test_a_token_alone_leaves_the_module_simulated() -> None:
    # a compose .env carries every module's token, for the simulators
    assert load_module_hosts({f"HUB_{m.upper()}_TOKEN": "t" for m in MODULES}) == {}


def test_a_url_and_its_token_make_a_real_host() -> None:
    hosts = load_module_hosts(
        {
            "HUB_COSTOPS_URL": "https://costops.example.internal/v2/",
            "HUB_COSTOPS_TOKEN": "s3cret",
            "HUB_COSTOPS_TIMEZONE": "Europe/Berlin",
        }
    )
    assert list(hosts) == ["costops"]
    host = hosts["costops"]
    assert host.url == "https://costops.example.internal/v2"
    assert host.token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(host)
    assert host.timezone == "Europe/Berlin"


def test_a_partial_set_names_only_the_modules_with_a_url() -> None:
    environ = {
        "HUB_REGISTRY_URL": "https://registry.example.internal",
        "HUB_REGISTRY_TOKEN": "r",
        "HUB_SENTINEL_URL": "http://sentinel.example.internal:9000",
        "HUB_SENTINEL_TOKEN": "s",
        "HUB_POLICY_TOKEN": "p",
    }
    hosts = load_module_hosts(environ)
    assert list(hosts) == ["registry", "sentinel"]
    assert hosts["registry"].timezone is None


def test_a_url_without_a_token_is_an_error_naming_the_variable() -> None:
    with pytest.raises(
        ConfigurationError, match=r"HUB_OBSERVATORY_URL is set but HUB_OBSERVATORY_TOKEN"
    ):
        load_module_hosts({"HUB_OBSERVATORY_URL": "https://observatory.example.internal"})
    with pytest.raises(ConfigurationError, match="HUB_OBSERVATORY_TOKEN"):
        load_module_hosts(
            {"HUB_OBSERVATORY_URL": "https://o.example", "HUB_OBSERVATORY_TOKEN": " "}
        )


@pytest.mark.parametrize(
    ("variable", "value"),
    [("HUB_POLICY_URL", "policy.example.internal"), ("HUB_POLICY_TIMEZONE", "Mars/Olympus")],
)
def test_a_malformed_value_is_an_error_naming_the_variable(variable: str, value: str) -> None:
    environ = {"HUB_POLICY_URL": "https://policy.example.internal", "HUB_POLICY_TOKEN": "p"}
    with pytest.raises(ConfigurationError, match=variable):
        load_module_hosts(environ | {variable: value})


def test_the_dot_env_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# compose settings\n"
        "HUB_REGISTRY_URL=https://registry.example.internal\n"
        "HUB_REGISTRY_TOKEN=from-file\n"
        "HUB_SENTINEL_URL=https://sentinel.example.internal\n"
        "HUB_SENTINEL_TOKEN=from-file\n"
    )
    environ = local_environ(tmp_path, base={"HUB_SENTINEL_URL": "", "PATH": "/bin"})
    assert environ["PATH"] == "/bin"
    hosts = load_module_hosts(environ)
    assert list(hosts) == ["registry"]  # the environment emptied sentinel's URL
    assert hosts["registry"].token.get_secret_value() == "from-file"


def test_without_a_dot_env_file_the_environment_is_all(tmp_path: Path) -> None:
    assert local_environ(tmp_path, base={"HUB_X": "1"}) == {"HUB_X": "1"}


def _connections(env: dict[str, str]) -> dict[str, dict[str, object]]:
    return {
        name: json.loads(env[f"AIRFLOW_CONN_{module.conn_id.upper()}"])
        for name, module in MODULES.items()
        if f"AIRFLOW_CONN_{module.conn_id.upper()}" in env
    }


def test_without_real_hosts_every_connection_points_at_the_simulators() -> None:
    connections = _connections(connections_env(SIMULATOR_URL, load_module_hosts({})))
    assert connections == {
        name: {
            "conn_type": "http",
            "host": f"{SIMULATOR_URL}/{name}",
            "password": f"sim-{name}-token",
        }
        for name in MODULES
    }


def test_without_a_simulator_only_real_hosts_get_a_connection() -> None:
    hosts = load_module_hosts({"HUB_COSTOPS_URL": "https://c.example", "HUB_COSTOPS_TOKEN": "c"})
    assert _connections(connections_env(None, hosts)) == {
        "costops": {"conn_type": "http", "host": "https://c.example", "password": "c"}
    }


def test_make_airflow_leaves_real_host_connections_to_their_hosts(
    private_pg: PrivatePostgres, tmp_path: Path
) -> None:
    """``make airflow``'s environment: the simulators serve only the modules without a URL;
    a real host's connection carries its URL, token and zone, whatever base it started from."""
    environ = {
        "HUB_REGISTRY_URL": "https://registry.example.internal",
        "HUB_REGISTRY_TOKEN": "registry-token",
        "HUB_COSTOPS_URL": "https://costops.example.internal",
        "HUB_COSTOPS_TOKEN": "costops-token",
        "HUB_COSTOPS_TIMEZONE": "Asia/Tokyo",
        "HUB_POLICY_TOKEN": "ignored: policy has no URL",
    }
    hosts = load_module_hosts(environ)
    env = local_stack_env(
        private_pg,
        SIMULATOR_URL,
        hosts,
        environ,
        api_port=8123,
        home=tmp_path / "af",
        project=tmp_path,
    )
    connections = _connections(env)
    assert connections["registry"] == {
        "conn_type": "http",
        "host": "https://registry.example.internal",
        "password": "registry-token",
    }
    assert connections["costops"] == {
        "conn_type": "http",
        "host": "https://costops.example.internal",
        "password": "costops-token",
        "extra": {"timezone": "Asia/Tokyo"},
    }
    for name in set(MODULES) - {"registry", "costops"}:
        assert connections[name]["host"] == f"{SIMULATOR_URL}/{name}"
        assert connections[name]["password"] == f"sim-{name}-token"
    assert env["HUB_REGISTRY_URL"] == "https://registry.example.internal"  # the base is kept
    assert env["HUB_LAKE_URL"] == str(tmp_path / ".local" / "lake")
    assert env["AIRFLOW__API__PORT"] == "8123"


def test_the_simulators_start_only_for_simulated_modules() -> None:
    with simulators_for([], SimulatorConfig()) as url:
        assert url is None
    with simulators_for(["policy"], SimulatorConfig()) as url:
        assert url is not None
        assert httpx.get(f"{url}/_sim/health", timeout=5).status_code == 200
