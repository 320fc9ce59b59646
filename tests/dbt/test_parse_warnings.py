"""The dbt project parses without a warning: a warning at parse is a mistake in a model's
YAML (a misspelt config, a test on no column, a constraint dbt thinks ignored) that dbt
would otherwise only mention."""

from __future__ import annotations

import json
from pathlib import Path

from hub_dev.dbt import DbtRunner


def test_the_project_parses_without_a_warning(tmp_path: Path) -> None:
    runner = DbtRunner(None, target_path=tmp_path / "target", log_path=tmp_path / "logs")
    parsed = runner.run("parse", "--no-partial-parse", "--log-format", "json")
    events = [json.loads(line) for line in parsed.stdout.splitlines() if line.startswith("{")]
    assert any(event["info"]["name"] == "ParsePerfInfoPath" for event in events), parsed.stdout
    warnings = [event["info"]["msg"] for event in events if event["info"]["level"] == "warn"]
    assert warnings == []
