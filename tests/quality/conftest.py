"""The dbt project's manifest, parsed once per session: the mart gate reads the marts from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub_dev.dbt import DbtRunner


@pytest.fixture(scope="session")
def dbt_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``target/manifest.json`` of a fresh ``dbt parse`` (no warehouse needed)."""
    target = tmp_path_factory.mktemp("dbt-parse") / "target"
    DbtRunner(None, target_path=target, log_path=target.parent / "logs").run(
        "parse", "--quiet", "--no-partial-parse"
    )
    return target / "manifest.json"
