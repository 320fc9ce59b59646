"""The windows of an ingest or reload run in the DAGs: one mapped instance per window, bad params refused.

The task bodies run here without a scheduler, with the pull, the gate and the load replaced
by recorders: what is checked is which windows reach them.
"""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.definitions.taskgroup import MappedTaskGroup
from airflow.sdk.exceptions import AirflowFailException

from analytics_hub import orchestration
from analytics_hub.settings import project_root
from analytics_hub.sources import MODULES
from analytics_hub.windows import Window

DAGS_FOLDER = project_root() / "dags"
TWO_HOURS = {"window_start": "2026-11-24T06:00:00Z", "window_end": "2026-11-24T08:00:00Z"}


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS_FOLDER))


@pytest.fixture(autouse=True)
def default_maximum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUB_MAX_MANUAL_WINDOW_HOURS", raising=False)


class OutletEvents:
    """What a task sees as ``outlet_events``: an event per Asset, whose extra it sets."""

    def __init__(self) -> None:
        self.events: dict[str, SimpleNamespace] = {}

    def __getitem__(self, asset: Any) -> SimpleNamespace:
        return self.events.setdefault(asset.name, SimpleNamespace(extra=None))


def run_windows_task(dag: Any, params: dict[str, Any], start: Any = None, end: Any = None) -> Any:
    return dag.get_task("windows").python_callable(
        params=params, data_interval_start=start, data_interval_end=end
    )


@pytest.mark.parametrize("module", MODULES.values(), ids=list(MODULES))
def test_each_entity_lands_and_validates_each_window_of_the_run(
    dagbag: DagBag, module: Any
) -> None:
    dag = dagbag.dags[f"ingest_{module.name}"]
    for entity in module.entities:
        group = dag.task_group_dict[entity.name]
        assert isinstance(group, MappedTaskGroup)
        assert {task.task_id for task in group.iter_mapped_dependencies()} == {"windows"}
        land, validate = (
            dag.get_task(f"land_{entity.name}"),
            dag.get_task(f"validate_{entity.name}"),
        )
        assert {land.task_id, validate.task_id} <= set(group.children)
        assert land.upstream_task_ids == {"windows"}
        assert validate.upstream_task_ids == {land.task_id}
        assert "window_start" in land.map_index_template
        assert "window_start" in validate.map_index_template


def test_a_scheduled_run_has_its_data_interval_as_its_one_window(dagbag: DagBag) -> None:
    dag = dagbag.dags["ingest_policy"]
    windows = run_windows_task(dag, {}, "2026-11-24T06:00:00+00:00", "2026-11-24T06:15:00+00:00")
    assert windows == [
        {"window_start": "2026-11-24T06:00:00Z", "window_end": "2026-11-24T06:15:00Z"}
    ]


def test_a_params_range_lands_and_validates_per_scheduled_window(
    dagbag: DagBag, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str, str, str]] = []

    def manifest(step: str) -> Any:
        def record(module: str, entity: str, window: Window) -> dict[str, Any]:
            calls.append((step, module, entity, str(window)))
            return {"module": module, "entity": entity, **window.to_dict(), "landed": 2}

        return record

    monkeypatch.setattr(orchestration, "land_entity", manifest("land"))
    monkeypatch.setattr(
        orchestration,
        "validate_landed",
        lambda m, e, w: manifest("validate")(m, e, w) | {"dead_lettered": 0},
    )
    dag = dagbag.dags["ingest_costops"]
    windows = run_windows_task(dag, TWO_HOURS)
    assert windows == [
        {"window_start": "2026-11-24T06:00:00Z", "window_end": "2026-11-24T07:00:00Z"},
        {"window_start": "2026-11-24T07:00:00Z", "window_end": "2026-11-24T08:00:00Z"},
    ]
    events = []
    for window in windows:  # what the mapped group runs, one instance per window
        landed = dag.get_task("land_budgets").python_callable(window=window)
        outlets = OutletEvents()
        dag.get_task("validate_budgets").python_callable(landed=landed, outlet_events=outlets)
        events.append(outlets.events["lake.normalized.costops.budgets"].extra)
    assert calls == [
        (step, "costops", "budgets", window)
        for window in (
            "[2026-11-24T06:00:00Z, 2026-11-24T07:00:00Z)",
            "[2026-11-24T07:00:00Z, 2026-11-24T08:00:00Z)",
        )
        for step in ("land", "validate")
    ]
    assert [(e["window_start"], len(e["windows"])) for e in events] == [
        ("2026-11-24T06:00:00Z", 1),
        ("2026-11-24T07:00:00Z", 1),
    ]


def test_a_quarter_hourly_module_splits_an_hour_into_four(dagbag: DagBag) -> None:
    windows = run_windows_task(
        dagbag.dags["ingest_sentinel"],
        {"window_start": "2026-11-24T06:00:00Z", "window_end": "2026-11-24T07:00:00Z"},
    )
    assert [w["window_start"][11:16] for w in windows] == ["06:00", "06:15", "06:30", "06:45"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"window_start": "2026-11-24T06:07:00Z", "window_end": "2026-11-24T07:07:00Z"},
            "not aligned to schedule '0 \\* \\* \\* \\*' of module 'costops'; use ",
        ),
        (
            {"window_start": "1926-01-01T00:00:00Z", "window_end": "2026-01-01T00:00:00Z"},
            "Backfill",
        ),
        ({"window_start": "2026-11-24T06:00:00Z", "window_end": None}, "both params"),
    ],
)
def test_the_ingest_refuses_bad_params_at_once(
    dagbag: DagBag, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(AirflowFailException, match=message):
        run_windows_task(dagbag.dags["ingest_costops"], params)


@pytest.fixture
def loaded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, Window]]:
    recorded: list[tuple[str, str, Window]] = []

    def record(landed: list[tuple[str, str, Window]]) -> list[dict[str, Any]]:
        recorded.extend(landed)
        return []

    monkeypatch.setattr(orchestration, "load_landed_windows", record)
    return recorded


def run_load(dagbag: DagBag, params: dict[str, Any], events: Any = None) -> None:
    task = dagbag.dags["load_warehouse"].get_task("load_landed_windows")
    task.python_callable(triggering_asset_events=events, params=params)


def test_a_reload_loads_each_modules_scheduled_windows(
    dagbag: DagBag, loaded: list[tuple[str, str, Window]]
) -> None:
    run_load(dagbag, {"module": "policy", "entity": "audit", **TWO_HOURS})
    assert len(loaded) == 8
    assert {(m, e) for m, e, _ in loaded} == {("policy", "audit")}
    starts = [w.start.strftime("%H:%M") for _, _, w in loaded]
    assert starts == ["06:00", "06:15", "06:30", "06:45", "07:00", "07:15", "07:30", "07:45"]
    assert {w.span for _, _, w in loaded} == {timedelta(minutes=15)}


def test_a_reload_also_loads_the_windows_of_its_asset_events(
    dagbag: DagBag, loaded: list[tuple[str, str, Window]]
) -> None:
    extra = {
        "module": "costops",
        "entity": "budgets",
        "windows": [TWO_HOURS | {"landed": 1, "dead_lettered": 0}],
    }
    run_load(dagbag, {}, {"lake.normalized.costops.budgets": [SimpleNamespace(extra=extra)]})
    assert loaded == [("costops", "budgets", Window.from_dict(TWO_HOURS))]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"window_start": "2026-11-24T06:00:00Z"}, "give both params window_start and window_end"),
        ({"window_end": "2026-11-24T06:00:00Z", "module": "policy"}, "both params"),
        ({"module": "nope", **TWO_HOURS}, "unknown module 'nope' in params; known: registry"),
        ({"entity": "nope", **TWO_HOURS}, "no entity 'nope' in any module; known: assets"),
        ({"module": "costops", "entity": "audit", **TWO_HOURS}, "no entity 'audit' in module"),
        ({"entity": "audit"}, "give the window too"),
        (
            {"window_start": "2026-11-24T06:15:00Z", "window_end": "2026-11-24T07:15:00Z"},
            "not aligned to schedule",
        ),
    ],
)
def test_a_reload_refuses_bad_params_at_once(
    dagbag: DagBag, loaded: list[tuple[str, str, Window]], params: dict[str, Any], message: str
) -> None:
    with pytest.raises(AirflowFailException, match=message):
        run_load(dagbag, params)
    assert loaded == []
