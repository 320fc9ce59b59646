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
from analytics_hub.sources import (
    DURATION_UNITS,
    SIZE_UNITS,
    TAG_KEYS,
    Entity,
    Field,
    Kind,
    Module,
)

ROW = "_row"  # position of the record in its page: ties a reject back to its raw text
UTC_TS = pl.Datetime("us", "UTC")
MONEY = pl.Decimal(38, 6)
# The largest magnitudes a value may have, beyond which it is out of range rather than
# failing its batch: what Int64 holds, and what the currency conversion's decimals hold
# (38 digits, 12 of them after the point) with room for the rate.
INT_LIMIT = 2.0**63
MONEY_LIMIT = 1e20

_ISO = "%Y-%m-%dT%H:%M:%S%.f"
_EPOCH_MS_FROM = 1e11  # the contract: a number below this is epoch seconds, else ms

TAGS = pl.Struct({key: pl.String() for key in TAG_KEYS})
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
    Kind.TAGS: TAGS,
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
    """The wire column of one alias of a field; null where no record of the batch has it."""
    if (field.in_envelope or not entity.time_series) and name in present:
        return pl.col(name)
    if not field.in_envelope and entity.time_series and name in present:
        return pl.col("data").struct.field(name)
    return pl.lit(None, dtype=pl.String if field.kind is not Kind.TAGS else TAGS)


def _text(exprs: list[pl.Expr]) -> pl.Expr:
    stripped = [e.str.strip_chars() for e in exprs]
    return pl.coalesce([pl.when(e != "").then(e) for e in stripped])


def _number(text: pl.Expr) -> pl.Expr:
    value = text.cast(pl.Float64, strict=False)
    return pl.when(value.is_finite()).then(value)


# Spellings of ISO-8601 / RFC 3339 beside the strict one (``T``, upper case, seconds, up
# to nine fraction digits, ``Z`` or ``±HH:MM``/``±HHMM``), each rewritten to it: lower
# case, a space for ``T``, a date alone, minutes without seconds, a comma before the
# fraction, more than nine fraction digits, an offset of hours alone.
_ISO_SPELLINGS: tuple[tuple[str, str], ...] = (
    (r"^(\d{4}-\d{2}-\d{2})$", "${1}T00:00:00"),
    (r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})([^:\d]|$)", "${1}:00${2}"),
    (r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}),", "${1}."),
    (r"(\.\d{9})\d+", "${1}"),
    (r"([+-]\d{2})$", "${1}:00"),
)


def _strict_iso(text: pl.Expr) -> pl.Expr:
    iso = text.str.to_uppercase().str.replace(" ", "T", literal=True, n=1)
    for pattern, replacement in _ISO_SPELLINGS:
        iso = iso.str.replace(pattern, replacement)
    return iso


def _reread_times(frame: pl.DataFrame, rules: list[_FieldRules], zone: str) -> pl.DataFrame:
    """Read again, in the other ISO spellings, the times the strict format could not read.

    Most times are strict: rewriting only the few that failed keeps the patterns off the
    millions of rows of a big window.
    """
    for rule in rules:
        if rule.field.kind is not Kind.TIMESTAMP:
            continue
        name, (text,) = rule.field.name, rule.texts
        failed = frame.filter(pl.col(name).is_null() & pl.col(text).is_not_null())
        if failed.is_empty():
            continue
        again = failed.select(pl.col(ROW), _timestamp(_strict_iso(pl.col(text)), zone).alias(name))
        frame = frame.update(again.drop_nulls(name), on=ROW, how="left")
    return frame


def _timestamp(text: pl.Expr, local_timezone: str) -> pl.Expr:
    """Epoch seconds or ms, ISO-8601 / RFC 3339 with ``Z``, an offset or no zone → UTC."""
    epoch = _number(text)
    epoch_us = (
        pl.when(epoch.abs() < _EPOCH_MS_FROM).then(epoch * 1e6).otherwise(epoch * 1e3).round()
    ).cast(pl.Int64, strict=False)
    sign = ["+", "-"]  # an offset ends the text: +05:30 or +0530
    zoned = (
        text.str.ends_with("Z")
        | text.str.slice(-6, 1).is_in(sign)
        | text.str.slice(-5, 1).is_in(sign)
    )
    if local_timezone == "UTC":  # the common case: one parse, zoneless read as +00:00
        iso = pl.when(zoned).then(text).otherwise(text + "+00:00")
        parsed = _parse_zoned(iso)
    else:
        local = (
            text.str.to_datetime(_ISO, strict=False, time_unit="us")
            .dt.replace_time_zone(local_timezone, ambiguous="earliest", non_existent="null")
            .dt.convert_time_zone("UTC")
        )
        parsed = pl.when(zoned).then(_parse_zoned(text)).otherwise(local)
    from_epoch = pl.from_epoch(epoch_us, time_unit="us").dt.replace_time_zone("UTC")
    return pl.when(epoch.is_not_null()).then(from_epoch).otherwise(parsed)


def _parse_zoned(text: pl.Expr) -> pl.Expr:
    return text.str.replace("Z", "+00:00", literal=True).str.to_datetime(
        f"{_ISO}%z", strict=False, time_unit="us", time_zone="UTC"
    )


Check = tuple[pl.Expr, str]  # a condition that breaks a rule, and the reason it gives


def _reason(condition: pl.Expr, code: str, field: Field) -> Check:
    return condition.fill_null(False), f"{code}:{field.name}"


# A record's reasons, most specific first: a value that is there but wrong says more about
# what went wrong upstream than a field that is missing.
REASON_CODES = (
    "unparseable_time",
    "unparseable_number",
    "negative_number",
    "out_of_range",
    "unknown_enum",
    "no_fx_rate",
    "missing_required",
)


def _most_specific_first(checks: list[Check]) -> list[Check]:
    return sorted(checks, key=lambda check: REASON_CODES.index(check[1].split(":", 1)[0]))


class _FieldRules:
    """How one field is read, in three vectorized stages over the whole batch.

    1. ``texts``: the trimmed wire text of each alias or unit variant (own columns, so
       later stages read them once rather than re-deriving them);
    2. ``value``: the canonical value, from those texts;
    3. ``reasons``: each rule a record breaks, from the texts and the value.
    """

    def __init__(
        self,
        local_timezone: str,
        entity: Entity,
        field: Field,
        present: set[str],
        parent_id: str | None = None,
    ):
        self.field = field
        # money is converted in decimals that hold amounts up to MONEY_LIMIT
        self.limit = MONEY_LIMIT if field.name in {m.amount for m in entity.money} else None
        self.texts: dict[str, pl.Expr] = {}
        self.reasons: list[Check] = []
        wires = [_wire(entity, field, name, present) for name in field.wire_names]
        if field.tag is not None and entity.time_series and "tags" in present:
            wires.append(pl.col("tags").struct.field(field.tag))
        if parent_id is not None and entity.fan_out and entity.fan_out.child_field == field.name:
            wires.append(pl.lit(parent_id, dtype=pl.String))
        if field.kind in (Kind.DURATION_MS, Kind.SIZE_BYTES):
            self.value = self._unit_family(wires)
        elif field.kind is Kind.TAGS:
            self.texts[self._text_column()] = pl.coalesce(wires)
            self.value = pl.col(self._text_column())
        else:
            text = _text(wires)
            if field.default is not None:
                text = text.fill_null(pl.lit(field.default))
            self.texts[self._text_column()] = text
            self.value = self._convert(local_timezone, pl.col(self._text_column()))
        self._check_range(pl.col(field.name))

    def _text_column(self, unit: str = "") -> str:
        return f"_text.{self.field.name}.{unit}"

    def _convert(self, local_timezone: str, text: pl.Expr) -> pl.Expr:
        field, value = self.field, pl.col(self.field.name)
        present = text.is_not_null()
        if field.required:
            self.reasons.append(_reason(~present, "missing_required", field))
        if field.kind is Kind.ENUM:
            canonical = {v.lower(): v for v in field.values}
            self.reasons.append(_reason(present & value.is_null(), "unknown_enum", field))
            return text.str.to_lowercase().replace_strict(canonical, default=None)
        if field.kind in (Kind.INT, Kind.FLOAT):
            number = _number(text)
            limit = INT_LIMIT if field.kind is Kind.INT else self.limit
            fits = number.abs() < limit if limit is not None else pl.lit(True)
            too_big = number.is_not_null() & ~fits
            self.reasons.append(_reason(too_big, "out_of_range", field))
            self.reasons.append(
                _reason(present & value.is_null() & ~too_big, "unparseable_number", field)
            )
            if field.kind is Kind.INT:
                return pl.when((number == number.floor()) & fits).then(number).cast(pl.Int64)
            return pl.when(fits).then(number)
        if field.kind is Kind.TIMESTAMP:
            self.reasons.append(_reason(present & value.is_null(), "unparseable_time", field))
            return _timestamp(text, local_timezone)
        return text

    def _unit_family(self, wires: list[pl.Expr]) -> pl.Expr:
        field = self.field
        units = DURATION_UNITS if field.kind is Kind.DURATION_MS else SIZE_UNITS
        scaled: list[pl.Expr] = []
        for (name, unit), wire in zip(field.wire_units, wires, strict=True):
            column = self._text_column(name)
            self.texts[column] = _text([wire])
            text = pl.col(column)
            self.reasons.append(
                _reason(text.is_not_null() & _number(text).is_null(), "unparseable_number", field)
            )
            scaled.append(_number(text) * units[unit])
        if field.required:
            missing = pl.all_horizontal(pl.col(c).is_null() for c in self.texts)
            self.reasons.append(_reason(missing, "missing_required", field))
        value = pl.coalesce(scaled)
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
    digests = {v: hmac.new(key, v.encode(), hashlib.sha256).hexdigest() for v in uniques.to_list()}
    return values.replace_strict(digests, default=None, return_dtype=pl.String)


def normalize(
    records: pl.DataFrame,
    module: Module,
    entity: Entity,
    *,
    rates: FxRates,
    pseudonym_key: bytes | None,
    local_timezone: str | None = None,
    parent_id: str | None = None,
) -> Normalized:
    """Canonical rows and rejected rows of one batch of wire records (with a ROW column).

    Zoneless times are read in ``local_timezone``, by default the module's. ``parent_id``:
    the id in a fan-out batch's path, for the records that do not repeat it.
    """
    present = _carried(records)
    zone = local_timezone or module.local_timezone
    rules = [_FieldRules(zone, entity, f, present, parent_id) for f in entity.all_fields]
    checks = [check for rule in rules for check in rule.reasons]
    frame = (
        records.lazy()
        .select(pl.col(ROW), *(e.alias(c) for rule in rules for c, e in rule.texts.items()))
        .with_columns(rule.value.alias(rule.field.name) for rule in rules)
        .collect()
    )
    frame = _reread_times(frame, rules, zone)
    for money in entity.money:
        frame = rates.convert(frame, money)
        # a rate is missing only for money that could be converted: an amount, a known
        # unit and a date; where one of those is bad, that is the record's fault
        convertible = pl.all_horizontal(
            pl.col(c).is_not_null() for c in (money.amount, money.unit, money.on_date_of)
        )
        missing_rate = pl.col(money.output).is_null() & convertible
        checks.append((missing_rate, f"no_fx_rate:{money.output}"))
    checks = _most_specific_first(checks)
    # Most records are fine: find the bad ones with one cheap pass, and spell out the
    # reasons for those rows only.
    frame = frame.with_columns(pl.any_horizontal(c for c, _ in checks).alias("_bad"))
    rejected = frame.filter(pl.col("_bad")).select(
        pl.col(ROW),
        pl.concat_list(pl.when(c).then(pl.lit(label)) for c, label in checks)
        .list.drop_nulls()
        .alias("_reasons"),
    )
    rejects = rejected.select(
        pl.col(ROW),
        pl.col("_reasons").list.first().str.split(":").list.first().alias("reason_code"),
        pl.col("_reasons").list.join(";").alias("reason"),
    )
    rows = frame.filter(~pl.col("_bad")).select(pl.col(ROW), *output_schema(entity).names())
    rows = _personal(rows, entity, pseudonym_key)
    return Normalized(rows=rows.cast(dict(output_schema(entity))), rejects=rejects)  # type: ignore[arg-type]


def _carried(records: pl.DataFrame) -> set[str]:
    """The wire names that some record of the batch carries.

    The reader gives every name a field may arrive under (each casing, unit and rename) a
    column, null where a record lacks it; a name no record carries needs no reading.
    """
    rows = records.height
    present = {name for name in records.columns if records[name].null_count() < rows}
    if "data" in present and isinstance(records.schema["data"], pl.Struct):
        data = records["data"].struct
        present |= {name for name in data.fields if data.field(name).null_count() < rows}
    return present


def _personal(frame: pl.DataFrame, entity: Entity, key: bytes | None) -> pl.DataFrame:
    if not entity.has_personal_data or frame.is_empty():
        return frame
    if key is None:
        raise ValueError(f"entity {entity.name!r} has personal fields but no pseudonym key")
    personal = [f.name for f in entity.all_fields if f.kind is Kind.PERSONAL]
    return frame.with_columns(pseudonymize(frame[name], key).alias(name) for name in personal)
