"""docker-compose.yml is valid Compose, self-consistent, pinned, and holds no secrets.

Docker cannot run here, so the file is checked statically: against the official
compose-spec JSON schema (vendored in tests/fixtures, see its NOTICE), then for the
mistakes the schema cannot see.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import yaml

from analytics_hub.settings import module_host_variable, project_root
from analytics_hub.sources import MODULES

ROOT = project_root()
COMPOSE_FILE = ROOT / "docker-compose.yml"
SCHEMA_FILE = ROOT / "tests" / "fixtures" / "compose-spec.json"

AIRFLOW_VERSION = "3.3.2"
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
}
EXPECTED_SERVICES = AIRFLOW_SERVICES | {
    "postgres-airflow",
    "timescaledb",
    "minio",
    "minio-init",
    "simulators",
}
HTTP_MODULES = tuple(MODULES)
# Images allowed to float, each with the reason documented beside it in docker-compose.yml.
UNPINNED_ALLOWED = {"timescale/timescaledb:latest-pg17"}

# ${VAR}, ${VAR:-default}, ${VAR:?message}; "$${...}" is an escaped literal for the container.
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
SENSITIVE_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|FERNET|PSEUDONYM_KEY|ACCESS_KEY", re.I)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _only_interpolation(value: str) -> bool:
    return bool(INTERPOLATION.fullmatch(value.strip()))


def test_schema_itself_is_valid() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["title"] == "Compose Specification"


def test_valid_against_compose_spec(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    errors = sorted(
        jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path)
    )
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message[:300]}" for e in errors)


def test_expected_services(services: dict[str, Any]) -> None:
    assert set(services) == EXPECTED_SERVICES


def test_references_resolve(compose: dict[str, Any], services: dict[str, Any]) -> None:
    declared_volumes = set(compose.get("volumes") or {})
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        for target in depends if isinstance(depends, list) else depends.keys():
            assert target in services, f"{name} depends on unknown service {target}"
            assert target != name
        for source in service.get("volumes_from") or []:
            ref = source.split(":")[0]
            if not ref.startswith("container"):
                assert ref in services, f"{name} takes volumes from unknown service {ref}"
        for mount in service.get("volumes") or []:
            if isinstance(mount, str):
                source = mount.split(":")[0]
                if ":" in mount and not source.startswith((".", "/", "~", "$")):
                    assert source in declared_volumes, f"{name}: volume {source} not declared"
            elif mount.get("type") == "volume" and mount.get("source"):
                assert mount["source"] in declared_volumes, f"{name}: {mount['source']}"


def test_dependency_conditions_are_meaningful(services: dict[str, Any]) -> None:
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: use the long depends_on form with conditions"
        for target, spec in depends.items():
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits on {target}'s health"
            if condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} must run once"


def test_long_running_services_have_healthchecks(services: dict[str, Any]) -> None:
    one_shot = {name for name, s in services.items() if s.get("restart") == "no"}
    for name in set(services) - one_shot:
        assert "healthcheck" in services[name], f"{name} has no healthcheck"


def test_images_are_pinned(services: dict[str, Any]) -> None:
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name} has no image"
        last = image.rsplit("/", 1)[-1]
        assert ":" in last or "@sha256:" in image, f"{name}: image {image} has no tag"
        tag = last.split(":", 1)[1]
        if image in UNPINNED_ALLOWED:
            continue
        assert "latest" not in tag, f"{name}: {image} floats; pin a version"
        if "build" not in service:
            assert re.search(r"\d", tag), f"{name}: {image} tag has no version"


def test_warehouse_is_timescaledb_on_pg17(services: dict[str, Any]) -> None:
    image = services["timescaledb"]["image"]
    assert image.startswith("timescale/timescaledb:")
    assert image.endswith("-pg17")


def test_airflow_image_and_dockerfile_agree(services: dict[str, Any]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"FROM apache/airflow:{AIRFLOW_VERSION}-python3.11" in dockerfile
    requirements = (ROOT / "requirements.txt").read_text()
    assert f"apache-airflow=={AIRFLOW_VERSION}\n" in requirements
    images = {services[name]["image"] for name in AIRFLOW_SERVICES}
    assert len(images) == 1, images
    targets = {services[name]["build"]["target"] for name in AIRFLOW_SERVICES}
    assert targets == {"product"}, targets


def test_the_simulators_run_the_dev_stage_of_the_same_dockerfile(services: dict[str, Any]) -> None:
    """The product's image holds no dev harness (tests/test_layering.py); the simulators
    run the Dockerfile's ``dev`` stage, the product's image plus ``dev/``."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM \S+ AS product$", dockerfile, re.MULTILINE)
    assert re.search(r"^FROM product AS dev$", dockerfile, re.MULTILINE)
    assert "COPY --chown=airflow:0 dev " in dockerfile.split(" AS dev\n", 1)[1]
    simulators = services["simulators"]
    airflow_build = services["airflow-scheduler"]["build"]
    assert simulators["build"] == {**airflow_build, "target": "dev"}
    assert simulators["image"] != services["airflow-scheduler"]["image"]
    assert simulators["entrypoint"] == ["python", "-m", "simulators"]


def test_airflow_connections(services: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        env = _environment(services[name])
        conns = {
            key.removeprefix("AIRFLOW_CONN_").lower(): json.loads(
                INTERPOLATION.sub("PLACEHOLDER", value)
            )
            for key, value in env.items()
            if key.startswith("AIRFLOW_CONN_")
        }
        assert conns["hub_lake"]["conn_type"] == "aws"
        assert conns["hub_lake"]["extra"]["endpoint_url"] == "http://minio:9000"
        assert conns["hub_warehouse"]["conn_type"] == "postgres"
        assert conns["hub_warehouse"]["host"] == "timescaledb"
        for module in HTTP_MODULES:
            conn = conns[f"hub_{module}"]
            assert conn["conn_type"] == "http"
            assert conn["host"] == conn["password"] == conn["extra"]["timezone"] == "PLACEHOLDER"
        assert re.fullmatch(r"s3://\$\{HUB_LAKE_BUCKET[^}]*\}/lake", env["HUB_LAKE_URL"])
        assert _only_interpolation(env["HUB_PSEUDONYM_KEY"])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"


def test_module_connections_come_from_the_module_variables(services: dict[str, Any]) -> None:
    """``HUB_<MODULE>_URL`` points a module at its real host, else at the simulators; its
    token is required; an unset zone is left to the source table. The variables are the
    ones ``make run`` and ``make airflow`` read (``analytics_hub.settings``)."""
    for name in AIRFLOW_SERVICES:
        env = _environment(services[name])
        for module in HTTP_MODULES:
            conn = json.loads(env[f"AIRFLOW_CONN_HUB_{module.upper()}"])
            url, token, zone = (
                module_host_variable(module, setting) for setting in ("url", "token", "timezone")
            )
            assert conn["host"] == f"${{{url}:-http://simulators:8600/{module}}}"
            assert re.fullmatch(rf"\$\{{{token}:\?[^}}]*\}}", conn["password"])
            assert conn["extra"] == {"timezone": f"${{{zone}:-}}"}


def test_no_literal_secrets(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for key, value in _environment(service).items():
            if SENSITIVE_NAME.search(key):
                assert _only_interpolation(value), f"{name}: {key} must come from the env"
            if key.startswith("AIRFLOW_CONN_"):
                conn = json.loads(INTERPOLATION.sub("PLACEHOLDER", value))
                for field in ("password", "login"):
                    if field in conn:
                        assert conn[field] == "PLACEHOLDER", f"{name}: {key}.{field}"
        for text in _strings(service):
            for match in re.finditer(r"://([^:/@\s'\"]+):([^@\s'\"]+)@", text):
                assert _only_interpolation(match.group(2)), f"{name}: password in a URL"
            for match in re.finditer(r"--token=\w+=(\S+)", text):
                assert _only_interpolation(match.group(1)), f"{name}: literal token"


def test_secrets_are_required_not_defaulted(compose: dict[str, Any]) -> None:
    for text in _strings(compose):
        for match in INTERPOLATION.finditer(text):
            var, operator, default = match.groups()
            if SENSITIVE_NAME.search(var):
                assert operator == ":?", f"${{{var}}} must be required (:?), not defaulted"
                assert not (default or "").strip() or "set " in default


def test_every_variable_is_in_env_example(compose: dict[str, Any]) -> None:
    # Optional variables (the real module hosts) are listed commented out, as `# NAME=...`:
    # scripts/gen-env fills every empty value that is not.
    example = {
        match.group(1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if (match := re.match(r"(?:#\s*)?([A-Z][A-Z0-9_]*)=", line.strip()))
    }
    used = {m.group(1) for text in _strings(compose) for m in INTERPOLATION.finditer(text)}
    assert used <= example, f"missing from .env.example: {sorted(used - example)}"
    unused = example - used
    assert not unused, f".env.example lists unused variables: {sorted(unused)}"
    for line in (ROOT / ".env.example").read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and SENSITIVE_NAME.search(name) and not line.lstrip().startswith("#"):
            assert not value.strip(), f".env.example ships a value for {name}"
        if sep and name.endswith(("_URL", "_TIMEZONE")) and not line.lstrip().startswith("#"):
            assert value.strip(), f"{name}: scripts/gen-env would fill it with a secret"


def test_the_lake_bucket_keeps_every_version(services: dict[str, Any]) -> None:
    """Write-audit-publish keeps a replaced window for days; the bucket keeps it for good."""
    script = "\n".join(services["minio-init"]["command"])
    made = script.index('mc mb --ignore-existing "hub/$${HUB_LAKE_BUCKET}"')
    versioned = script.index('mc version enable "hub/$${HUB_LAKE_BUCKET}"')
    assert made < versioned
