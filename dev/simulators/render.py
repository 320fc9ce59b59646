"""Canonical hours -> wire bytes: the mess (time spellings, units, numeric strings,
snake_case/camelCase per record and per field, renames, optional fields left out, values
carried by the envelope's tags or named by the fan-out path only) and the chaos damage
(malformed records, duplicates). Every choice is drawn per record from the hour's seed.

A rendered hour is a `Block`: its records as one blob of newline-terminated
JSON documents plus byte offsets, so a page is a slice of the blob with the
newlines turned into commas and NDJSON is the blob itself.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache, lru_cache
from itertools import repeat
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson

from simulators.canonical import HourData
from simulators.specs import DURATION_SUFFIXES, EntitySpec, Field, ModuleSpec, camel_case
from simulators.world import US_PER_HOUR, US_PER_SECOND

# Small chunks keep a chunk's temporary dicts in CPU cache while orjson walks them.
CHUNK_RECORDS = 1024
# Time forms (never used for ingested_at, which is always ISO with Z). A form that cannot
# carry the time exactly (epoch seconds for a time with milliseconds, fewer fraction digits
# than the time has) is not used for it: the next exact one is.
ISO, EPOCH_S, EPOCH_S_FLOAT, EPOCH_MS = range(4)
TIME_FORM_WEIGHTS = [0.75, 0.1, 0.05, 0.1]
# ISO zone spellings: Z, z, +05:30, +0530, +05 (whole-hour offsets only), none (the
# module's zone; an ambiguous local time falls back to Z).
ZONE_Z, ZONE_LOWER_Z, ZONE_COLON, ZONE_COMPACT, ZONE_HOURS, ZONE_LOCAL = range(6)
ZONE_WEIGHTS = [0.4, 0.05, 0.13, 0.1, 0.1, 0.22]
OFFSET_MINUTES = np.array([330, -480, 60, -300, 540, 0, -210])
OFFSET_COLON = np.array(
    ["+05:30", "-08:00", "+01:00", "-05:00", "+09:00", "+00:00", "-03:30"], dtype=object
)
OFFSET_COMPACT = np.array(
    ["+0530", "-0800", "+0100", "-0500", "+0900", "+0000", "-0330"], dtype=object
)
OFFSET_HOURS = np.array(["+05:30", "-08", "+01", "-05", "+09", "+00", "-03:30"], dtype=object)
# Between date and time: T, a space (RFC 3339), or a lower-case t.
SEPARATORS = ("T", " ", "t")
SEPARATOR_WEIGHTS = [0.75, 0.18, 0.07]
# Fraction digits 0..9 (raised to what the time needs: a time with milliseconds has >= 3).
FRACTION_DIGIT_WEIGHTS = [0.2, 0.05, 0.05, 0.3, 0.05, 0.05, 0.15, 0.05, 0.05, 0.05]
NUMERIC_TEXT_SHARE = 0.1
SIZE_UNITS = ("bytes", "kb", "kib", "mb")
UNIT_WEIGHTS = [0.4, 0.2, 0.2, 0.2]
# Payload/state casing per record: all snake_case, all camelCase, or mixed per field.
SNAKE_RECORD, CAMEL_RECORD, MIXED_RECORD = range(3)
CASING_WEIGHTS = [0.4, 0.25, 0.35]
# A field the fan-out path names (usage extension_id, versions asset_id) is left out this often.
FROM_PATH_OMITTED_SHARE = 0.15
# Optional envelope fields (source, version, severity, environment) are left out this often;
# an envelope without tags leaves `tags` out this often (else `{}`).
ENVELOPE_OMITTED_SHARE = 0.03
EMPTY_TAGS_OMITTED_SHARE = 0.25
BAD_NUMBERS = ("n/a", "12.3.4", "1,5e", "twelve")
BAD_TIMES = ("not-a-timestamp", "2026-13-45T25:61:00Z", "yesterday", "31/02/2026 10:00")
SNAKE_ENVELOPE = (
    "event_id",
    "timestamp",
    "ingested_at",
    "source_module",
    "event_type",
    "schema_version",
)
CAMEL_ENVELOPE = ("eventId", "timestamp", "ingestedAt", "source", "eventType", "version")
SHARED_ENVELOPE = ("severity", "environment", "tags", "data")
# Optional envelope fields: (snake key, camel key) of each.
OPTIONAL_ENVELOPE = (
    ("source_module", "source"),
    ("schema_version", "version"),
    ("severity", "severity"),
    ("environment", "environment"),
)
EMPTY_TAGS: dict[str, str] = {}


@dataclass
class Block:
    """Rendered records in wire order, newline-terminated, with their byte offsets.

    The bytes stay in the chunks they were rendered in (about a megabyte each):
    joining a million records into one buffer would only cost another copy.
    """

    chunks: list[bytes]
    # Byte offset of every record (and of the end) across the concatenated chunks.
    offsets: np.ndarray
    # What windows select on, per record: ingested_at (series) or updated_at (state).
    sort_us: np.ndarray
    partition: np.ndarray | None = None

    def __post_init__(self) -> None:
        sizes = np.fromiter((len(c) for c in self.chunks), dtype=np.int64, count=len(self.chunks))
        self._chunk_starts = _offsets(sizes)

    @property
    def count(self) -> int:
        return len(self.sort_us)

    @property
    def nbytes(self) -> int:
        return int(self._chunk_starts[-1]) + self.offsets.nbytes + self.sort_us.nbytes

    def span(self, first: int, stop: int) -> list[memoryview]:
        """The bytes of records [first, stop), as views into the chunks."""
        start, end = int(self.offsets[first]), int(self.offsets[stop])
        pieces = []
        index = int(np.searchsorted(self._chunk_starts, start, side="right")) - 1
        while start < end:
            chunk_start = int(self._chunk_starts[index])
            chunk = self.chunks[index]
            piece_end = min(end, chunk_start + len(chunk))
            pieces.append(memoryview(chunk)[start - chunk_start : piece_end - chunk_start])
            start = piece_end
            index += 1
        return pieces

    def record(self, index: int) -> bytes:
        return b"".join(self.span(index, index + 1))

    def select(self, mask: np.ndarray) -> Block:
        rows = np.flatnonzero(mask).tolist()
        partition = None if self.partition is None else self.partition[rows]
        return Block.from_records(
            [self.record(i)[:-1] for i in rows], self.sort_us[rows], partition
        )

    @staticmethod
    def from_records(
        records: Sequence[bytes], sort_us: np.ndarray, partition: np.ndarray | None = None
    ) -> Block:
        """A block of JSON documents given without their trailing newline."""
        lengths = np.fromiter((len(r) + 1 for r in records), dtype=np.int64, count=len(records))
        chunks = [b"\n".join(records) + b"\n"] if records else []
        return Block(chunks, _offsets(lengths), sort_us, partition)


def _offsets(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


# --- values -------------------------------------------------------------------------------


def scaled_text(value: int, scale: int) -> str:
    """The exact decimal `value * 10**-scale` as text."""
    if scale == 0:
        return str(value)
    sign = "-" if value < 0 else ""
    whole, fraction = divmod(abs(value), 10**scale)
    return f"{sign}{whole}.{fraction:0{scale}d}"


def render_numbers(values: np.ndarray, scale: np.ndarray, as_text: np.ndarray) -> list[Any]:
    """Integers times 10**-scale as JSON numbers (ints or exact-repr floats), some as numeric strings.

    Float division of an exact integer by an exact power of ten is correctly
    rounded, so the float's shortest repr is the decimal itself.
    """
    out = np.empty(len(values), dtype=object)
    whole = scale == 0
    out[whole] = values[whole].tolist()
    if not whole.all():
        fractional = ~whole
        out[fractional] = (values[fractional] / np.power(10.0, scale[fractional])).tolist()
    for index in np.flatnonzero(as_text).tolist():
        out[index] = scaled_text(int(values[index]), int(scale[index]))
    return out.tolist()


def _iso(times_us: np.ndarray, unit: str) -> list[str]:
    values = times_us.astype("datetime64[us]")
    if unit == "ns":
        values = values.astype("datetime64[ns]")
    strings: list[str] = np.datetime_as_string(values, unit=unit).tolist()  # type: ignore[call-overload]
    return strings


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _ambiguous(local: datetime, zone: ZoneInfo) -> bool:
    wall = local.replace(tzinfo=None)
    return (
        wall.replace(tzinfo=zone, fold=0).utcoffset()
        != wall.replace(tzinfo=zone, fold=1).utcoffset()
    )


@lru_cache(maxsize=65536)
def _hour_offset(zone_name: str, hour: int) -> int | None:
    """The zone's UTC offset (minutes) throughout one UTC hour, or None when the local wall
    times of that hour are ambiguous (DST fall-back) or the offset changes within it."""
    zone = _zone(zone_name)
    start = datetime.fromtimestamp(hour * 3600, tz=UTC)
    first = start.astimezone(zone)
    last = (start + timedelta(hours=1, microseconds=-1)).astimezone(zone)
    offset = first.utcoffset()
    if offset is None or offset != last.utcoffset():
        return None
    if _ambiguous(first, zone) or _ambiguous(last, zone):
        return None
    return int(offset.total_seconds()) // 60


@dataclass
class TimeVariants:
    """Per-record spelling of one time field: form, zone, offset, separator, fraction digits."""

    form: np.ndarray
    zone: np.ndarray
    offset: np.ndarray
    separator: np.ndarray
    digits: np.ndarray

    @staticmethod
    def draw(rng: np.random.Generator, size: int) -> TimeVariants:
        return TimeVariants(
            form=rng.choice(4, size, p=TIME_FORM_WEIGHTS).astype(np.int8),
            zone=rng.choice(6, size, p=ZONE_WEIGHTS).astype(np.int8),
            offset=rng.integers(0, len(OFFSET_MINUTES), size),
            separator=rng.choice(3, size, p=SEPARATOR_WEIGHTS).astype(np.int8),
            digits=rng.choice(10, size, p=FRACTION_DIGIT_WEIGHTS).astype(np.int8),
        )

    @staticmethod
    def fixed(size: int, form: int = ISO, zone: int = ZONE_Z, digits: int = 3) -> TimeVariants:
        """One spelling for every record (tests, and forcing a form)."""
        return TimeVariants(
            form=np.full(size, form, dtype=np.int8),
            zone=np.full(size, zone, dtype=np.int8),
            offset=np.zeros(size, dtype=np.int64),
            separator=np.zeros(size, dtype=np.int8),
            digits=np.full(size, digits, dtype=np.int8),
        )

    def __getitem__(self, rows: slice | np.ndarray) -> TimeVariants:
        return TimeVariants(
            self.form[rows],
            self.zone[rows],
            self.offset[rows],
            self.separator[rows],
            self.digits[rows],
        )


def render_times(times_us: np.ndarray, variants: TimeVariants, zone: str) -> list[Any]:
    """Times (UTC epoch microseconds) in the spellings the contract allows, each exact."""
    times_us = np.asarray(times_us, dtype=np.int64)
    out = np.empty(len(times_us), dtype=object)
    form = variants.form.copy()
    form[(form == EPOCH_S) & (times_us % US_PER_SECOND != 0)] = EPOCH_MS
    form[((form == EPOCH_MS) | (form == EPOCH_S_FLOAT)) & (times_us % 1000 != 0)] = ISO
    for code in (EPOCH_S, EPOCH_S_FLOAT, EPOCH_MS):
        mask = form == code
        if not mask.any():
            continue
        times = times_us[mask]
        if code == EPOCH_S:
            out[mask] = (times // US_PER_SECOND).tolist()
        elif code == EPOCH_S_FLOAT:
            out[mask] = ((times // 1000) / 1000.0).tolist()
        else:
            out[mask] = (times // 1000).tolist()
    iso = form == ISO
    if iso.any():
        out[iso] = _iso_texts(times_us[iso], variants[iso], zone)
    return out.tolist()


def _iso_texts(times_us: np.ndarray, variants: TimeVariants, zone_name: str) -> np.ndarray:
    size = len(times_us)
    style = variants.zone.copy()
    offsets = variants.offset
    minutes = np.zeros(size, dtype=np.int64)
    fixed = (style == ZONE_COLON) | (style == ZONE_COMPACT) | (style == ZONE_HOURS)
    minutes[fixed] = OFFSET_MINUTES[offsets[fixed]]
    local = np.flatnonzero(style == ZONE_LOCAL)
    if zone_name != "UTC" and len(local):
        hours = (times_us[local] // US_PER_HOUR).tolist()
        local_minutes = [_hour_offset(zone_name, hour) for hour in hours]
        ambiguous = np.array([m is None for m in local_minutes], dtype=bool)
        minutes[local] = [0 if m is None else m for m in local_minutes]
        style[local[ambiguous]] = ZONE_Z
    wall = times_us + minutes * 60 * US_PER_SECOND
    # The fewest fraction digits that carry the time exactly.
    needed = np.full(size, 6, dtype=np.int8)
    for digits in range(5, -1, -1):
        needed[wall % 10 ** (6 - digits) == 0] = digits
    digits = np.maximum(variants.digits, needed)
    text = np.empty(size, dtype=object)
    for count in range(10):
        mask = digits == count
        if not mask.any():
            continue
        unit = "s" if count == 0 else "ms" if count <= 3 else "us" if count <= 6 else "ns"
        strings = _iso(wall[mask], unit)
        if count not in (0, 3, 6, 9):
            cut = 20 + count
            strings = [s[:cut] for s in strings]
        text[mask] = strings
    for code in (1, 2):
        mask = variants.separator == code
        if mask.any():
            separator = SEPARATORS[code]
            text[mask] = [s[:10] + separator + s[11:] for s in text[mask].tolist()]
    suffix = np.full(size, "Z", dtype=object)
    suffix[style == ZONE_LOWER_Z] = "z"
    suffix[style == ZONE_LOCAL] = ""
    for code, spelled in (
        (ZONE_COLON, OFFSET_COLON),
        (ZONE_COMPACT, OFFSET_COMPACT),
        (ZONE_HOURS, OFFSET_HOURS),
    ):
        mask = style == code
        suffix[mask] = spelled[offsets[mask]]
    joined: np.ndarray = text + suffix
    return joined


def iso_z_ms(times_us: np.ndarray) -> list[str]:
    """`2026-11-26T13:05:01.123Z`: the one spelling of ingested_at."""
    return [t + "Z" for t in _iso(times_us, "ms")]


# --- the mess per field -------------------------------------------------------------------


@dataclass
class _FieldVariants:
    """Per-record rendering choices of one field for a whole hour (drawn once, sliced per chunk)."""

    field: Field
    # Every wire name: the snake_case variants (units or renames), then their camelCase.
    names: np.ndarray
    snake_count: int
    camel: np.ndarray
    unit: np.ndarray
    as_text: np.ndarray
    time: TimeVariants | None
    # Left out (a field the fan-out path names).
    omitted: np.ndarray | None


def _snake_names(field: Field) -> list[str]:
    if field.kind == "duration":
        return [f"{field.wire_name()}_{suffix}" for suffix in DURATION_SUFFIXES]
    if field.kind == "size":
        return [field.size_names[unit] for unit in SIZE_UNITS]
    return [field.wire_name(), *field.renames.values()]


def _draw_variants(
    rng: np.random.Generator, fields: Iterable[Field], casing: np.ndarray
) -> list[_FieldVariants]:
    size = len(casing)
    variants = []
    for field in fields:
        snake = _snake_names(field)
        numeric = field.kind in ("int", "decimal", "duration", "size", "money")
        camel = (casing == CAMEL_RECORD) | ((casing == MIXED_RECORD) & (rng.random(size) < 0.5))
        variants.append(
            _FieldVariants(
                field=field,
                names=np.array(snake + [camel_case(n) for n in snake], dtype=object),
                snake_count=len(snake),
                camel=camel,
                unit=(
                    rng.choice(4, size, p=UNIT_WEIGHTS).astype(np.int64)
                    if field.kind in ("duration", "size")
                    else np.zeros(size, dtype=np.int64)
                ),
                as_text=(
                    rng.random(size) < NUMERIC_TEXT_SHARE if numeric else np.zeros(size, bool)
                ),
                time=TimeVariants.draw(rng, size) if field.kind == "time" else None,
                omitted=(rng.random(size) < FROM_PATH_OMITTED_SHARE if field.from_path else None),
            )
        )
    return variants


def _field_wire(
    variants: _FieldVariants, data: HourData, rows: slice, versions: np.ndarray | None
) -> tuple[list[str | None], list[Any]]:
    """(per-record keys, None where the field is not sent, and values) of one field."""
    field = variants.field
    values = data.columns[field.name][rows]
    unit = variants.unit[rows]
    as_text = variants.as_text[rows]
    index = unit.copy()
    if field.kind == "duration":
        scaled = np.where(unit == 3, values * 1000, values)
        rendered = render_numbers(scaled, np.array([3, 6, 0, 0])[unit], as_text)
    elif field.kind == "size":
        rendered = render_numbers(values, np.array([0, 3, 0, 6])[unit], as_text)
        for row in np.flatnonzero(unit == 2).tolist():
            kib = Decimal(int(values[row])) / 1024
            rendered[row] = str(kib) if as_text[row] else float(kib)
    elif field.kind in ("int", "decimal"):
        rendered = render_numbers(values, np.full(len(values), field.scale), as_text)
    elif field.kind == "money":
        rendered = render_numbers(values, data.columns[f"{field.name}__scale"][rows], as_text)
    elif field.kind == "time":
        assert variants.time is not None
        rendered = render_times(values, variants.time[rows], data.module.zone)
    else:
        rendered = values.tolist()
    if versions is not None and field.renames:
        for position, version in enumerate(field.renames, start=1):
            index[versions == version] = position
    keys = variants.names[index + variants.camel[rows] * variants.snake_count]
    on_wire = data.columns.get(f"{field.name}__present")
    on_wire = None if on_wire is None else on_wire[rows]
    in_data = data.columns.get(f"{field.name}__in_data")
    if in_data is not None:
        on_wire = in_data[rows] if on_wire is None else on_wire & in_data[rows]
    if variants.omitted is not None:
        kept = ~variants.omitted[rows]
        on_wire = kept if on_wire is None else on_wire & kept
    if on_wire is not None:
        keys[~on_wire] = None
    return keys.tolist(), rendered


def _damage(record: dict[str, Any], key: str, kind: str, salt: int) -> None:
    """Break one field of a wire record the way the contract's malformed kinds describe."""
    if key not in record:
        return
    if kind == "missing_required":
        del record[key]
    elif kind == "unknown_enum":
        record[key] = "unexpected_value"
    elif kind == "negative_number":
        number = float(record[key])
        record[key] = -number if number > 0 else -1
    elif kind == "unparseable_number":
        record[key] = BAD_NUMBERS[salt % len(BAD_NUMBERS)]
    else:
        record[key] = BAD_TIMES[salt % len(BAD_TIMES)]


def _hour_tags(spec: EntitySpec, data: HourData) -> np.ndarray | None:
    """The envelope tags of every record of the hour (the values of tag-carried fields
    placed in the tags), or None for an entity without tag-carried fields.

    Records with the same tags share one dict (there are few combinations): never mutate one.
    """
    tagged = [f for f in spec.fields if f.tag is not None]
    if not tagged:
        return None
    size = data.count
    code = np.zeros(size, dtype=np.int64)
    radix = 1
    decoders: list[tuple[str, list[str], int, int]] = []
    for field in tagged:
        assert field.tag is not None
        seen: dict[str, int] = {}
        inverse = np.fromiter(
            (seen.setdefault(v, len(seen)) for v in data.columns[field.name].tolist()),
            dtype=np.int64,
            count=size,
        )
        in_tags = data.columns[f"{field.name}__in_tags"]
        code += np.where(in_tags, inverse + 1, 0) * radix
        decoders.append((field.tag, list(seen), radix, len(seen) + 1))
        radix *= len(seen) + 1
    codes, inverse = np.unique(code, return_inverse=True)
    tags = np.empty(len(codes), dtype=object)
    for position, combined in enumerate(codes.tolist()):
        tag_map: dict[str, str] = {}
        for name, values, place, base in decoders:
            digit = (combined // place) % base
            if digit:
                tag_map[name] = values[digit - 1]
        tags[position] = tag_map
    hour_tags: np.ndarray = tags[inverse]
    return hour_tags


def render_hour(
    data: HourData, seed: int, salt: int = 0, rng: np.random.Generator | None = None
) -> Block:
    # Millions of short-lived dicts would trigger full cyclic-GC passes for nothing.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _render_hour(data, seed, salt, rng)
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class _HourVariants:
    payload: list[_FieldVariants]
    event_time: TimeVariants
    # Per optional envelope field (OPTIONAL_ENVELOPE order): left out of the record.
    envelope_omitted: list[np.ndarray]
    empty_tags_omitted: np.ndarray
    # Per record: its tags (None: no tag-carried fields, every record's tags are empty).
    tags: np.ndarray | None


def _render_hour(data: HourData, seed: int, salt: int, rng: np.random.Generator | None) -> Block:
    module, spec = data.module, data.entity
    size = data.count
    if rng is None:
        rng = np.random.default_rng([seed, *_spec_indices(module, spec), data.hour, 2, salt])
    casing = rng.choice(3, size, p=CASING_WEIGHTS)
    variants = _HourVariants(
        payload=_draw_variants(rng, spec.fields, casing),
        event_time=TimeVariants.draw(rng, size),
        envelope_omitted=[rng.random(size) < ENVELOPE_OMITTED_SHARE for _ in OPTIONAL_ENVELOPE],
        empty_tags_omitted=rng.random(size) < EMPTY_TAGS_OMITTED_SHARE,
        tags=_hour_tags(spec, data),
    )
    chunks: list[bytes] = []
    lengths: list[np.ndarray] = []
    for first in range(0, size, CHUNK_RECORDS):
        rows = slice(first, min(size, first + CHUNK_RECORDS))
        records = _render_chunk(data, rows, variants)
        duplicated = data.duplicate[rows]
        if duplicated.any():
            # An exact copy right after its original: same bytes, same ingested_at.
            records = [
                records[i] for i in np.repeat(np.arange(len(records)), 1 + duplicated).tolist()
            ]
        chunks.append(b"\n".join(records) + b"\n")
        lengths.append(
            np.fromiter((len(r) + 1 for r in records), dtype=np.int64, count=len(records))
        )
    copies = 1 + data.duplicate.astype(np.int64)
    partition = None
    if spec.partition is not None:
        partition = np.repeat(data.columns[spec.partition], copies)
    all_lengths = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
    return Block(chunks, _offsets(all_lengths), np.repeat(data.ingested_us, copies), partition)


def _spec_indices(module: ModuleSpec, spec: EntitySpec) -> tuple[int, int]:
    from simulators.canonical import entity_indices

    return entity_indices(module.name, spec.name)


def _render_chunk(data: HourData, rows: slice, variants: _HourVariants) -> list[bytes]:
    module, spec = data.module, data.entity
    count = rows.stop - rows.start
    series = spec.kind == "series"
    versions = data.columns["schema_version"][rows] if series else None
    wire = [_field_wire(v, data, rows, versions) for v in variants.payload]
    key_columns = [keys for keys, _ in wire]
    value_columns = [values for _, values in wire]
    payloads: list[dict[Any, Any]] = [
        dict(zip(k, v, strict=False))
        for k, v in zip(
            zip(*key_columns, strict=False), zip(*value_columns, strict=False), strict=False
        )
    ]
    for payload in payloads:
        payload.pop(None, None)
    records: list[dict[str, Any]]
    if not series:
        records = payloads
    else:
        columns = data.columns
        tags = [EMPTY_TAGS] * count if variants.tags is None else variants.tags[rows].tolist()
        envelope_values = zip(
            columns["event_id"][rows].tolist(),
            render_times(columns["event_time"][rows], variants.event_time[rows], module.zone),
            iso_z_ms(data.ingested_us[rows]),
            repeat(module.source),
            columns["event_type"][rows].tolist(),
            versions.tolist() if versions is not None else [],
            columns["event_severity"][rows].tolist(),
            columns["environment"][rows].tolist(),
            tags,
            payloads,
        )
        snake = (*SNAKE_ENVELOPE, *SHARED_ENVELOPE)
        camel = (*CAMEL_ENVELOPE, *SHARED_ENVELOPE)
        camel_versions = module.camel_versions
        records = [
            dict(zip(camel if values[5] in camel_versions else snake, values, strict=False))
            for values in envelope_values
        ]
        for omitted, spellings in zip(variants.envelope_omitted, OPTIONAL_ENVELOPE, strict=True):
            for index in np.flatnonzero(omitted[rows]).tolist():
                for spelling in spellings:
                    records[index].pop(spelling, None)
        empty = np.fromiter((not t for t in tags), dtype=bool, count=count)
        for index in np.flatnonzero(empty & variants.empty_tags_omitted[rows]).tolist():
            del records[index]["tags"]
    for index in np.flatnonzero(data.malformed[rows]).tolist():
        absolute = rows.start + index
        kind, field_name = data.malformed_kind[absolute], data.malformed_field[absolute]
        assert kind is not None and field_name is not None
        if field_name == "event_time":
            _damage(records[index], "timestamp", kind, absolute)
            continue
        position = next(i for i, v in enumerate(variants.payload) if v.field.name == field_name)
        key = wire[position][0][index]
        if key is not None:
            _damage(payloads[index], key, kind, absolute)
        tag = variants.payload[position].field.tag
        if kind == "missing_required" and tag is not None and "tags" in records[index]:
            # Tags dicts are shared between records: replace, never mutate.
            shared = records[index]["tags"]
            records[index]["tags"] = {k: v for k, v in shared.items() if k != tag}
    return [orjson.dumps(record) for record in records]
