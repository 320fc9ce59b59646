"""One Great Expectations suite per dbt mart, generated from dbt's ``manifest.json``.

A mart is declared once, in dbt: its SQL and its YAML (``models/marts/*/_*__models.yml``),
whose enforced contract gives every column its ``data_type`` and whose tests give its key,
values, ranges and reconciliations. ``load_marts`` reads those declarations from the
compiled manifest (``target/manifest.json``, written by ``dbt parse``), so a column or a
test added to a mart's YAML reaches the gate with no change here. Each mart
(``analytics.fct_*``, ``agg_*``, ``dim_*``: every model under ``models/marts``) has two
suites:

- ``mart.<model>.schema``, over the table itself: exactly the contract's columns, each of
  the contract's type. These read the catalog only, never the rows, so they cost the same
  at any history size;
- ``mart.<model>``, over the rows the builds added since the gate last let the mart through:
  those whose ``_loaded_at`` is in the run's ``LoadedRange`` (see ``mart_gate``), or all of a
  mart without ``_loaded_at`` (one that every build rebuilds whole). One expectation per
  dbt test of the mart: ``not_null``, ``unique`` and ``unique_combination`` (the key),
  ``accepted_values``, ``accepted_range`` and ``reconciles_with_fact`` (a rollup's totals
  against its fact's, per touched bucket or period). dbt runs the same tests at each build
  on the rows that build brought; the gate checks whatever reached the mart since its last
  run, however late the builds ran, and records the outcome with the lake gate's.

A fact's column rules are not tests but constraints of its contract (``constraints``:
``not_null`` on a column, and ``check`` constraints, named), which dbt makes part of the
table it creates: the database rejects a row that breaks one, so no expectation repeats a
rule the table holds. Which ones it holds is read from the catalog at each run
(``HELD_CONSTRAINTS``: the NOT NULL columns, the validated CHECKs by name), not
assumed from the manifest: a table dbt created before its contract declared a constraint
(dbt adds constraints only when it creates a table), or one made by other means, does not
enforce it, and each constraint it lacks is checked over the rows like a test
(``not_null:<column>``, or ``check:<name>``: the rows where the CHECK's expression is
false). A ``not_null`` test on a column the table holds NOT NULL is skipped alike.

Every expectation carries ``meta.severity`` (the test's: ``block`` for an error, which
stops the feeds; ``warn`` is recorded and logged) and ``meta.name``, the name a failure is
reported under. The row selection depends on the range, so the batch is a query asset made
at each run; the expectations themselves are fixed.

A mart's module (the history and the summary are per module) is its fact's
(``meta.fact.module``), else that of the nearest fact it is built from, else that of the
one source module it reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import great_expectations as gx
import great_expectations.expectations as gxe

from analytics_hub.quality.suites import Severity
from analytics_hub.settings import ConfigurationError, HubSettings

SCHEMA = "analytics"
# TimescaleDB's default origin (Monday 2000-01-03); the dbt project buckets on it as well.
BUCKET_ORIGIN = "timestamptz '2000-01-03 00:00:00+00'"
RECENT = "recent"  # the alias of the batch of touched rows in reconciliation queries
# The load step's stamp (``warehouse.LOADED_AT``), which facts keep from their landing rows
# and rollups take as the max over a bucket's fact rows: the order in which builds add rows.
LOADED_AT = "_loaded_at"
# The dbt tests a suite is made of; a mart's other tests (relationships, expressions, ...)
# run in dbt only.
TESTS = frozenset(
    {
        "not_null",
        "unique",
        "unique_combination",
        "accepted_values",
        "accepted_range",
        "reconciles_with_fact",
    }
)
# The contract constraints (dbt's types) a suite checks where the table does not hold them.
CONSTRAINTS = frozenset({"not_null", "check"})


def manifest_path(settings: HubSettings) -> Path:
    """The compiled manifest of the dbt project the DAGs run (``HUB_DBT_PROJECT_DIR``)."""
    return settings.dbt_project_dir / "target" / "manifest.json"


def _timestamp(moment: datetime) -> str:
    return f"timestamptz '{moment.astimezone(UTC).isoformat()}'"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


@dataclass(frozen=True)
class LoadedRange:
    """The ``_loaded_at`` stamps one gate run checks for a mart: ``(after, through]``.

    ``after`` is the mart's watermark, the newest stamp a run let through before; ``None``
    when that run found the mart empty, so every row is new. ``through`` is the newest stamp
    when this run started (``None``: nothing loaded); a later build's rows are stamped after
    it and wait for the next run. ``first``: the mart had no watermark yet, so ``after``
    is ``through`` minus the gate's first range (``GateSettings.mart_window_hours``).
    """

    after: datetime | None
    through: datetime | None
    first: bool = False

    @property
    def empty(self) -> bool:
        return self.through is None or (self.after is not None and self.through <= self.after)

    def condition(self, column: str = LOADED_AT) -> str:
        """SQL: ``column`` within the range."""
        if self.empty:
            return "false"
        assert self.through is not None
        upper = f"{column} <= {_timestamp(self.through)}"
        return upper if self.after is None else f"{column} > {_timestamp(self.after)} and {upper}"

    def to_dict(self) -> dict[str, Any]:
        return {"after": _iso(self.after), "through": _iso(self.through), "first": self.first}

    def __str__(self) -> str:
        after = _iso(self.after) or "-infinity"
        through = _iso(self.through) or "nothing loaded"
        return f"_loaded_at in ({after}, {through}]"


@dataclass(frozen=True)
class Reconciliation:
    """A rollup's total equals its fact's (a ``reconciles_with_fact`` measure).

    Per touched bucket of the mart's ``width``, or, for a mart with a ``period`` (its start
    and end columns), per row over its period and its ``by`` columns.
    """

    measure: str  # the rollup's column, e.g. ``requests``
    fact_total: str  # the same total over the fact's rows, e.g. ``count(*)``
    severity: Severity = "block"
    period: tuple[str, str] | None = None
    by: tuple[str, ...] = ()

    @property
    def mart_total(self) -> str:
        return f"sum({self.measure})"


@dataclass(frozen=True)
class Rule:
    """One column test of the mart: ``not_null``, ``unique``, ``accepted_values`` or
    ``accepted_range`` (``low`` and ``high``, either one absent)."""

    test: str
    column: str
    severity: Severity = "block"
    values: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Constraint:
    """A constraint of the mart's contract: ``not_null`` on ``column``, or a ``check`` of
    ``expression`` (SQL over the mart's columns) named ``name``; ``column``, the one it
    names, if any. The database enforces it where the table holds it."""

    kind: str
    column: str | None = None
    name: str | None = None
    expression: str | None = None

    @property
    def held_as(self) -> str | None:
        """What ``HELD_CONSTRAINTS`` returns when the table holds it; None for a CHECK
        without a name, which cannot be found (it is always checked over the rows)."""
        if self.kind == "not_null":
            return f"not_null:{self.column}"
        return f"check:{self.name}" if self.name else None

    @property
    def label(self) -> str:
        """The name of its expectation where the table does not hold it."""
        if self.kind == "not_null":
            return f"not_null:{self.column}"
        return f"check:{self.name or self.column or self.expression}"


@dataclass(frozen=True)
class Mart:
    name: str
    module: str  # the module whose data it holds: the history and the summary are per module
    columns: dict[str, str]  # column → its contract's data_type, in the contract's order
    key: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
    # the contract's not_null and check constraints (a fact's column rules)
    constraints: tuple[Constraint, ...] = ()
    # a rollup: its fact, the fact's time column, the bucket width, and what must reconcile
    fact: str | None = None
    time_column: str | None = None
    width: str | None = None
    reconciliations: tuple[Reconciliation, ...] = ()
    # the column that selects the rows the builds of a range added; None for a mart that
    # every build rebuilds whole: all of its rows are the last build's
    touched_by: str | None = LOADED_AT

    @property
    def table(self) -> str:
        return f"{SCHEMA}.{self.name}"

    @property
    def stamped(self) -> tuple[str, ...]:
        """The tables whose newest ``_loaded_at`` ends the mart's range: itself, its fact.

        A rollup's range ends at its fact's newest stamp too, so that a bucket holding fact
        rows the rollup never took is reconciled (and found missing).
        """
        tables = [self.table] if self.touched_by is not None else []
        return tuple(tables + ([f"{SCHEMA}.{self.fact}"] if self.fact is not None else []))

    def bucket_of(self, column: str) -> str:
        return f"date_bin(interval '{self.width}', {column}, {BUCKET_ORIGIN})"


# --- the marts, from the manifest ---------------------------------------------------------


class _Manifest:
    """The parts of dbt's manifest the marts are read from."""

    def __init__(self, manifest: Mapping[str, Any]):
        self.nodes: Mapping[str, Any] = manifest["nodes"]
        self.sources: Mapping[str, Any] = manifest.get("sources", {})
        self.tests: dict[str, list[dict[str, Any]]] = {}
        for node in self.nodes.values():
            if node["resource_type"] == "test" and node.get("test_metadata"):
                self.tests.setdefault(node.get("attached_node") or "", []).append(node)

    def marts(self) -> list[dict[str, Any]]:
        """Every model under ``models/marts``, by name."""
        found = [
            node
            for node in self.nodes.values()
            if node["resource_type"] == "model" and node["fqn"][1:2] == ["marts"]
        ]
        return sorted(found, key=lambda node: str(node["name"]))

    def parents(self, node: Mapping[str, Any]) -> list[str]:
        return list(node.get("depends_on", {}).get("nodes", []))

    def nearest_facts(self, node: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The nearest models upstream of ``node`` that declare ``meta.fact``."""
        seen: set[str] = set()
        level = self.parents(node)
        while level:
            seen.update(level)
            facts = [self.nodes[i] for i in level if i in self.nodes and _fact_meta(self.nodes[i])]
            if facts:
                return facts
            level = [
                parent
                for unique_id in level
                if unique_id in self.nodes
                for parent in self.parents(self.nodes[unique_id])
                if parent not in seen
            ]
        return []

    def source_modules(self, node: Mapping[str, Any]) -> set[str]:
        """The source names (the modules) of every source upstream of ``node``."""
        modules: set[str] = set()
        seen: set[str] = set()
        pending = self.parents(node)
        while pending:
            unique_id = pending.pop()
            if unique_id in seen:
                continue
            seen.add(unique_id)
            if unique_id in self.sources:
                modules.add(str(self.sources[unique_id]["source_name"]))
            elif unique_id in self.nodes:
                pending.extend(self.parents(self.nodes[unique_id]))
        return modules


def _fact_meta(node: Mapping[str, Any]) -> dict[str, Any]:
    meta = node.get("config", {}).get("meta") or node.get("meta") or {}
    fact = meta.get("fact")
    return dict(fact) if isinstance(fact, Mapping) else {}


def _severity(test: Mapping[str, Any]) -> Severity:
    return "warn" if str(test["config"].get("severity", "error")).lower() == "warn" else "block"


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _module(manifest: _Manifest, node: Mapping[str, Any]) -> str:
    own = _fact_meta(node).get("module")
    if own:
        return str(own)
    modules = {str(_fact_meta(fact)["module"]) for fact in manifest.nearest_facts(node)}
    modules = modules or manifest.source_modules(node)
    if len(modules) != 1:
        raise ConfigurationError(
            f"mart {node['name']}: no one module to file its validations under (found "
            f"{sorted(modules)}): give it meta.fact.module or build it from one module's data"
        )
    return modules.pop()


def _constraints(node: Mapping[str, Any]) -> list[Constraint]:
    """The contract's ``not_null`` and ``check`` constraints, its columns' then the model's
    (dbt renders a name only for the model's: a fact's CHECKs are declared there)."""
    found = []
    for column in node["columns"].values():
        for declared in column.get("constraints") or ():
            if declared["type"] == "not_null" or (
                declared["type"] == "check" and declared.get("expression")
            ):
                found.append(
                    Constraint(
                        declared["type"],
                        str(column["name"]),
                        declared.get("name"),
                        declared.get("expression"),
                    )
                )
    for declared in node.get("constraints") or ():
        columns = list(declared.get("columns") or ())
        if declared["type"] == "check" and declared.get("expression"):
            found.append(
                Constraint(
                    "check",
                    str(columns[0]) if len(columns) == 1 else None,
                    declared.get("name"),
                    declared.get("expression"),
                )
            )
    return found


def _mart(manifest: _Manifest, node: Mapping[str, Any]) -> Mart:
    name = str(node["name"])
    columns = {
        str(column["name"]): str(column.get("data_type") or "")
        for column in node["columns"].values()
    }
    untyped = [column for column, data_type in columns.items() if not data_type]
    if not columns or untyped:
        raise ConfigurationError(
            f"mart {name}: its contract declares no data_type for {untyped or 'any column'} "
            "(models/marts/*/_*__models.yml)"
        )
    unique_key = node["config"].get("unique_key")
    key: tuple[str, ...] = (unique_key,) if isinstance(unique_key, str) else tuple(unique_key or ())
    rules: list[Rule] = []
    reconciliations: list[Reconciliation] = []
    width: str | None = None
    for test in manifest.tests.get(node["unique_id"], []):
        kind = test["test_metadata"]["name"]
        kwargs = test["test_metadata"].get("kwargs", {})
        column = test.get("column_name") or kwargs.get("column_name")
        severity = _severity(test)
        if kind == "unique_combination" and not key:
            key = tuple(kwargs["columns"])
        elif kind in ("not_null", "unique") and column:
            rules.append(Rule(kind, column, severity))
        elif kind == "accepted_values" and column:
            rules.append(Rule(kind, column, severity, values=tuple(kwargs["values"])))
        elif kind == "accepted_range" and column:
            low, high = _number(kwargs.get("min_value")), _number(kwargs.get("max_value"))
            rules.append(Rule(kind, column, severity, low=low, high=high))
        elif kind == "reconciles_with_fact":
            width = kwargs.get("width") or width
            period = kwargs.get("period")
            reconciliations += [
                Reconciliation(
                    measure,
                    total,
                    severity,
                    period=(str(period[0]), str(period[1])) if period else None,
                    by=tuple(kwargs.get("by") or ()),
                )
                for measure, total in kwargs["measures"].items()
            ]
    fact_name = time_column = None
    if reconciliations:
        facts = manifest.nearest_facts(node)
        if len(facts) != 1:
            raise ConfigurationError(
                f"mart {name} reconciles with its fact, but is built from "
                f"{[f['name'] for f in facts]}: it must be built from exactly one fact"
            )
        fact_name, time_column = str(facts[0]["name"]), str(_fact_meta(facts[0])["time_column"])
    return Mart(
        name=name,
        module=_module(manifest, node),
        columns=columns,
        key=key,
        rules=tuple(
            rule for rule in rules if not (rule.test == "unique" and (rule.column,) == key)
        ),
        constraints=tuple(_constraints(node)),
        fact=fact_name,
        time_column=time_column,
        width=width,
        reconciliations=tuple(reconciliations),
        touched_by=LOADED_AT if LOADED_AT in columns else None,
    )


def marts_from_manifest(manifest: Mapping[str, Any]) -> dict[str, Mart]:
    """Every mart of a parsed manifest (``manifest.json`` as a dict), by name."""
    parsed = _Manifest(manifest)
    return {str(node["name"]): _mart(parsed, node) for node in parsed.marts()}


def load_marts(manifest: Path) -> dict[str, Mart]:
    """Every mart of the dbt project whose compiled manifest is ``manifest``, by name."""
    if not manifest.is_file():
        raise ConfigurationError(
            f"no dbt manifest at {manifest}: the mart gate reads the marts' contracts from it. "
            "Run `dbt parse` in the dbt project (`make setup` does), or set "
            "HUB_DBT_PROJECT_DIR to a project whose target/ holds one."
        )
    return marts_from_manifest(json.loads(manifest.read_text()))


# --- the suites ---------------------------------------------------------------------------


def _meta(severity: Severity, rule: str, name: str) -> dict[str, Any]:
    return {"severity": severity, "scope": "batch", "rule": rule, "name": name}


def reflected_type(data_type: str) -> str:
    """A contract's data_type as GX reports a PostgreSQL column's type (SQLAlchemy's
    compiled name): ``numeric(38,6)`` → ``NUMERIC(38, 6)``."""
    return re.sub(r"\s*,\s*", ", ", " ".join(data_type.split())).upper()


def suite_name(mart: Mart, *, schema: bool = False) -> str:
    return f"mart.{mart.name}.schema" if schema else f"mart.{mart.name}"


def schema_suite(mart: Mart) -> gx.ExpectationSuite:
    """The contract's columns and types, from the catalog: a mart the feeds read must not
    drift from what dbt declared."""
    found: list[gxe.Expectation] = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=list(mart.columns),
            exact_match=True,
            meta=_meta("block", "schema drift: the contract's columns", "columns"),
        )
    ]
    found += [
        gxe.ExpectColumnValuesToBeInTypeList(
            column=column,
            type_list=[reflected_type(data_type)],
            meta=_meta("block", "schema drift: the contract's type", f"type:{column}"),
        )
        for column, data_type in mart.columns.items()
    ]
    return gx.ExpectationSuite(
        name=suite_name(mart, schema=True),
        expectations=found,
        meta={"mart": mart.name, "module": mart.module, "gate": "mart"},
    )


def reconciliation_name(mart: Mart, rec: Reconciliation) -> str:
    return f"reconcile:{mart.name}.{rec.measure}={mart.fact}.{rec.fact_total}"


def reconciliation_query(mart: Mart, rec: Reconciliation, loaded: LoadedRange) -> str:
    """The touched buckets (or periods) where the mart's total is not its fact's."""
    if rec.period is not None:
        return _period_reconciliation_query(mart, rec, loaded)
    return _bucket_reconciliation_query(mart, rec, loaded)


def _bucket_reconciliation_query(mart: Mart, rec: Reconciliation, loaded: LoadedRange) -> str:
    """A bucket is touched when the rollup recomputed it (its ``_loaded_at`` is in the range)
    or when the fact has rows loaded in the range: a bucket the rollup missed shows up with
    no mart total.
    """
    assert mart.fact is not None and mart.time_column is not None
    fact = f"{SCHEMA}.{mart.fact}"
    bucket = mart.bucket_of(mart.time_column)
    return f"""
with touched as (
    select distinct bucket from {{batch}} as {RECENT}
    union
    select distinct {bucket} from {fact} where {loaded.condition()}
),
mart_totals as (
    select bucket, {rec.mart_total} as total
    from {mart.table}
    where bucket in (select bucket from touched)
    group by bucket
),
fact_totals as (
    select {bucket} as bucket, {rec.fact_total} as total
    from {fact}
    where {mart.time_column} >= (select min(bucket) from touched)
        and {bucket} in (select bucket from touched)
    group by 1
)
select
    coalesce(mart_totals.bucket, fact_totals.bucket) as bucket,
    mart_totals.total as mart_total,
    fact_totals.total as fact_total
from mart_totals full join fact_totals on mart_totals.bucket = fact_totals.bucket
where mart_totals.total is distinct from fact_totals.total
order by 1
""".strip()


def _period_reconciliation_query(mart: Mart, rec: Reconciliation, loaded: LoadedRange) -> str:
    """Each checked row whose period holds fact rows loaded in the range, against the fact's
    total over that period and its ``by`` values: only those changed, and the periods the
    fact's retention dropped (the rollups outlive it) cannot reconcile.
    """
    assert mart.fact is not None and mart.time_column is not None and rec.period is not None
    fact, time = f"{SCHEMA}.{mart.fact}", mart.time_column
    start, end = rec.period
    shared = "".join(f"{column}, " for column in rec.by)
    loaded_in = " and ".join(
        [
            f"loaded.{time} >= {RECENT}.{start}",
            f"loaded.{time} < {RECENT}.{end}",
            *(f"loaded.{column} = {RECENT}.{column}" for column in rec.by),
        ]
    )
    in_period = " and ".join(
        [
            f"facts.{time} >= periods.{start}",
            f"facts.{time} < periods.{end}",
            *(f"facts.{column} = periods.{column}" for column in rec.by),
        ]
    )
    same_period = " and ".join(
        f"fact_totals.{column} = checked.{column}" for column in (*rec.by, start)
    )
    keys = ", ".join(f"checked.{column}" for column in dict.fromkeys((*mart.key, start)))
    return f"""
with loaded as (
    select distinct {shared}{time} from {fact} where {loaded.condition()}
),
checked as (
    select * from {{batch}} as {RECENT}
    where exists (select from loaded where {loaded_in})
),
periods as (
    select distinct {shared}{start}, {end} from checked
),
fact_totals as (
    select {"".join(f"periods.{column}, " for column in rec.by)}periods.{start},
        {rec.fact_total} as total
    from periods
    join {fact} as facts on {in_period}
    group by {"".join(f"periods.{column}, " for column in rec.by)}periods.{start}
)
select {keys}, checked.{rec.measure} as mart_total, fact_totals.total as fact_total
from checked
left join fact_totals on {same_period}
where checked.{rec.measure} is distinct from fact_totals.total
order by {keys}
""".strip()


def _rule_expectation(mart: Mart, rule: Rule) -> gxe.Expectation:
    column, severity = rule.column, rule.severity
    if rule.test == "not_null":
        return gxe.ExpectColumnValuesToNotBeNull(
            column=column, meta=_meta(severity, "a key or required field", f"not_null:{column}")
        )
    if rule.test == "unique":
        return gxe.ExpectColumnValuesToBeUnique(
            column=column, meta=_meta(severity, "unique", f"unique:{column}")
        )
    if rule.test == "accepted_values":
        return gxe.ExpectColumnValuesToBeInSet(
            column=column,
            value_set=list(rule.values),
            meta=_meta(severity, "an accepted value of the contract", f"accepted:{column}"),
        )
    assert rule.test == "accepted_range", rule
    name = f"range:{column}" if severity == "block" else f"plausible:{column}"
    return gxe.ExpectColumnValuesToBeBetween(
        column=column,
        min_value=rule.low,
        max_value=rule.high,
        meta=_meta(
            severity, "the contract's range" if severity == "block" else "a plausible value", name
        ),
    )


def _unique_key(mart: Mart) -> list[gxe.Expectation]:
    meta = _meta("block", "the key is unique", "unique_key")
    if not mart.key:
        return []
    if len(mart.key) == 1:
        return [gxe.ExpectColumnValuesToBeUnique(column=mart.key[0], meta=meta)]
    return [gxe.ExpectCompoundColumnsToBeUnique(column_list=list(mart.key), meta=meta)]


# What the marts' tables (``%(tables)s``, schema-qualified names) hold of the constraints
# the gate knows, one ``(table, held_as)`` per row: their NOT NULL columns, their validated
# CHECKs by name (nothing for a table that is not there).
HELD_CONSTRAINTS = """
select tables.name, 'not_null:' || attname
from unnest(%(tables)s::text[]) as tables (name)
join pg_attribute on attrelid = to_regclass(tables.name)
where attnum > 0 and not attisdropped and attnotnull
union all
select tables.name, 'check:' || conname
from unnest(%(tables)s::text[]) as tables (name)
join pg_constraint on conrelid = to_regclass(tables.name)
where contype = 'c' and convalidated
""".strip()


def check_query(mart: Mart, constraint: Constraint) -> str:
    """The rows of the batch a CHECK rejects: its expression false (a null passes it).

    No alias for the batch: GX gives a query without a join its own (``subselect``).
    """
    shown = list(dict.fromkeys([*mart.key, *([constraint.column] if constraint.column else [])]))
    columns = ", ".join(shown) or "*"
    return f"select {columns} from {{batch}} where not ({constraint.expression})"


def _unheld_check(mart: Mart, constraint: Constraint) -> gxe.Expectation:
    return gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=check_query(mart, constraint),
        description=f"{constraint.expression}: a CHECK of the contract that the table of "
        f"{mart.name} does not hold",
        meta=_meta("block", "a constraint of the contract", constraint.label),
    )


def rows_suite(mart: Mart, loaded: LoadedRange, held: Iterable[str] = ()) -> gx.ExpectationSuite:
    """Keys, values, ranges and reconciliation over the rows the range's builds added.

    ``held``: what the mart's table enforces itself (``HELD_CONSTRAINTS``), which no
    expectation repeats; the contract's constraints it does not hold are checked here.
    """
    enforced = set(held)
    unheld = [c for c in mart.constraints if c.held_as not in enforced]
    rules = [
        rule
        for rule in mart.rules
        if not (rule.test == "not_null" and f"not_null:{rule.column}" in enforced)
    ]
    tested = {rule.column for rule in rules if rule.test == "not_null"}
    rules += [
        Rule("not_null", c.column)
        for c in unheld
        if c.kind == "not_null" and c.column is not None and c.column not in tested
    ]
    rules.sort(key=lambda rule: rule.test != "not_null")  # nulls first
    found = [_rule_expectation(mart, rule) for rule in rules if rule.test == "not_null"]
    found += _unique_key(mart)
    found += [_rule_expectation(mart, rule) for rule in rules if rule.test != "not_null"]
    found += [_unheld_check(mart, c) for c in unheld if c.kind == "check"]
    found += [
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=reconciliation_query(mart, rec, loaded),
            description=f"{rec.mart_total} of {mart.name} = {rec.fact_total} of {mart.fact}, "
            + ("per touched period" if rec.period else "per touched bucket"),
            meta=_meta(rec.severity, "mart totals = fact totals", reconciliation_name(mart, rec)),
        )
        for rec in mart.reconciliations
    ]
    return gx.ExpectationSuite(
        name=suite_name(mart),
        expectations=found,
        meta={"mart": mart.name, "module": mart.module, "gate": "mart"},
    )


def recent_query(mart: Mart, loaded: LoadedRange) -> str:
    """The rows the range's builds added: stamped in it (a rollup's: in a recomputed bucket)."""
    if mart.touched_by is None:
        return f"select * from {mart.table}"
    return f"select * from {mart.table} where {loaded.condition(mart.touched_by)}"


def newest_stamp_query(mart: Mart) -> str:
    """The newest ``_loaded_at`` of the tables that end the mart's range (null: none)."""
    if not mart.stamped:
        return "select null::timestamptz"
    newest = ", ".join(f"(select max({LOADED_AT}) from {table})" for table in mart.stamped)
    return f"select greatest({newest})"


def chosen(marts: Mapping[str, Mart], names: Iterable[str] | None) -> list[Mart]:
    """The marts named (all by default); a name the manifest lacks is a clear error."""
    wanted = list(marts if names is None else names)
    unknown = sorted(set(wanted) - set(marts))
    if unknown:
        raise ConfigurationError(f"no mart {unknown} in the dbt manifest (models/marts)")
    return [marts[name] for name in wanted]
