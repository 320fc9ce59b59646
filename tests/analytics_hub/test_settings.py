"""The one settings object: ``HUB_*``, the gates' ``HUB_QUALITY_*`` part, the project root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from analytics_hub.settings import (
    ConfigurationError,
    load_gate_settings,
    load_settings,
    project_root,
    quality_url,
)


@pytest.fixture(autouse=True)
def no_hub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HUB_LAKE_URL", "HUB_PROJECT_ROOT", "HUB_DBT_PROJECT_DIR", "HUB_DBT_EXECUTABLE"):
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in os.environ if n.startswith("HUB_QUALITY_")]:
        monkeypatch.delenv(name)


def test_the_gates_variables_set_the_quality_part(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_QUALITY_URL", "s3://bucket/quality")
    monkeypatch.setenv("HUB_QUALITY_MAX_BAD_ROW_SHARE", "0.2")
    monkeypatch.setenv("HUB_QUALITY_MART_WINDOW_HOURS", "6")
    monkeypatch.setenv("HUB_LAKE_URL", "s3://bucket/lake")
    settings = load_settings()
    assert settings.lake_url == "s3://bucket/lake"
    assert settings.quality.url == "s3://bucket/quality"
    assert settings.quality.max_bad_row_share == 0.2
    assert settings.quality.mart_window_hours == 6
    assert settings.quality.volume_history_days == 7  # the default


def test_overrides_of_the_gate_keep_its_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_QUALITY_VOLUME_HISTORY_DAYS", "3")
    gate = load_gate_settings(work_dir="/tmp/work")
    assert (gate.work_dir, gate.volume_history_days) == ("/tmp/work", 3)
    assert load_settings(quality={"url": "/q"}).quality.volume_history_days == 3


def test_a_bad_gate_setting_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_QUALITY_MAX_BAD_ROW_SHARE", "3")
    with pytest.raises(ConfigurationError, match="HUB_QUALITY_MAX_BAD_ROW_SHARE"):
        load_settings()


@pytest.mark.parametrize(
    ("lake", "quality"),
    [
        ("s3://bucket/hub/lake", "s3://bucket/hub/quality"),
        ("s3://bucket/lake", "s3://bucket/quality"),
        ("/data/lake/", "/data/quality"),
        ("file:///data/lake", "/data/quality"),
    ],
)
def test_the_quality_root_is_beside_the_lake(lake: str, quality: str) -> None:
    assert quality_url(load_settings(lake_url=lake)) == quality


def test_the_quality_url_wins_over_the_lake() -> None:
    settings = load_settings(lake_url="s3://bucket/lake", quality={"url": "s3://other/q"})
    assert quality_url(settings) == "s3://other/q"
    assert quality_url(settings, load_gate_settings(url="/elsewhere")) == "/elsewhere"


def test_the_local_defaults_hang_from_the_project_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert (project_root() / "include" / "analytics_hub" / "settings.py").is_file()
    monkeypatch.setenv("HUB_PROJECT_ROOT", str(tmp_path))
    settings = load_settings()
    assert project_root() == tmp_path
    assert settings.lake_url == str(tmp_path / ".local" / "lake")
    assert settings.quality.work_dir == str(tmp_path / ".local" / "quality-work")
    assert settings.dbt_project_dir == tmp_path / "dbt_project"
    assert settings.dbt_executable == tmp_path / ".venv-dbt" / "bin" / "dbt"


def test_a_deployment_names_its_dbt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_DBT_PROJECT_DIR", "/opt/airflow/dbt_project")
    monkeypatch.setenv("HUB_DBT_EXECUTABLE", "/opt/dbt/bin/dbt")
    settings = load_settings()
    assert settings.dbt_project_dir == Path("/opt/airflow/dbt_project")
    assert settings.dbt_executable == Path("/opt/dbt/bin/dbt")
