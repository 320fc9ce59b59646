"""The marts' suites are generated from the dbt manifest: one contract per mart, in dbt.

Every mart model declares an enforced contract (a type and a description per column), and
the mart gate's suites follow it: the schema suite's columns are the contract's, its rows
suite one expectation per test, and one per constraint of the contract (a fact's column
rules) that the mart's table does not hold. A column added to a mart's SQL and YAML reaches
the gate with no change to the package (checked on a copy of the project, parsed by dbt).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import great_expectations.expectations as gxe
import pytest

from analytics_hub.quality.mart_suites import (
    CONSTRAINTS,
    TESTS,
    Constraint,
    LoadedRange,
    Mart,
    Rule,
    load_marts,
    reconciliation_query,
    reflected_type,
    rows_suite,
    schema_suite,
)
from hub_dev.dbt import DbtRunner

PROJECT = Path(__file__).resolve().parents[2]
# A mart's module: the history and the summary are filed under it.
MODULES = {
    "agg_budget_burn_monthly": "costops",
    "agg_compliance_daily": "policy",
    "agg_compliance_hourly": "policy",
    "agg_costs_daily": "costops",
    "agg_costs_hourly": "costops",
    "agg_marketplace_revenue_daily": "marketplace",
    "agg_marketplace_revenue_hourly": "marketplace",
    "agg_marketplace_usage_daily": "marketplace",
    "agg_marketplace_usage_hourly": "marketplace",
    "agg_model_latency_daily": "observatory",
    "agg_model_latency_hourly": "observatory",
    "agg_registry_events_daily": "registry",
    "agg_threats_daily": "sentinel",
    "agg_threats_hourly": "sentinel",
    "agg_violations_daily": "policy",
    "agg_violations_hourly": "policy",
    "dim_assets": "registry",
    "dim_extensions": "marketplace",
    "fct_cost_records": "costops",
    "fct_evaluations": "policy",
    "fct_marketplace_revenue": "marketplace",
    "fct_marketplace_usage": "marketplace",
    "fct_policy_audit": "policy",
    "fct_registry_events": "registry",
    "fct_requests": "observatory",
    "fct_security_events": "sentinel",
    "fct_violations": "policy",
}


def mart_nodes(manifest: Path) -> dict[str, dict[str, Any]]:
    nodes = json.loads(manifest.read_text())["nodes"].values()
    return {
        node["name"]: node
        for node in nodes
        if node["resource_type"] == "model" and node["fqn"][1:2] == ["marts"]
    }


def mart_tests(manifest: Path) -> list[dict[str, Any]]:
    nodes = json.loads(manifest.read_text())["nodes"].values()
    marts = {node["unique_id"] for node in mart_nodes(manifest).values()}
    return [
        node
        for node in nodes
        if node["resource_type"] == "test" and node.get("attached_node") in marts
    ]


def names(suite: Any) -> dict[str, str]:
    """Expectation name → severity."""
    return {e.meta["name"]: e.meta["severity"] for e in suite.expectations}


def test_every_mart_has_an_enforced_contract_a_type_and_a_description_per_column(
    dbt_manifest: Path,
) -> None:
    marts = mart_nodes(dbt_manifest)
    assert set(marts) == set(MODULES)
    for name, node in marts.items():
        assert node["config"]["contract"]["enforced"] is True, name
        assert node["description"], name
        assert node["columns"], name
        for column in node["columns"].values():
            assert column["data_type"], f"{name}.{column['name']}: no data_type"
            assert column["description"], f"{name}.{column['name']}: no description"


def test_every_mart_has_suites_generated_from_its_contract(dbt_manifest: Path) -> None:
    marts = load_marts(dbt_manifest)
    nodes = mart_nodes(dbt_manifest)

    assert {name: mart.module for name, mart in marts.items()} == MODULES
    for name, mart in marts.items():
        contract = {c["name"]: c["data_type"] for c in nodes[name]["columns"].values()}
        assert mart.columns == contract
        schema = schema_suite(mart).expectations
        columns = [e for e in schema if isinstance(e, gxe.ExpectTableColumnsToMatchSet)]
        assert [(e.column_set, e.exact_match) for e in columns] == [(list(contract), True)]
        types = {
            e.column: e.type_list
            for e in schema
            if isinstance(e, gxe.ExpectColumnValuesToBeInTypeList)
        }
        assert types == {c: [reflected_type(t)] for c, t in contract.items()}


def test_the_rows_suites_are_the_marts_dbt_tests(dbt_manifest: Path) -> None:
    marts = load_marts(dbt_manifest)
    loaded = LoadedRange(None, None)

    # a fact's column rules are its contract's constraints: checked where its table lacks them
    costs = names(rows_suite(marts["fct_cost_records"], loaded))
    assert marts["fct_cost_records"].key == ("cost_record_id",)
    assert {
        "not_null:cost_record_id": "block",
        "not_null:usage_start": "block",
        "unique_key": "block",
        "check:cost_unit_values": "block",
        "check:cost_usd_range": "block",
        "check:record_version_range": "block",
    }.items() <= costs.items()
    # …and not repeated where it holds them, as dbt creates it
    held = {str(c.held_as) for c in marts["fct_cost_records"].constraints}
    assert names(rows_suite(marts["fct_cost_records"], loaded, held)) == {"unique_key": "block"}
    requests = names(rows_suite(marts["fct_requests"], loaded, {"not_null:event_time"}))
    assert "not_null:event_time" not in requests
    assert {
        "not_null:latency_ms": "block",
        "check:latency_ms_range": "block",
        "plausible:latency_ms": "warn",  # a warning stays a test: it must not reject rows
    }.items() <= requests.items()
    violations = names(rows_suite(marts["fct_violations"], loaded))
    assert {"unique_key", "unique:event_id"} <= set(violations)
    latency = marts["agg_model_latency_hourly"]
    assert (latency.fact, latency.time_column, latency.width) == (
        "fct_requests",
        "event_time",
        "1 hour",
    )
    assert latency.key == ("bucket", "model_id", "asset_id", "environment")
    assert {
        "plausible:latency_p99_ms": "warn",
        "range:error_rate": "block",
        "accepted:environment": "block",
        "reconcile:agg_model_latency_hourly.requests=fct_requests.count(*)": "block",
        "reconcile:agg_model_latency_hourly.input_tokens=fct_requests.sum(input_tokens)": "warn",
    }.items() <= names(rows_suite(latency, loaded)).items()
    burn = marts["agg_budget_burn_monthly"]
    assert (burn.fact, burn.touched_by, burn.key) == (
        "fct_cost_records",
        None,
        ("budget_id", "period_start"),
    )
    (spend,) = burn.reconciliations
    assert (spend.measure, spend.fact_total, spend.period, spend.by) == (
        "spend_usd",
        "sum(cost_usd)",
        ("period_start", "period_end"),
        ("account_id",),
    )
    assert "join analytics.fct_cost_records as facts" in reconciliation_query(burn, spend, loaded)
    assert marts["dim_extensions"].touched_by is None  # rebuilt whole: all of it, each run


def test_every_rollup_reconciles_with_its_fact(dbt_manifest: Path) -> None:
    marts = load_marts(dbt_manifest)
    for name, mart in marts.items():
        if name.startswith("agg_"):
            assert mart.reconciliations and mart.fact, name
            assert mart.fact in marts and marts[mart.fact].module == mart.module


def test_the_gate_knows_every_kind_of_test_the_marts_declare(dbt_manifest: Path) -> None:
    kinds = {test["test_metadata"]["name"] for test in mart_tests(dbt_manifest)}
    # a new kind of test on a mart: the gate would not mirror it (mart_suites.TESTS)
    assert kinds <= TESTS, kinds - TESTS


def test_a_facts_column_rules_are_named_constraints_of_its_contract(dbt_manifest: Path) -> None:
    """The database enforces a fact's rules; a warning, a key and a rollup's rule stay tests.

    A CHECK is declared on the model, with a name: dbt renders no name for a column's, and
    PostgreSQL names an unnamed one after the table it is created as, while ATTACH PARTITION
    wants a partition's CHECKs under its fact's names (fact_partitions.sql adopts the new
    rows' table as a partition).
    """
    marts = load_marts(dbt_manifest)
    tests = mart_tests(dbt_manifest)
    for name, node in mart_nodes(dbt_manifest).items():
        declared = [c for column in node["columns"].values() for c in column["constraints"]]
        declared += node["constraints"]
        # a new kind of constraint: the gate would not check it where the table lacks it
        assert {c["type"] for c in declared} <= CONSTRAINTS, name
        if not name.startswith("fct_"):
            # a rollup on TimescaleDB is a continuous aggregate: no constraint applies
            assert not declared or node["config"]["materialized"] == "table", name
            continue
        assert node["config"]["materialized"] == "fact"
        assert all(
            c["type"] == "not_null"
            for column in node["columns"].values()
            for c in column["constraints"]
        ), name
        checks = [c["name"] for c in node["constraints"]]
        assert all(checks) and len(set(checks)) == len(checks), (name, checks)
        assert all(len(c["columns"]) == 1 for c in node["constraints"]), name
        assert marts[name].constraints and all(c.held_as for c in marts[name].constraints)
        converted = [
            (test["column_name"], test["test_metadata"]["name"])
            for test in tests
            if test["attached_node"] == node["unique_id"]
            and test["config"]["severity"].lower() == "error"
            and test["test_metadata"]["name"] in ("not_null", "accepted_range", "accepted_values")
        ]
        assert not converted, (name, converted)


def test_a_constraint_the_table_holds_is_not_an_expectation_one_it_lacks_is() -> None:
    mart = Mart(
        "fct_things",
        "things",
        {"thing_id": "text", "size": "bigint", "kind": "text", "note": "text"},
        key=("thing_id",),
        rules=(Rule("not_null", "note"), Rule("accepted_range", "size", "warn", high=10.0)),
        constraints=(
            Constraint("not_null", "thing_id"),
            Constraint("not_null", "note"),  # a test as well: one expectation
            Constraint("check", "size", "size_range", "size >= 0"),
            Constraint("check", None, None, "kind <> note"),  # unnamed: never found held
        ),
    )
    loaded = LoadedRange(None, None)

    nothing_held = rows_suite(mart, loaded)
    assert list(names(nothing_held)) == [
        "not_null:note",
        "not_null:thing_id",
        "unique_key",
        "plausible:size",
        "check:size_range",
        "check:kind <> note",
    ]
    (size,) = [
        e for e in nothing_held.expectations if (e.meta or {}).get("name") == "check:size_range"
    ]
    assert isinstance(size, gxe.UnexpectedRowsExpectation)
    assert size.unexpected_rows_query == (
        "select thing_id, size from {batch} where not (size >= 0)"
    )

    held = {"not_null:thing_id", "not_null:note", "check:size_range", "check:kind_check"}
    assert list(names(rows_suite(mart, loaded, held))) == [
        "unique_key",
        "plausible:size",
        "check:kind <> note",
    ]


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "dbt_project"
    shutil.copytree(
        PROJECT / "dbt_project",
        copy,
        ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", ".user.yml"),
    )
    return copy


def parse(project: Path) -> Path:
    DbtRunner(None, project_dir=project).run("parse", "--quiet")
    return project / "target" / "manifest.json"


def test_a_column_added_to_a_fact_and_its_yaml_reaches_the_gate_unchanged(
    project_copy: Path,
) -> None:
    fact = project_copy / "models" / "marts" / "observability" / "fct_requests.sql"
    sql = fact.read_text()
    fact.write_text(sql.replace("requests.status,", "requests.status,\n        1 as priority,"))
    yaml = project_copy / "models" / "marts" / "observability" / "_observability__models.yml"
    declared = yaml.read_text()
    anchor = "      - name: error_code\n"
    assert anchor in declared
    yaml.write_text(
        declared.replace(
            anchor,
            "      - name: priority\n"
            "        data_type: integer\n"
            '        description: "How urgent the request was, 1 to 5."\n'
            "        constraints: [{type: not_null}]\n"
            "        data_tests:\n"
            "          - accepted_range:\n"
            "              arguments: {max_value: 3}\n"
            "              config: {severity: warn}\n" + anchor,
        )
    )
    checks = "  - name: fct_requests\n"
    checks = declared[
        declared.index(checks) : declared.index("    columns:\n", declared.index(checks))
    ]
    assert "    constraints:\n" in checks
    yaml.write_text(
        yaml.read_text().replace(
            checks,
            checks.replace(
                "    constraints:\n",
                "    constraints:\n"
                "      - {type: check, name: priority_range, columns: [priority],"
                ' expression: "priority >= 1 and priority <= 5"}\n',
            ),
        )
    )

    mart: Mart = load_marts(parse(project_copy))["fct_requests"]

    assert mart.columns["priority"] == "integer"
    assert list(mart.columns).index("priority") == list(mart.columns).index("status") + 1
    schema = names(schema_suite(mart))
    assert "type:priority" in schema
    rows = names(rows_suite(mart, LoadedRange(None, None)))
    assert {"not_null:priority", "check:priority_range", "plausible:priority"} <= set(rows)
    held = {"not_null:priority", "check:priority_range"}
    rows = names(rows_suite(mart, LoadedRange(None, None), held))
    assert "plausible:priority" in rows and not held & set(rows)
