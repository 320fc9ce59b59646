"""The windows of a run: from its data interval or its params, and on its Asset events."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from analytics_hub import orchestration
from analytics_hub.settings import ConfigurationError
from analytics_hub.sources import MODULES
from analytics_hub.windows import Window, WindowError

HOURLY_MODULES = [m.name for m in MODULES.values() if m.schedule == "0 * * * *"]
QUARTER_HOURLY_MODULES = [m.name for m in MODULES.values() if m.schedule == "*/15 * * * *"]


def params(start: str | None, end: str | None, **more: Any) -> dict[str, Any]:
    return {"window_start": start, "window_end": end, **more}


def manifest(entity: str, start: str, end: str, landed: int = 3) -> dict[str, Any]:
    return {
        "module": "policy",
        "entity": entity,
        "window_start": start,
        "window_end": end,
        "landed": landed,
        "dead_lettered": 1,
        "pulled": landed + 1,
    }


@pytest.fixture(autouse=True)
def default_maximum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUB_MAX_MANUAL_WINDOW_HOURS", raising=False)


def test_a_scheduled_run_pulls_its_data_interval() -> None:
    start, end = datetime(2026, 11, 24, 6, tzinfo=UTC), datetime(2026, 11, 24, 7, tzinfo=UTC)
    assert orchestration.resolve_windows("policy", params(None, None), start, end) == [
        Window(start, end)
    ]


def test_a_params_range_is_split_into_the_modules_scheduled_windows() -> None:
    asked = params("2026-11-24T06:00:00Z", "2026-11-24T08:00:00Z")
    assert len(orchestration.resolve_windows("policy", asked, None, None)) == 8
    hourly = orchestration.resolve_windows("costops", asked, None, None)
    assert [str(w) for w in hourly] == [
        "[2026-11-24T06:00:00Z, 2026-11-24T07:00:00Z)",
        "[2026-11-24T07:00:00Z, 2026-11-24T08:00:00Z)",
    ]


def test_a_misaligned_params_range_is_refused_naming_aligned_ones() -> None:
    asked = params("2026-11-24T06:07:00Z", "2026-11-24T07:07:00Z")
    with pytest.raises(WindowError, match="of module 'costops'; use \\[2026-11-24T06:00:00Z"):
        orchestration.resolve_windows("costops", asked, None, None)


def test_a_hundred_year_params_range_is_refused() -> None:
    asked = params("1990-01-01T00:00:00Z", "2090-01-01T00:00:00Z")
    with pytest.raises(WindowError, match="Backfill"):
        orchestration.resolve_windows("policy", asked, None, None)


def test_the_maximum_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = params("2026-11-24T06:00:00Z", "2026-11-24T09:00:00Z")
    monkeypatch.setenv("HUB_MAX_MANUAL_WINDOW_HOURS", "2")
    with pytest.raises(WindowError, match="more than the 2 hours"):
        orchestration.resolve_windows("costops", asked, None, None)
    monkeypatch.setenv("HUB_MAX_MANUAL_WINDOW_HOURS", "a week")
    with pytest.raises(ConfigurationError, match="HUB_MAX_MANUAL_WINDOW_HOURS"):
        orchestration.resolve_windows("costops", asked, None, None)


@pytest.mark.parametrize(
    "asked", [params("2026-11-24T06:00:00Z", None), params(None, "2026-11-24T07:00:00Z")]
)
def test_one_bound_only_is_a_configuration_error(asked: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="both params window_start and window_end"):
        orchestration.resolve_windows("policy", asked, None, None)


def test_bad_params_fail_their_task_without_retries() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    with (
        pytest.raises(AirflowFailException, match="not aligned"),
        orchestration.refusing_bad_params(),
    ):
        orchestration.resolve_windows(
            "costops", params("2026-11-24T06:07:00Z", "2026-11-24T07:07:00Z"), None, None
        )


def test_a_single_window_event_keeps_its_top_level_keys() -> None:
    extra = orchestration.landed_window_extra(
        manifest("violations", "2026-11-24T06:00:00Z", "2026-11-24T06:15:00Z")
    )
    assert extra == {
        "module": "policy",
        "entity": "violations",
        "window_start": "2026-11-24T06:00:00Z",
        "window_end": "2026-11-24T06:15:00Z",
        "landed": 3,
        "dead_lettered": 1,
        "windows": [
            {
                "window_start": "2026-11-24T06:00:00Z",
                "window_end": "2026-11-24T06:15:00Z",
                "landed": 3,
                "dead_lettered": 1,
            }
        ],
    }


def test_one_event_carries_several_windows_and_the_load_reads_them_all() -> None:
    first = manifest("violations", "2026-11-24T06:00:00Z", "2026-11-24T06:15:00Z")
    second = manifest("violations", "2026-11-24T06:15:00Z", "2026-11-24T06:30:00Z", landed=0)
    several = orchestration.landed_window_extra(first, second)
    assert "window_start" not in several
    assert [w["landed"] for w in several["windows"]] == [3, 0]
    single = orchestration.landed_window_extra(
        manifest("audit", "2026-11-24T06:00:00Z", "2026-11-24T06:15:00Z")
    )
    stored = {  # an event written with only the top-level keys
        key: single[key] for key in ("module", "entity", "window_start", "window_end")
    }
    events = {
        "violations": [SimpleNamespace(extra=several)],
        "audit": [SimpleNamespace(extra=single), SimpleNamespace(extra=stored)],
        "replayed": [SimpleNamespace(extra=None)],
    }
    assert orchestration.windows_from_asset_events(events) == [
        ("policy", "violations", Window.parse("2026-11-24T06:00:00Z", "2026-11-24T06:15:00Z")),
        ("policy", "violations", Window.parse("2026-11-24T06:15:00Z", "2026-11-24T06:30:00Z")),
        ("policy", "audit", Window.parse("2026-11-24T06:00:00Z", "2026-11-24T06:15:00Z")),
    ]


def test_an_event_is_about_one_entity() -> None:
    with pytest.raises(ValueError, match="one entity"):
        orchestration.landed_window_extra(
            manifest("violations", "2026-11-24T06:00:00Z", "2026-11-24T06:15:00Z"),
            manifest("audit", "2026-11-24T06:00:00Z", "2026-11-24T06:15:00Z"),
        )


def test_a_reload_splits_the_range_per_module() -> None:
    asked = orchestration.windows_from_params(
        params("2026-11-24T06:00:00Z", "2026-11-24T07:00:00Z")
    )
    per_module: dict[str, set[Window]] = {}
    for module, _entity, window in asked:
        per_module.setdefault(module, set()).add(window)
    assert {m: len(w) for m, w in per_module.items()} == {
        **dict.fromkeys(HOURLY_MODULES, 1),
        **dict.fromkeys(QUARTER_HOURLY_MODULES, 4),
    }
    entities = {(module, entity) for module, entity, _ in asked}
    assert entities == {(m.name, e.name) for m in MODULES.values() for e in m.entities}


def test_a_reload_narrowed_to_a_module_and_entity() -> None:
    asked = orchestration.windows_from_params(
        params("2026-11-24T06:00:00Z", "2026-11-24T06:30:00Z", module="policy", entity="audit")
    )
    assert [(m, e, str(w)) for m, e, w in asked] == [
        ("policy", "audit", "[2026-11-24T06:00:00Z, 2026-11-24T06:15:00Z)"),
        ("policy", "audit", "[2026-11-24T06:15:00Z, 2026-11-24T06:30:00Z)"),
    ]
    only_entity = orchestration.windows_from_params(
        params("2026-11-24T06:00:00Z", "2026-11-24T07:00:00Z", entity="events")
    )
    assert {(m, e) for m, e, _ in only_entity} == {("registry", "events")}


def test_no_params_reload_nothing() -> None:
    assert orchestration.windows_from_params({}) == []
    assert orchestration.windows_from_params(params(None, None, module=None, entity=None)) == []


@pytest.mark.parametrize(
    ("asked", "error", "message"),
    [
        (params("2026-11-24T06:00:00Z", None), ConfigurationError, "both params"),
        (
            params("2026-11-24T06:00:00Z", "2026-11-24T07:00:00Z", module="nope"),
            ConfigurationError,
            "unknown module 'nope' in params; known: registry, policy",
        ),
        (
            params("2026-11-24T06:00:00Z", "2026-11-24T07:00:00Z", entity="nope"),
            ConfigurationError,
            "no entity 'nope' in any module; known: assets, audit, budgets",
        ),
        (
            params(
                "2026-11-24T06:00:00Z", "2026-11-24T07:00:00Z", module="policy", entity="metrics"
            ),
            ConfigurationError,
            "no entity 'metrics' in module 'policy'; known: audit, evaluations, violations$",
        ),
        (params(None, None, module="policy"), ConfigurationError, "give the window too"),
        (
            params("2026-11-24T06:15:00Z", "2026-11-24T06:30:00Z"),
            WindowError,
            "not aligned to schedule '0 \\* \\* \\* \\*' of module",
        ),
        (
            params("2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z", module="costops"),
            WindowError,
            "Backfill",
        ),
    ],
)
def test_a_reload_with_bad_params_is_refused_clearly(
    asked: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        orchestration.windows_from_params(asked)
