"""Ground truth of a window, computed from the canonical hours (no HTTP, no rendering)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np

from simulators.canonical import build_hour, hours_of
from simulators.config import SimulatorConfig
from simulators.specs import MODULE_SPECS, EntitySpec
from simulators.world import US_PER_SECOND, WORLD_START_US


def to_us(moment: datetime | int) -> int:
    """Epoch microseconds of an aware datetime (or pass an int through)."""
    if isinstance(moment, int):
        return moment
    if moment.tzinfo is None:
        raise ValueError("window bounds must be timezone-aware datetimes")
    return int(moment.timestamp()) * US_PER_SECOND + moment.microsecond


def compute_truth(
    config: SimulatorConfig, module: str, entity: str, start: datetime | int, end: datetime | int
) -> dict[str, Any]:
    """What the wire carries for [start, end) of one entity, and what a correct hub makes of it.

    `pulled` counts records on the wire (duplicates and malformed included);
    `duplicates` lists the ids of the extra copies; `malformed` the damaged
    records with kind and canonical field; `late` the ids of well-formed late
    records; `valid` the well-formed unique records, over which `counts` (per
    event_type and enum field) and `sums` (exact decimals as strings) are taken.
    `id` is the event_id for time-series, the entity id for state records.
    """
    spec = MODULE_SPECS[module].entity(entity)
    start_us, end_us = to_us(start), to_us(end)
    pulled = valid = 0
    duplicates: list[str] = []
    malformed: list[dict[str, str]] = []
    late: list[str] = []
    count_fields = (["event_type"] if spec.kind == "series" else []) + [
        f.name for f in spec.enum_fields
    ]
    counts: dict[str, Counter[str]] = {name: Counter() for name in count_fields}
    totals = {name: 0 for name, _ in spec.sums}
    for hour in hours_of(max(start_us, WORLD_START_US), end_us):
        data = build_hour(config, module, entity, hour)
        in_window = (data.ingested_us >= start_us) & (data.ingested_us < end_us)
        if not in_window.any():
            continue
        good = in_window & ~data.malformed
        pulled += int(in_window.sum() + (in_window & data.duplicate).sum())
        valid += int(good.sum())
        duplicates += data.ids[in_window & data.duplicate].tolist()
        late += data.ids[in_window & data.late].tolist()
        for row in np.flatnonzero(in_window & data.malformed).tolist():
            malformed.append(
                {
                    "id": str(data.ids[row]),
                    "kind": str(data.malformed_kind[row]),
                    "field": str(data.malformed_field[row]),
                }
            )
        for name in count_fields:
            present = data.columns.get(f"{name}__present")
            selected = good if present is None else good & present
            values, numbers = np.unique(
                data.columns[name][selected].astype(str), return_counts=True
            )
            counts[name].update(dict(zip(values.tolist(), numbers.tolist(), strict=False)))
        for name, _ in spec.sums:
            selected = good
            present = data.columns.get(f"{name}__present")
            has_default = any(f.name == name and f.default is not None for f in spec.fields)
            if present is not None and not has_default:
                selected = good & present
            totals[name] += int(data.columns[name][selected].sum())
    return {
        "module": module,
        "entity": entity,
        "pulled": pulled,
        "duplicates": duplicates,
        "malformed": malformed,
        "late": late,
        "valid": valid,
        "counts": {name: dict(sorted(counter.items())) for name, counter in counts.items()},
        "sums": {
            name: format(Decimal(totals[name]).scaleb(-scale), "f") for name, scale in spec.sums
        },
    }


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NUMERIC_KINDS = ("int", "decimal", "duration", "size", "money")


def compute_records(
    config: SimulatorConfig, module: str, entity: str, start: datetime | int, end: datetime | int
) -> list[dict[str, Any]]:
    """The `valid` records of [start, end) themselves, with their canonical values.

    One dict per well-formed unique record (the ones `compute_truth` counts and sums):
    times as UTC datetimes, counts as int, other numbers as exact Decimals (the derived USD
    amounts included),
    strings as str; an optional field that is absent is its default, or None. Series
    records also carry event_id, event_type, event_time and ingested_at.
    """
    spec = MODULE_SPECS[module].entity(entity)
    start_us, end_us = to_us(start), to_us(end)
    records: list[dict[str, Any]] = []
    for hour in hours_of(max(start_us, WORLD_START_US), end_us):
        data = build_hour(config, module, entity, hour)
        good = (data.ingested_us >= start_us) & (data.ingested_us < end_us) & ~data.malformed
        rows = np.flatnonzero(good).tolist()
        if not rows:
            continue
        columns = {name: _canonical(spec, data.columns, name, rows) for name in _names(spec)}
        if spec.kind == "series":
            columns["ingested_at"] = [_moment(data.ingested_us[row]) for row in rows]
        names = list(columns)
        records += [
            dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)
        ]
    return records


def _names(spec: EntitySpec) -> list[str]:
    fields = [f.name for f in spec.fields if f.kind != "list"]
    envelope = ["event_id", "event_type", "event_time"] if spec.kind == "series" else []
    return envelope + fields + [name for name, _ in spec.sums if name not in fields]


def _moment(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(us))


def _canonical(spec: EntitySpec, columns: dict[str, Any], name: str, rows: list[int]) -> list[Any]:
    field = next((f for f in spec.fields if f.name == name), None)
    kind = "time" if name == "event_time" else (field.kind if field else "str")
    scale = dict(spec.sums).get(name, field.scale if field else 0)
    if field is None and name in dict(spec.sums):
        kind = "decimal"
    values = columns[name]
    scales = columns.get(f"{name}__scale")
    present = columns.get(f"{name}__present")
    out: list[Any] = []
    for row in rows:
        if present is not None and not present[row]:
            default = field.default if field is not None else None
            if default is None or isinstance(default, str):
                out.append(default)
            else:
                out.append(Decimal(default).scaleb(-scale))
        elif kind == "time":
            out.append(_moment(values[row]))
        elif kind in NUMERIC_KINDS:
            row_scale = scale if scales is None else int(scales[row])
            number = int(values[row])
            out.append(number if kind == "int" else Decimal(number).scaleb(-row_scale))
        else:
            out.append(str(values[row]))
    return out
