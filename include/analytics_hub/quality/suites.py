"""One Great Expectations suite per normalized entity, generated from ``sources``.

The suite holds only what normalization (``normalize``, ``parse``, and the redelivery
drop of ``ingest``'s normalize stage) does not already guarantee of every row it lands: a
rule that cannot fail after normalization is dead weight. Normalization dead-letters a
record that lacks a required field, holds a value outside a closed vocabulary, a number
below its minimum or above its maximum, or an unreadable number or time, and it casts
every row to the entity's canonical types; so the suites have no ``not_null``,
``in_set`` or contract-range expectations. What they keep:

- the object's schema (its columns in order, their types): the gate audits an object in
  the lake, which a replay, a hand-made fix or an earlier release may have written;
- the window's balance against its manifest, and its volume and freshness against the
  entity's history: properties of the window, which no single record has;
- the times: ``ingested_at`` within the window it was pulled for, no event after the
  window's end (plus clock skew), late data within its allowance: the window is a
  property of the pull, not of the record;
- plausible maxima (``SANE_MAXIMUM``, warnings): implausible, not impossible;
- no negative money: normalization checks the amount, not the rate it is converted at
  (``reference/fx_rates.csv``);
- the unique key, for the modules that deliver at most once: ingest drops a repeated key
  of the others as a redelivery, but takes an at-most-once module's records as sent.

Every expectation carries ``meta``:

- ``severity``: ``block`` or ``warn``. A failed *warn* expectation is recorded and
  alerted, and the window goes on. A failed *block* expectation stops the window, unless
  it is a row expectation: then the offending rows are quarantined (moved to the
  dead-letter zone) and the clean rows go on;
- ``scope``: ``row`` (a failure names rows, which can be quarantined) or ``batch`` (a
  failure is about the window itself: schema drift, balance, volume, freshness).

Bounds that depend on the window (its start and end, the volume band from history, the
balance of its manifest) are suite parameters (``{"$PARAMETER": name}``), given at each
run by ``gate.window_parameters``; the suites themselves are fixed.
"""

from __future__ import annotations

from typing import Any, Literal

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
import pyarrow as pa

from analytics_hub.ingest import normalized_schema
from analytics_hub.sources import Entity, Kind, Module

Severity = Literal["block", "warn"]
Scope = Literal["row", "batch"]

# Bounds beyond which a value is implausible rather than impossible: a warning, not a
# quarantine (the contract's hard ranges live in ``sources``).
SANE_MAXIMUM: dict[str, float] = {
    "latency_ms": 600_000.0,  # ten minutes for one model request
    "ttft_ms": 600_000.0,
    "duration_ms": 600_000.0,  # one policy evaluation
}
# The envelope's timestamps belong to the window; a state record's updated_at too.
WINDOW_TIMES = ("event_time", "ingested_at", "updated_at")


def suite_name(module: Module, entity: Entity) -> str:
    return f"lake.{module.name}.{entity.name}"


def pandas_frame(table: pa.Table) -> pd.DataFrame:
    """The frame GX validates, with a positional index (row i is the table's row i).

    Integers stay integers: numpy ``int64`` without nulls (GX compares those vectorized),
    pandas ``Int64`` with nulls rather than floats. Both are type ``int64`` to GX.
    """
    frame: pd.DataFrame = table.to_pandas()
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_integer(column.type) and column.null_count:
            frame[name] = column.to_pandas(types_mapper={column.type: pd.Int64Dtype()}.get)
    return frame.reset_index(drop=True)


def expected_types(entity: Entity) -> dict[str, str]:
    """Column → the pandas type name its values have when the schema is the canonical one."""
    empty = pandas_frame(normalized_schema(entity).empty_table())
    return {str(column): dtype.type.__name__ for column, dtype in empty.dtypes.items()}


def _meta(severity: Severity, scope: Scope, rule: str, name: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"severity": severity, "scope": scope, "rule": rule}
    return meta | ({"name": name} if name else {})


def expectation_name(type_: str, kwargs: dict[str, Any], meta: dict[str, Any]) -> str:
    """The name a failure is reported under: ``meta.name``, else the type and its column(s)."""
    if meta.get("name"):
        return str(meta["name"])
    if "column" in kwargs:
        return f"{type_}:{kwargs['column']}"
    if type_.startswith(("expect_compound_columns", "expect_multicolumn")):
        return f"{type_}:{','.join(str(c) for c in kwargs['column_list'])}"
    return type_


def _param(name: str) -> dict[str, str]:
    return {"$PARAMETER": name}


def expectations(module: Module, entity: Entity) -> list[gxe.Expectation]:
    """The lake expectations of one entity, in the order Data Docs show them."""
    schema = normalized_schema(entity)
    found: list[gxe.Expectation] = [
        gxe.ExpectTableColumnsToMatchOrderedList(
            column_list=list(schema.names),
            meta=_meta("block", "batch", "schema drift: the canonical columns, in order"),
        ),
        *(
            gxe.ExpectColumnValuesToBeOfType(
                column=column,
                type_=type_name,
                meta=_meta("block", "batch", "schema drift: the canonical type"),
            )
            for column, type_name in expected_types(entity).items()
        ),
        gxe.ExpectTableRowCountToEqual(
            value=_param("balanced_rows"),
            meta=_meta(
                "block",
                "batch",
                "balance: rows = pulled - deduplicated - dead-lettered",
                name="balance",
            ),
        ),
        gxe.ExpectTableRowCountToBeBetween(
            min_value=_param("volume_min"),
            meta=_meta(
                "block",
                "batch",
                "volume collapse of a flowing stream against the same window of past days",
                name="volume_collapse",
            ),
        ),
        gxe.ExpectTableRowCountToBeBetween(
            min_value=_param("volume_warn_min"),
            meta=_meta(
                "warn",
                "batch",
                "volume drop against the same window of past days (a sparse stream's quiet "
                "window, or a flowing stream's first windows)",
                name="volume_drop",
            ),
        ),
        gxe.ExpectTableRowCountToBeBetween(
            min_value=0,
            max_value=_param("volume_max"),
            meta=_meta(
                "warn",
                "batch",
                "volume spike against the same window of past days",
                name="volume_spike",
            ),
        ),
    ]
    if entity.time_series and not entity.volume.sparse:
        # a sparse stream's newest event may be old in its window, or there may be none
        found.append(
            gxe.ExpectColumnMaxToBeBetween(
                column="event_time",
                min_value=_param("fresh_after"),
                meta=_meta(
                    "warn",
                    "batch",
                    "freshness: the newest event is within the schedule",
                    name="freshness",
                ),
            )
        )
    found += _field_expectations(entity)
    if module.delivery == "at-most-once":
        found.append(_unique_key(module, entity))
    return found


def _field_expectations(entity: Entity) -> list[gxe.Expectation]:
    """Per field: the plausible maximum and the times (the contract's required fields,
    vocabularies and ranges are normalization's: see the module's docstring)."""
    found: list[gxe.Expectation] = []
    for field in entity.all_fields:
        column = field.name
        if column in SANE_MAXIMUM:
            found.append(
                gxe.ExpectColumnValuesToBeBetween(
                    column=column,
                    max_value=SANE_MAXIMUM[column],
                    meta=_meta("warn", "row", "a plausible value"),
                )
            )
        if field.kind is Kind.TIMESTAMP:
            found += _time_expectations(entity, column)
    for money in entity.money:
        amount = next(f for f in entity.all_fields if f.name == money.amount)
        if amount.minimum is not None and amount.minimum >= 0:
            found.append(
                gxe.ExpectColumnValuesToBeBetween(
                    column=money.output,
                    min_value=0,
                    meta=_meta("block", "row", "no negative money"),
                )
            )
    return found


def _time_expectations(entity: Entity, column: str) -> list[gxe.Expectation]:
    if column == "ingested_at":
        return [
            gxe.ExpectColumnValuesToBeBetween(
                column=column,
                min_value=_param("window_start"),
                max_value=_param("window_end"),
                strict_max=True,
                meta=_meta("block", "row", "ingested within the window it was pulled for"),
            )
        ]
    severity: Severity = "block" if column in WINDOW_TIMES and entity.windowed else "warn"
    found: list[gxe.Expectation] = [
        gxe.ExpectColumnValuesToBeBetween(
            column=column,
            max_value=_param("latest_time"),
            meta=_meta(severity, "row", "not after the window's end (plus clock skew)"),
        )
    ]
    if column == "event_time":
        found.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=column,
                min_value=_param("earliest_event_time"),
                meta=_meta("warn", "row", "late data within the allowance"),
            )
        )
    return found


def _unique_key(module: Module, entity: Entity) -> gxe.Expectation:
    # Only for at-most-once modules: ingest drops every repeat of a key of the others.
    rule = f"the key is unique within the window ({module.delivery} delivery)"
    if len(entity.key) == 1:
        return gxe.ExpectColumnValuesToBeUnique(
            column=entity.key[0], meta=_meta("block", "row", rule)
        )
    return gxe.ExpectCompoundColumnsToBeUnique(
        column_list=list(entity.key), meta=_meta("block", "row", rule)
    )


def build_suite(module: Module, entity: Entity) -> gx.ExpectationSuite:
    return gx.ExpectationSuite(
        name=suite_name(module, entity),
        expectations=expectations(module, entity),
        meta={"module": module.name, "entity": entity.name, "gate": "lake"},
    )
