"""Canonical hours -> wire bytes: the mess (time formats, units, numeric strings,
casing, renames) and the chaos damage (malformed records, duplicates).

A rendered hour is a `Block`: its records as one blob of newline-terminated
JSON documents plus byte offsets, so a page is a slice of the blob with the
newlines turned into commas and NDJSON is the blob itself.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from itertools import repeat
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson

from simulators.canonical import HourData
from simulators.specs import DURATION_SUFFIXES, EntitySpec, Field, ModuleSpec
from simulators.world import US_PER_SECOND

# Small chunks keep a chunk's temporary dicts in CPU cache while orjson walks them.
CHUNK_RECORDS = 1024
# Time formats (never used for ingested_at, which is always ISO with Z).
ISO_Z_MS, ISO_Z, ISO_OFFSET, ISO_LOCAL, EPOCH_S, EPOCH_S_FLOAT, EPOCH_MS = range(7)
TIME_FORMAT_WEIGHTS = [0.35, 0.1, 0.15, 0.15, 0.1, 0.05, 0.1]
OFFSET_MINUTES = np.array([330, -480, 60, -300, 540, 0, -210])
OFFSET_SUFFIXES = np.array(
    ["+05:30", "-08:00", "+01:00", "-05:00", "+09:00", "+00:00", "-03:30"], dtype=object
)
NUMERIC_TEXT_SHARE = 0.1
SIZE_UNITS = ("bytes", "kb", "kib", "mb")
UNIT_WEIGHTS = [0.4, 0.2, 0.2, 0.2]
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
    strings: list[str] = np.datetime_as_string(
        times_us.astype("datetime64[us]"), unit=unit
    ).tolist()  # type: ignore[call-overload]
    return strings


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _local_iso(time_us: int, zone: ZoneInfo) -> str | None:
    """Zoneless local time, or None when that wall time is ambiguous (DST fall-back)."""
    local = datetime.fromtimestamp(time_us / US_PER_SECOND, tz=UTC).astimezone(zone)
    wall = local.replace(tzinfo=None)
    if (
        wall.replace(tzinfo=zone, fold=0).utcoffset()
        != wall.replace(tzinfo=zone, fold=1).utcoffset()
    ):
        return None
    return wall.isoformat(timespec="milliseconds")


def render_times(
    times_us: np.ndarray, formats: np.ndarray, offsets: np.ndarray, zone: str
) -> list[Any]:
    out = np.empty(len(times_us), dtype=object)
    for code in range(7):
        mask = formats == code
        if not mask.any():
            continue
        times = times_us[mask]
        if code == ISO_Z_MS:
            out[mask] = [t + "Z" for t in _iso(times, "ms")]
        elif code == ISO_Z:
            out[mask] = [t + "Z" for t in _iso(times, "s")]
        elif code == ISO_OFFSET:
            picked = offsets[mask]
            local = times + OFFSET_MINUTES[picked] * 60 * US_PER_SECOND
            out[mask] = [
                t + z
                for t, z in zip(_iso(local, "ms"), OFFSET_SUFFIXES[picked].tolist(), strict=False)
            ]
        elif code == ISO_LOCAL and zone == "UTC":
            out[mask] = _iso(times, "ms")
        elif code == ISO_LOCAL:
            tz = _zone(zone)
            rendered = []
            for t, fallback in zip(times.tolist(), _iso(times, "ms"), strict=False):
                local = _local_iso(t, tz)
                rendered.append(local if local is not None else fallback + "Z")
            out[mask] = rendered
        elif code == EPOCH_S:
            out[mask] = (times // US_PER_SECOND).tolist()
        elif code == EPOCH_S_FLOAT:
            out[mask] = ((times // 1000) / 1000.0).tolist()
        else:
            out[mask] = (times // 1000).tolist()
    return out.tolist()


# --- the mess per field -------------------------------------------------------------------


@dataclass
class _FieldVariants:
    """Per-record rendering choices of one field for a whole hour (drawn once, sliced per chunk)."""

    field: Field
    unit: np.ndarray
    as_text: np.ndarray
    time_format: np.ndarray
    offset: np.ndarray


def _draw_variants(
    rng: np.random.Generator, fields: Iterable[Field], size: int
) -> list[_FieldVariants]:
    variants = []
    for field in fields:
        variants.append(
            _FieldVariants(
                field=field,
                unit=rng.choice(4, size, p=UNIT_WEIGHTS).astype(np.int8),
                as_text=rng.random(size) < NUMERIC_TEXT_SHARE,
                time_format=rng.choice(7, size, p=TIME_FORMAT_WEIGHTS).astype(np.int8),
                offset=rng.integers(0, len(OFFSET_MINUTES), size),
            )
        )
    return variants


def _field_wire(
    variants: _FieldVariants, data: HourData, rows: slice, versions: np.ndarray | None
) -> tuple[str | list[str | None], list[Any]]:
    """(key or per-record keys, values) of one field for the rows of a chunk."""
    field = variants.field
    column = data.columns[field.name]
    values = column[rows]
    unit = variants.unit[rows]
    as_text = variants.as_text[rows]
    keys: Any = field.wire_name()
    if field.kind == "duration":
        names = np.array(
            [f"{field.wire_name()}_{suffix}" for suffix in DURATION_SUFFIXES], dtype=object
        )
        keys = names[unit]
        scaled = np.where(unit == 3, values * 1000, values)
        rendered = render_numbers(scaled, np.array([3, 6, 0, 0])[unit], as_text)
    elif field.kind == "size":
        keys = np.array([field.size_names[u] for u in SIZE_UNITS], dtype=object)[unit]
        rendered = render_numbers(values, np.array([0, 3, 0, 6])[unit], as_text)
        for index in np.flatnonzero(unit == 2).tolist():
            kib = Decimal(int(values[index])) / 1024
            rendered[index] = str(kib) if as_text[index] else float(kib)
    elif field.kind in ("int", "decimal"):
        rendered = render_numbers(values, np.full(len(values), field.scale), as_text)
    elif field.kind == "money":
        rendered = render_numbers(values, data.columns[f"{field.name}__scale"][rows], as_text)
    elif field.kind == "time":
        rendered = render_times(
            values, variants.time_format[rows], variants.offset[rows], data.module.zone
        )
    else:
        rendered = values.tolist()
    if versions is not None and field.renames:
        per_record = np.full(len(values), keys, dtype=object) if isinstance(keys, str) else keys
        for version, renamed in field.renames.items():
            per_record[versions == version] = renamed
        keys = per_record
    present = data.columns.get(f"{field.name}__present")
    if present is not None:
        per_record = (
            np.full(len(values), keys, dtype=object) if isinstance(keys, str) else keys.copy()
        )
        per_record[~present[rows]] = None
        keys = per_record
    return (keys if isinstance(keys, str) else keys.tolist()), rendered


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


def _tags(module: ModuleSpec, data: HourData, rows: slice, count: int) -> list[Any]:
    if module.name == "observatory":
        columns = data.columns
        return [
            {"region": r, "model_id": m, "service": s}
            for r, m, s in zip(
                columns["region"][rows],
                columns["model_id"][rows],
                columns["service"][rows],
                strict=False,
            )
        ]
    return [EMPTY_TAGS] * count


def render_hour(data: HourData, seed: int, salt: int = 0) -> Block:
    # Millions of short-lived dicts would trigger full cyclic-GC passes for nothing.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _render_hour(data, seed, salt)
    finally:
        if was_enabled:
            gc.enable()


def _render_hour(data: HourData, seed: int, salt: int) -> Block:
    module, spec = data.module, data.entity
    size = data.count
    rng = np.random.default_rng([seed, *_spec_indices(module, spec), data.hour, 2, salt])
    payload_variants = _draw_variants(rng, spec.fields, size)
    event_time_variants = _draw_variants(rng, [Field("event_time", "time")], size)[0]
    chunks: list[bytes] = []
    lengths: list[np.ndarray] = []
    for first in range(0, size, CHUNK_RECORDS):
        rows = slice(first, min(size, first + CHUNK_RECORDS))
        records = _render_chunk(data, rows, payload_variants, event_time_variants)
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


def _render_chunk(
    data: HourData,
    rows: slice,
    payload_variants: list[_FieldVariants],
    event_time_variants: _FieldVariants,
) -> list[bytes]:
    module, spec = data.module, data.entity
    count = rows.stop - rows.start
    series = spec.kind == "series"
    versions = data.columns["schema_version"][rows] if series else None
    wire = [_field_wire(v, data, rows, versions) for v in payload_variants]
    key_columns = [repeat(keys) if isinstance(keys, str) else keys for keys, _ in wire]
    value_columns = [values for _, values in wire]
    payloads = [
        dict(zip(k, v, strict=False))
        for k, v in zip(
            zip(*key_columns, strict=False), zip(*value_columns, strict=False), strict=False
        )
    ]
    for payload in payloads:
        payload.pop(None, None)
    if not series:
        records = payloads
    else:
        columns = data.columns
        envelope_values = zip(
            columns["event_id"][rows].tolist(),
            render_times(
                columns["event_time"][rows],
                event_time_variants.time_format[rows],
                event_time_variants.offset[rows],
                module.zone,
            ),
            [t + "Z" for t in _iso(data.ingested_us[rows], "ms")],
            repeat(module.source),
            columns["event_type"][rows].tolist(),
            versions.tolist() if versions is not None else [],
            columns["event_severity"][rows].tolist(),
            columns["environment"][rows].tolist(),
            _tags(module, data, rows, count),
            payloads,
        )
        snake = (*SNAKE_ENVELOPE, *SHARED_ENVELOPE)
        camel = (*CAMEL_ENVELOPE, *SHARED_ENVELOPE)
        camel_versions = module.camel_versions
        records = [
            dict(zip(camel if values[5] in camel_versions else snake, values, strict=False))
            for values in envelope_values
        ]
    for index in np.flatnonzero(data.malformed[rows]).tolist():
        absolute = rows.start + index
        kind, field_name = data.malformed_kind[absolute], data.malformed_field[absolute]
        assert kind is not None and field_name is not None
        if field_name == "event_time":
            _damage(records[index], "timestamp", kind, absolute)
            continue
        position = next(i for i, v in enumerate(payload_variants) if v.field.name == field_name)
        keys = wire[position][0]
        key = keys if isinstance(keys, str) else keys[index]
        if key is not None:
            _damage(payloads[index], key, kind, absolute)
    return [orjson.dumps(record) for record in records]
