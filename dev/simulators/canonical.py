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
from simulators.world import US_PER_HOUR, US_PER_SECOND

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
# Where a value with an envelope tag travels (observatory region, service, model_id):
# (in data and tags, data only, tags only, nowhere) shares; a required one is never nowhere.
TAG_PLACEMENT = {"optional": (0.55, 0.2, 0.2, 0.05), "required": (0.6, 0.25, 0.15, 0.0)}
# Share of event times recorded to the whole second (the others carry milliseconds).
WHOLE_SECOND_SHARE = 0.25


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


def is_quiet(config: SimulatorConfig, entity: EntitySpec, module: str, hour: int) -> bool:
    """Whether this hour of a sparse stream has no records at all (deterministic per seed)."""
    quiet = entity.quiet
    if quiet is None or not quiet.start <= hour % 24 < quiet.end:
        return False
    if quiet.share >= 1.0:
        return True
    module_index, entity_index = entity_indices(module, entity.name)
    draw = np.random.default_rng([config.seed, module_index, entity_index, hour, 5]).random()
    return bool(draw < quiet.share)


def hourly_count(config: SimulatorConfig, entity: EntitySpec, module: str, hour: int) -> int:
    if entity.fixed_count is not None:
        return entity.fixed_count()
    if is_quiet(config, entity, module, hour):
        return 0
    share = config.volume_of(module) * entity.volume_share
    if entity.kind == "state" and config.volume_of(module) > 0:
        return max(1, round(share))
    return round(share)


@cache
def malformable(module: str, entity: str) -> tuple[tuple[str, str], ...]:
    """(kind, canonical field) pairs a record of this entity can be malformed with.

    Ids, ingested_at and state window fields are never malformed. Only a required field
    can be missing; an unknown value only hits a closed enum. An optional field that is
    damaged is sent (its presence is forced), so the damage shows.
    """
    spec = MODULE_SPECS[module].entity(entity)
    options: list[tuple[str, str]] = []
    if spec.kind == "series":
        options.append(("unparseable_time", "event_time"))
    for field in spec.fields:
        if field.kind in ("id", "list") or field.window:
            continue
        if field.required:
            options.append(("missing_required", field.name))
        kinds = MALFORMED_KINDS_BY_FIELD_KIND[field.kind]
        if field.kind == "enum" and not field.closed:
            kinds = ()
        options.extend((kind, field.name) for kind in kinds)
    return tuple(options)


def draw_presence(rng: np.random.Generator, spec: EntitySpec, columns: Columns, size: int) -> None:
    """`<name>__present` of every optional field: its generator's mask (if any) and the
    field's own absent share; tag-carried fields also get `__in_data` and `__in_tags`."""
    for field in spec.fields:
        if field.required and field.tag is None:
            continue
        name = field.name
        present = columns.get(f"{name}__present")
        if present is None:
            present = np.ones(size, dtype=bool)
        share = field.optional_share
        if share > 0:
            present = present & (rng.random(size) >= share)
        if field.tag is not None:
            shares = TAG_PLACEMENT["required" if field.required else "optional"]
            placement = rng.choice(4, size, p=list(shares))
            columns[f"{name}__in_data"] = placement <= 1
            columns[f"{name}__in_tags"] = (placement == 0) | (placement == 2)
            present = present & (placement != 3)
        if field.required:
            continue
        if field.default is not None and isinstance(field.default, int):
            columns[name] = np.where(present, columns[name], field.default).astype(np.int64)
        elif field.default is not None:
            columns[name] = np.where(present, columns[name], field.default).astype(object)
        columns[f"{name}__present"] = present


def build_hour(config: SimulatorConfig, module: str, entity: str, hour: int) -> HourData:
    module_spec = MODULE_SPECS[module]
    spec = module_spec.entity(entity)
    module_index, entity_index = entity_indices(module, entity)
    count = hourly_count(config, spec, module, hour)
    ctx = make_context(config.seed, module_spec, spec, module_index, entity_index, hour, count)
    columns = spec.generate(ctx)
    ingested = columns.pop("ingested_us", ctx.ingested_us)
    size = len(ingested)
    rng = np.random.default_rng([config.seed, module_index, entity_index, hour, 1])
    draw_presence(
        np.random.default_rng([config.seed, module_index, entity_index, hour, 4]),
        spec,
        columns,
        size,
    )

    if spec.kind == "series":
        columns["event_id"] = ctx.ids(size)
        columns["schema_version"] = np.asarray(module_spec.versions, dtype=object)[
            rng.integers(0, len(module_spec.versions), size)
        ]
        columns["environment"] = np.asarray(ENVIRONMENTS, dtype=object)[
            rng.choice(3, size, p=[0.8, 0.15, 0.05])
        ]
        columns.setdefault("event_severity", np.full(size, "info", dtype=object))
        # Usual lag between the event and its ingestion: 50 ms to 2 minutes; a share of
        # events is timed to the whole second (so whole-second time forms are exact).
        event_time = ingested - rng.integers(50, 119_000, size).astype(np.int64) * 1000
        whole = rng.random(size) < WHOLE_SECOND_SHARE
        event_time[whole] -= event_time[whole] % US_PER_SECOND
        columns["event_time"] = event_time
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
            kind, name = options[choice]
            malformed_kind[index], malformed_field[index] = kind, name
            # The damaged field is on the wire (in data), whatever its presence would be.
            for flag in ("present", "in_data"):
                if f"{name}__{flag}" in columns:
                    columns[f"{name}__{flag}"][index] = True
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
