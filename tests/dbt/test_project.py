"""The dbt project as dbt parses it: no warning, and the contract's vocabularies as the
product declares them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from analytics_hub.sources import ENVELOPE
from hub_dev.dbt import DbtRunner


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], Path]:
    """dbt's log events of a full parse, and the manifest it wrote."""
    root = tmp_path_factory.mktemp("dbt-parse")
    runner = DbtRunner(None, target_path=root / "target", log_path=root / "logs")
    result = runner.run("parse", "--no-partial-parse", "--log-format", "json")
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return events, root / "target" / "manifest.json"


def test_the_project_parses_without_a_warning(
    parsed: tuple[list[dict[str, Any]], Path],
) -> None:
    """A warning at parse is a mistake in a model's YAML (a misspelt config, a test on no
    column, a constraint dbt thinks ignored) that dbt would otherwise only mention."""
    events, _ = parsed
    assert any(event["info"]["name"] == "ParsePerfInfoPath" for event in events), events
    warnings = [event["info"]["msg"] for event in events if event["info"]["level"] == "warn"]
    assert warnings == []


def test_the_facts_and_tests_know_the_environments_the_lake_gate_knows(
    parsed: tuple[list[dict[str, Any]], Path],
) -> None:
    (environment,) = [field for field in ENVELOPE if field.name == "environment"]
    allowed = list(environment.values or ())
    nodes = json.loads(parsed[1].read_text())["nodes"].values()
    checks = {
        node["name"]: constraint["expression"]
        for node in nodes
        for constraint in node.get("constraints") or []
        if constraint.get("name") == "environment_values"
    }
    assert len(checks) >= 8
    assert set(checks.values()) == {"environment in (" + ", ".join(f"'{v}'" for v in allowed) + ")"}
    tested = [
        node["test_metadata"]["kwargs"]["values"]
        for node in nodes
        if node["resource_type"] == "test"
        and (node.get("test_metadata") or {}).get("name") == "accepted_values"
        and node["test_metadata"]["kwargs"].get("column_name") == "environment"
    ]
    assert tested and all(values == allowed for values in tested)
