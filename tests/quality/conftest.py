"""The dbt project's manifest, parsed once per session: the mart gate reads the marts from it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
DBT = PROJECT / ".venv-dbt" / "bin" / "dbt"


@pytest.fixture(scope="session")
def dbt_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``target/manifest.json`` of a fresh ``dbt parse`` (no warehouse needed)."""
    target = tmp_path_factory.mktemp("dbt-parse") / "target"
    parsed = subprocess.run(
        [
            str(DBT),
            "parse",
            "--quiet",
            "--no-partial-parse",
            "--project-dir",
            str(PROJECT / "dbt_project"),
            "--profiles-dir",
            str(PROJECT / "dbt_project"),
            "--target-path",
            str(target),
            "--log-path",
            str(target.parent / "logs"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert parsed.returncode == 0, parsed.stdout[-6000:] + parsed.stderr[-2000:]
    return target / "manifest.json"
