"""One hour of one entity as canonical records plus the chaos plan applied to them.

`build_hour` is the single source for both the wire (render.py) and the ground
truth (truth.py): it depends only on (config, module, entity, hour).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from simulators.config import MODULES, SimulatorConfig
from simulators.generators import make_context
from simulators.specs import MODULE_SPECS, Columns, EntitySpec, Field, ModuleSpec
from simulators.world import US_PER_HOUR

MALFORMED_KINDS_BY_FIELD_KIND: dict[str, tuple[str, ...]] = {
    "enum": ("unknown_enum",),
    "int": ("negative_number", "unparseable_number"),
    "decimal": ("negative_number", "unparseable_number"),
    "duration": ("negative_number", "unparseable_number"),
    "size": ("negative_number", "unparseable_number"),
    "money": ("negative_number", "unparseable_number"),
    "time": ("unparseable_time",),
    "str": (),
}
ENVIRONMENTS = ("production", "staging", "dev")


@dataclass
class HourData:
    module: ModuleSpec
    entity: EntitySpec
    hour: int
    columns: Columns
    # ingested_at for series, updated_at for state: what windows select on.
    ingested_us: np.ndarray
    # The record's primary key value (event_id for series, the entity id for state).
    ids: np.ndarray
    malformed: np.ndarray
    malformed_kind: list[str | None]
    malformed_field: list[str | None]
    duplicate: np.ndarray
    late: np.ndarray

    @property
    def count(self) -> int:
        return len(self.ingested_us)


def entity_indices(module: str, entity: str) -> tuple[int, int]:
    module_spec = MODULE_SPECS[module]
    names = [e.name for e in module_spec.entities]
    return MODULES.index(module), names.index(entity)


def hourly_count(config: SimulatorConfig, entity: EntitySpec, module: str) -> int:
    if entity.fixed_count is not None:
        return entity.fixed_count()
    share = config.volume_of(module) * entity.volume_share
    if entity.kind == "state" and config.volume_of(module) > 0:
        return max(1, round(share))
    return round(share)


@cache
def malformable(module: str, entity: str) -> tuple[tuple[str, str], ...]:
    """(kind, canonical field) pairs a record of this entity can be malformed with.

    Ids, ingested_at and state window fields are never malformed; optional
    fields neither (they may be absent, so the damage would not show).
    """
    spec = MODULE_SPECS[module].entity(entity)
    options: list[tuple[str, str]] = []
    if spec.kind == "series":
        options.append(("unparseable_time", "event_time"))
    for field in spec.fields:
        if not field.required or field.kind in ("id", "list") or field.window:
            continue
        options.append(("missing_required", field.name))
        options.extend((kind, field.name) for kind in MALFORMED_KINDS_BY_FIELD_KIND[field.kind])
    return tuple(options)


def build_hour(config: SimulatorConfig, module: str, entity: str, hour: int) -> HourData:
    module_spec = MODULE_SPECS[module]
    spec = module_spec.entity(entity)
    module_index, entity_index = entity_indices(module, entity)
    count = hourly_count(config, spec, module)
    ctx = make_context(config.seed, module_spec, spec, module_index, entity_index, hour, count)
    columns = spec.generate(ctx)
    ingested = columns.pop("ingested_us", ctx.ingested_us)
    size = len(ingested)
    rng = np.random.default_rng([config.seed, module_index, entity_index, hour, 1])

    if spec.kind == "series":
        columns["event_id"] = ctx.ids(size)
        columns["schema_version"] = np.asarray(module_spec.versions, dtype=object)[
            rng.integers(0, len(module_spec.versions), size)
        ]
        columns["environment"] = np.asarray(ENVIRONMENTS, dtype=object)[
            rng.choice(3, size, p=[0.8, 0.15, 0.05])
        ]
        columns.setdefault("event_severity", np.full(size, "info", dtype=object))
        # Usual lag between the event and its ingestion: 50 ms to 2 minutes.
        columns["event_time"] = ingested - rng.integers(50, 120_000, size).astype(np.int64) * 1000
        ids = columns["event_id"]
    else:
        ids = columns[spec.key[0]]

    # The chaos plan: each record is at most one of malformed, duplicated, late.
    rates = config.rates
    draw = rng.random(size)
    malformed = draw < rates.malformed_rate
    duplicate = (draw >= rates.malformed_rate) & (
        draw < rates.malformed_rate + rates.duplicate_rate
    )
    late_bound = rates.malformed_rate + rates.duplicate_rate + rates.late_rate
    late = (draw >= rates.malformed_rate + rates.duplicate_rate) & (draw < late_bound)
    if spec.kind != "series":
        late[:] = False
    if not module_spec.redelivers:
        duplicate[:] = False
    malformed_kind: list[str | None] = [None] * size
    malformed_field: list[str | None] = [None] * size
    options = malformable(module, entity)
    if malformed.any() and options:
        for index, choice in zip(
            np.flatnonzero(malformed).tolist(),
            rng.integers(0, len(options), size).tolist(),
            strict=False,
        ):
            malformed_kind[index], malformed_field[index] = options[choice]
    else:
        malformed[:] = False
    if late.any():
        shift = np.where(late, rng.integers(2, 49, size), 0).astype(np.int64) * US_PER_HOUR
        columns["event_time"] = columns["event_time"] - shift
        for field in _time_fields(spec):
            columns[field.name] = columns[field.name] - shift
    if spec.derive is not None:
        spec.derive(columns)
    return HourData(
        module=module_spec,
        entity=spec,
        hour=hour,
        columns=columns,
        ingested_us=ingested,
        ids=ids,
        malformed=malformed,
        malformed_kind=malformed_kind,
        malformed_field=malformed_field,
        duplicate=duplicate,
        late=late,
    )


def _time_fields(spec: EntitySpec) -> list[Field]:
    return [f for f in spec.fields if f.kind == "time" and not f.window]


def hours_of(start_us: int, end_us: int) -> range:
    """The UTC hours that overlap the half-open window [start_us, end_us)."""
    return range(start_us // US_PER_HOUR, -(-end_us // US_PER_HOUR))
