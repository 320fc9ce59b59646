"""Normalize wire records into one schema per entity, vectorized with Polars.

Input is a frame of wire records whose every leaf is text (``parse.read_page`` reads
numbers and strings alike as text, so a module may send either). Output is the
entity's canonical frame: UTC timestamps, durations in ms, sizes in bytes, money in
USD (dated rates), personal fields pseudonymized; and the rejected rows, each with
every reason it failed. A bad record never fails the batch.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import polars as pl

from analytics_hub.fx import FxRates
from analytics_hub.sources import DURATION_UNITS, SIZE_UNITS, Entity, Field, Kind, Module

ROW = "_row"  # position of the record in its page: ties a reject back to its raw text
UTC_TS = pl.Datetime("us", "UTC")
MONEY = pl.Decimal(38, 6)
_DECIMAL_IN = pl.Decimal(38, 12)

_OFFSET_OR_Z = r"(Z|[+-]\d{2}:?\d{2})$"
_NUMERIC = r"^\s*-?\d+(\.\d+)?\s*$"
_EPOCH_MS_FROM = 1e11  # the contract: a number below this is epoch seconds, else ms

CANONICAL_TYPES: dict[Kind, pl.DataType] = {
    Kind.STRING: pl.String(),
    Kind.ENUM: pl.String(),
    Kind.INT: pl.Int64(),
    Kind.FLOAT: pl.Float64(),
    Kind.TIMESTAMP: UTC_TS,
    Kind.DURATION_MS: pl.Float64(),
    Kind.SIZE_BYTES: pl.Int64(),
    Kind.PERSONAL: pl.String(),
    Kind.JSON: pl.String(),
}


@dataclass(frozen=True)
class Normalized:
    rows: pl.DataFrame  # canonical columns of the well-formed records, plus ROW
    rejects: pl.DataFrame  # ROW, reason_code (the first reason), reason (all, ';'-joined)


def output_schema(entity: Entity) -> pl.Schema:
    """The canonical schema of an entity's normalized rows (lineage columns excluded)."""
    columns: dict[str, pl.DataType] = {f.name: CANONICAL_TYPES[f.kind] for f in entity.all_fields}
    columns.update({m.output: MONEY for m in entity.money})
    return pl.Schema(columns)


def _wire(entity: Entity, field: Field, name: str, present: set[str]) -> pl.Expr:
    if (field.in_envelope or not entity.time_series) and name in present:
        return pl.col(name)
    if not field.in_envelope and entity.time_series and name in present:
        return pl.col("data").struct.field(name)
    return pl.lit(None, dtype=pl.String)


def _text(exprs: list[pl.Expr]) -> pl.Expr:
    stripped = [e.str.strip_chars() for e in exprs]
    return pl.coalesce([pl.when(e != "").then(e) for e in stripped])


def _number(text: pl.Expr) -> pl.Expr:
    value = text.cast(pl.Float64, strict=False)
    return pl.when(value.is_finite()).then(value)


def _timestamp(text: pl.Expr, local_timezone: str) -> pl.Expr:
    epoch = _number(pl.when(text.str.contains(_NUMERIC)).then(text))
    epoch_us = (
        pl.when(epoch.abs() < _EPOCH_MS_FROM).then(epoch * 1e6).otherwise(epoch * 1e3).round()
    ).cast(pl.Int64, strict=False)
    aware = text.str.replace(r"Z$", "+00:00").str.to_datetime(
        "%Y-%m-%dT%H:%M:%S%.f%z", strict=False, time_unit="us", time_zone="UTC"
    )
    naive = (
        text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False, time_unit="us")
        .dt.replace_time_zone(local_timezone, ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone("UTC")
    )
    return (
        pl.when(epoch_us.is_not_null())
        .then(pl.from_epoch(epoch_us, time_unit="us").dt.replace_time_zone("UTC"))
        .when(text.str.contains(_OFFSET_OR_Z))
        .then(aware)
        .otherwise(naive)
    )


def _reason(condition: pl.Expr, code: str, field: Field) -> pl.Expr:
    return pl.when(condition).then(pl.lit(f"{code}:{field.name}"))


class _FieldRules:
    """The canonical value of one field and the reasons a record fails it."""

    def __init__(self, module: Module, entity: Entity, field: Field, present: set[str]):
        self.field = field
        self.reasons: list[pl.Expr] = []
        wires = [_wire(entity, field, name, present) for name in field.wire_names]
        if field.kind in (Kind.DURATION_MS, Kind.SIZE_BYTES):
            self.value = self._unit_family(wires)
            return
        text = _text(wires)
        if field.default is not None:
            text = text.fill_null(pl.lit(field.default))
        if field.required:
            self.reasons.append(_reason(text.is_null(), "missing_required", field))
        self.value = self._convert(module, text)

    def _convert(self, module: Module, text: pl.Expr) -> pl.Expr:
        field = self.field
        present = text.is_not_null()
        if field.kind is Kind.ENUM:
            canonical = {v.lower(): v for v in field.values}
            value = text.str.to_lowercase().replace_strict(canonical, default=None)
            self.reasons.append(_reason(present & value.is_null(), "unknown_enum", field))
            return value
        if field.kind in (Kind.INT, Kind.FLOAT):
            number = _number(text)
            if field.kind is Kind.INT:
                number = pl.when(number == number.floor()).then(number)
            self.reasons.append(_reason(present & number.is_null(), "unparseable_number", field))
            self._check_range(number)
            return number.cast(pl.Int64) if field.kind is Kind.INT else number
        if field.kind is Kind.TIMESTAMP:
            value = _timestamp(text, module.local_timezone)
            self.reasons.append(_reason(present & value.is_null(), "unparseable_time", field))
            return value
        return text

    def _unit_family(self, wires: list[pl.Expr]) -> pl.Expr:
        field = self.field
        units = DURATION_UNITS if field.kind is Kind.DURATION_MS else SIZE_UNITS
        scaled: list[pl.Expr] = []
        texts: list[pl.Expr] = []
        for name, wire in zip(field.wire_names, wires, strict=True):
            unit = name.rsplit("_", 1)[1]
            text = _text([wire])
            texts.append(text)
            number = _number(text)
            self.reasons.append(
                _reason(text.is_not_null() & number.is_null(), "unparseable_number", field)
            )
            scaled.append(number * units[unit])
        value = pl.coalesce(scaled)
        if field.required:
            self.reasons.append(_reason(pl.coalesce(texts).is_null(), "missing_required", field))
        self._check_range(value)
        if field.kind is Kind.SIZE_BYTES:
            return value.round().cast(pl.Int64, strict=False)
        return value

    def _check_range(self, number: pl.Expr) -> None:
        field = self.field
        if field.minimum is not None:
            if field.minimum >= 0:
                self.reasons.append(_reason(number < 0, "negative_number", field))
            below = (number < field.minimum) & ((number >= 0) | (field.minimum < 0))
            self.reasons.append(_reason(below, "out_of_range", field))
        if field.maximum is not None:
            self.reasons.append(_reason(number > field.maximum, "out_of_range", field))


def pseudonymize(values: pl.Series, key: bytes) -> pl.Series:
    """Keyed hash (HMAC-SHA256, hex) of each value; personal ids are few, so hash uniques."""
    uniques = values.drop_nulls().unique()
    digests = {
        v: hmac.new(key, v.encode(), hashlib.sha256).hexdigest() for v in uniques.to_list()
    }
    return values.replace_strict(digests, default=None, return_dtype=pl.String)


def normalize(
    records: pl.DataFrame,
    module: Module,
    entity: Entity,
    *,
    rates: FxRates,
    pseudonym_key: bytes | None,
) -> Normalized:
    """Canonical rows and rejected rows of one batch of wire records (with a ROW column)."""
    present = set(records.columns)
    if entity.time_series and "data" in present:
        data_type = records.schema["data"]
        if isinstance(data_type, pl.Struct):
            present |= {f.name for f in data_type.fields}
    rules = [_FieldRules(module, entity, f, present) for f in entity.all_fields]
    reasons = [reason for rule in rules for reason in rule.reasons]
    frame = records.select(
        pl.col(ROW),
        *(rule.value.alias(rule.field.name) for rule in rules),
        pl.concat_list(reasons).list.drop_nulls().alias("_reasons")
        if reasons
        else pl.lit([], dtype=pl.List(pl.String)).alias("_reasons"),
    )
    frame = _personal(frame, entity, pseudonym_key)
    for money in entity.money:
        frame = rates.convert(frame, money)
        frame = frame.with_columns(
            pl.when(pl.col(money.output).is_null() & pl.col(money.amount).is_not_null())
            .then(pl.col("_reasons").list.concat(pl.lit([f"no_fx_rate:{money.output}"])))
            .otherwise(pl.col("_reasons"))
            .alias("_reasons")
        )
    bad = pl.col("_reasons").list.len() > 0
    rejects = frame.filter(bad).select(
        pl.col(ROW),
        pl.col("_reasons").list.first().str.split(":").list.first().alias("reason_code"),
        pl.col("_reasons").list.join(";").alias("reason"),
    )
    rows = frame.filter(~bad).select(pl.col(ROW), *output_schema(entity).names())
    return Normalized(rows=rows.cast(dict(output_schema(entity))), rejects=rejects)  # type: ignore[arg-type]


def _personal(frame: pl.DataFrame, entity: Entity, key: bytes | None) -> pl.DataFrame:
    if not entity.has_personal_data or frame.is_empty():
        return frame
    if key is None:
        raise ValueError(f"entity {entity.name!r} has personal fields but no pseudonym key")
    personal = [f.name for f in entity.all_fields if f.kind is Kind.PERSONAL]
    return frame.with_columns(pseudonymize(frame[name], key).alias(name) for name in personal)
