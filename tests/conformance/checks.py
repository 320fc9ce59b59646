"""Land a window with the hub and compare the lake with the expectation, finding by finding.

The hub is run through its task entry point ``orchestration.land_entity`` (the function
the ``land_<entity>`` tasks call: Airflow connection → ``ModuleClient`` → ``ingest_window``
→ a staged version of the window in the lake), with the module's connection pointing at
the conformance server. Its rows are read back from that staged version, as the land
stage wrote it (the lake gate, which audits and publishes it, is not what this suite
checks), and compared, column by column, under this suite's own column names
(``contract.Entity.columns``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from conformance.contract import Entity, Kind
from conformance.wire import REASON_ORDER
from conformance.worlds import Expectation, World, canonical_json

if TYPE_CHECKING:
    from analytics_hub.windows import Window

CATEGORIES = ("ingest", "columns", "rows", "dead_letters", "reason_order", "manifest")


@dataclass
class Findings:
    """What differs from the contract, by category (a category's list empty: it conforms)."""

    by_category: dict[str, list[str]] = field(default_factory=lambda: {c: [] for c in CATEGORIES})
    # (signature, sample): one kind of difference, for summaries over many examples
    signatures: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, category: str, message: str) -> None:
        self.by_category[category].append(message)

    def sign(self, signature: str, sample: str = "") -> None:
        self.signatures.append((signature, sample))

    def text(self, category: str) -> str:
        return f"{category}:\n" + "\n".join(self.by_category[category])

    def __bool__(self) -> bool:
        return any(self.by_category.values())


@contextmanager
def environment(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def read_zone(
    lake_url: str, zone: str, ent: Entity, staged: tuple[Window, str] | None = None
) -> pl.DataFrame:
    """A zone of the entity's current (published) windows, or of one staged version."""
    import pyarrow.parquet as pq

    from analytics_hub.lake import Lake, Zone
    from analytics_hub.settings import load_settings

    lake = Lake.from_settings(load_settings(lake_url=lake_url))
    if staged is None:
        frame = pl.from_arrow(lake.read(Zone(zone), ent.module, ent.name))
    else:
        window, version = staged
        path = lake.staged_path(Zone(zone), ent.module, ent.name, window, version)
        frame = pl.from_arrow(pq.read_table(path, filesystem=lake.fs))
    assert isinstance(frame, pl.DataFrame)
    return frame


def land(ent: Entity, world: World, lake_url: str) -> dict[str, Any]:
    """Run the hub's landing of one window of one entity; the manifest of what it staged."""
    from analytics_hub.orchestration import land_entity

    with environment(HUB_LAKE_URL=lake_url):
        return land_entity(ent.module, ent.name, world_window(world))


def world_window(world: World) -> Window:
    from analytics_hub.windows import Window

    return Window(world.start, world.end)


def land_and_check(ent: Entity, world: World, key: str) -> Findings:
    findings = Findings()
    root = Path(tempfile.mkdtemp(prefix="conformance-lake-"))
    started = datetime.now(UTC)
    try:
        try:
            manifest = land(ent, world, str(root / "lake"))
        except Exception as error:  # the hub failed the window: that is the finding
            findings.add("ingest", "".join(traceback.format_exception(error)[-6:]))
            first = str(error).splitlines()[0] if str(error) else ""
            findings.sign(
                f"ingest {ent.id}: {type(error).__name__}: {first[:160]}", describe(world)
            )
            return findings
        staged = (world_window(world), manifest["version"])
        compare_lake(ent, world, str(root / "lake"), key, findings, manifest, staged=staged)
    finally:
        findings.seconds = (datetime.now(UTC) - started).total_seconds()
        shutil.rmtree(root, ignore_errors=True)
    return findings


def compare_lake(
    ent: Entity,
    world: World,
    lake_url: str,
    key: str,
    findings: Findings,
    manifest: dict[str, Any] | None,
    *,
    staged: tuple[Window, str] | None = None,
) -> None:
    """``staged``: compare that staged version of the window (else the current lake)."""
    expected = world.expectation(ent, key)
    rows = read_zone(lake_url, "normalized", ent, staged)
    dead = read_zone(lake_url, "deadletter", ent, staged)
    compare_rows(ent, world, expected, rows, findings)
    compare_dead_letters(ent, world, expected, dead, findings)
    if manifest is not None:
        compare_manifest(expected, manifest, findings)


# --- values -------------------------------------------------------------------------------


def _kinds(ent: Entity) -> dict[str, Kind | str]:
    kinds: dict[str, Kind | str] = {s.name: s.kind for s in ent.specs}
    kinds.update({m.output: "money" for m in ent.money})
    return kinds


def norm(kind: Kind | str, value: Any, tag_keys: tuple[str, ...] = ()) -> Any:
    """A value as compared: the same for the hub's column and this suite's expectation."""
    if value is None:
        return None if kind is not Kind.TAGS else ()
    if kind == "money":
        return str(Decimal(value).quantize(Decimal("0.000001")))
    if kind is Kind.TIME:
        assert isinstance(value, datetime) and value.tzinfo is not None, value
        return value.astimezone(UTC).isoformat()
    if kind is Kind.DURATION:
        return round(float(value), 6)
    if kind is Kind.FLOAT:
        return round(float(value), 9)
    if kind in (Kind.INT, Kind.SIZE):
        return int(value)
    if kind is Kind.LIST:
        return tuple(json.loads(value) if isinstance(value, str) else value)
    if kind is Kind.TAGS:
        if isinstance(value, str):
            value = json.loads(value)
        return tuple(sorted((k, v) for k, v in value.items() if v is not None and k in tag_keys))
    return str(value)


def _tag_keys(rows: pl.DataFrame) -> tuple[str, ...]:
    if "tags" not in rows.columns:
        return ()
    dtype = rows.schema["tags"]
    if isinstance(dtype, pl.Struct):
        return tuple(f.name for f in dtype.fields)
    return ("region", "model_id", "service", "team", "tenant", "shard")


def compare_rows(
    ent: Entity, world: World, expected: Expectation, rows: pl.DataFrame, findings: Findings
) -> None:
    missing = [c for c in ent.columns if c not in rows.columns]
    if missing:
        findings.add("columns", f"{ent.id}: expected columns not in the lake: {missing}")
        findings.sign(f"columns {ent.id}: not in the lake: {missing}")
    columns = [c for c in ent.columns if c in rows.columns]
    kinds = _kinds(ent)
    tag_keys = _tag_keys(rows)

    def as_tuple(row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(norm(kinds[c], row.get(c), tag_keys) for c in columns)

    want = Counter(as_tuple(r) for r in expected.rows)
    have = Counter(as_tuple(r) for r in rows.select(columns).iter_rows(named=True))
    if want == have:
        return
    key_at = [columns.index(k) for k in ent.key if k in columns]

    def key_of(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(row[i] for i in key_at)

    wanted = {key_of(r): r for r in want}
    had = {key_of(r): r for r in have}
    lines = [f"{ent.id}: {sum(want.values())} rows expected, {sum(have.values())} landed"]
    for k in sorted(wanted.keys() - had.keys(), key=str):
        lines.append(f"  missing {k}; wire: {_wires(world, ent, k)}")
        findings.sign(f"rows {ent.id}: a good record did not land", _wires(world, ent, k))
    for k in sorted(had.keys() - wanted.keys(), key=str):
        lines.append(f"  unexpected {dict(zip(columns, had[k], strict=True))}")
        findings.sign(f"rows {ent.id}: an unexpected row landed", str(had[k]))
    for k in sorted(wanted.keys() & had.keys(), key=str):
        if wanted[k] == had[k]:
            continue
        diffs = {c: (w, h) for c, w, h in zip(columns, wanted[k], had[k], strict=True) if w != h}
        for column, (w, h) in diffs.items():
            findings.sign(
                f"rows {ent.id}: column {column} differs",
                f"expected {w!r}, landed {h!r}; wire: {_wires(world, ent, k)}",
            )
        lines.append(f"  {k}: expected != landed {diffs}; wire: {_wires(world, ent, k)}")
    if sum(have.values()) != len(had):
        twice = [k for k, n in Counter(map(key_of, have.elements())).items() if n > 1]
        lines.append(f"  keys landed more than once: {twice[:5]}")
        findings.sign(f"rows {ent.id}: a key landed more than once", str(twice[:3]))
    findings.add("rows", "\n".join(lines[:30]))


def _wires(world: World, ent: Entity, key: tuple[Any, ...]) -> str:
    kinds = _kinds(ent)
    for rec in world.recs.get(ent.id, []):
        if tuple(norm(kinds[k], rec.values.get(k)) for k in ent.key) == key:
            return " | ".join(canonical_json(w) for w in rec.wires)
    return "?"


def compare_dead_letters(
    ent: Entity, world: World, expected: Expectation, dead: pl.DataFrame, findings: Findings
) -> None:
    have: Counter[tuple[str, frozenset[str]]] = Counter()
    by_event_id = {
        json.loads(raw).get("event_id", json.loads(raw).get("eventId")): raw
        for raw, _ in expected.dead
    }
    for row in dead.iter_rows(named=True):
        try:
            raw = canonical_json(row["raw_record"])
        except (TypeError, json.JSONDecodeError):
            findings.add(
                "dead_letters",
                f"{ent.id}: raw_record is not valid JSON: {row['raw_record']}",
            )
            findings.sign(
                f"dead letters {ent.id}: raw_record is not valid JSON", str(row["raw_record"])
            )
            # still match it to its record, by its event id, to check the reasons
            raw = by_event_id.get(row.get("record_id"), f"<unreadable {row['raw_record']!r}>")
        reasons = frozenset((row.get("reason") or "").split(";"))
        have[(raw, reasons)] += 1
        codes = [r.split(":", 1)[0] for r in (row.get("reason") or "").split(";")]
        ranks = [REASON_ORDER.index(c) for c in codes if c in REASON_ORDER]
        if ranks != sorted(ranks) or (
            row.get("reason_code") and codes and row["reason_code"] != codes[0]
        ):
            findings.sign(f"reason order {ent.id}", str(row.get("reason")))
            findings.add(
                "reason_order",
                f"{ent.id}: reasons not most specific first: {row.get('reason_code')!r} / {row.get('reason')!r}",
            )
        if ent.series and "record_id" in row:
            record = json.loads(raw) if raw[:1] != "<" else {}
            wire_id = record.get("event_id", record.get("eventId"))
            if wire_id is not None and row["record_id"] != str(wire_id).strip():
                findings.add(
                    "dead_letters",
                    f"{ent.id}: dead letter record_id {row['record_id']!r}, event id {wire_id!r}",
                )
    if have == expected.dead:
        return
    lines = [
        f"{ent.id}: {sum(expected.dead.values())} dead letters expected, {dead.height} written"
    ]
    want_raw = dict(expected.dead.keys())
    have_raw = dict(have.keys())
    for raw in want_raw.keys() - have_raw.keys():
        lines.append(f"  not dead-lettered (should be, for {sorted(want_raw[raw])}): {raw}")
        if not any(r.startswith("<unreadable") for r in have_raw):
            findings.sign(f"dead letters {ent.id}: a bad record was not dead-lettered", raw)
    for raw in have_raw.keys() - want_raw.keys():
        lines.append(f"  dead-lettered, should have landed: {sorted(have_raw[raw])}: {raw}")
        if not raw.startswith("<unreadable"):
            for reason in sorted(have_raw[raw]):  # one signature per reason: countable
                findings.sign(
                    f"dead letters {ent.id}: a good record was dead-lettered for {reason}", raw
                )
    for raw in want_raw.keys() & have_raw.keys():
        if want_raw[raw] != have_raw[raw]:
            lines.append(
                f"  reasons expected {sorted(want_raw[raw])}, written {sorted(have_raw[raw])}: {raw}"
            )
            for reason in sorted(have_raw[raw] - want_raw[raw]):
                findings.sign(
                    f"dead letters {ent.id}: extra reason {reason}",
                    f"expected {sorted(want_raw[raw])}: {raw}",
                )
            for reason in sorted(want_raw[raw] - have_raw[raw]):
                findings.sign(
                    f"dead letters {ent.id}: lacking reason {reason}",
                    f"written {sorted(have_raw[raw])}: {raw}",
                )
    findings.add("dead_letters", "\n".join(lines[:25]))


def compare_manifest(expected: Expectation, manifest: dict[str, Any], findings: Findings) -> None:
    want = {
        "pulled": expected.pulled,
        "landed": expected.landed,
        "dead_lettered": expected.dead_lettered,
        "deduplicated": expected.deduplicated,
        "balanced": True,
    }
    have = {k: manifest.get(k) for k in want}
    if want != have:
        findings.add("manifest", f"expected {want}, manifest says {have}")
        differing = sorted(k for k in want if want[k] != have[k])
        findings.sign(
            f"manifest {manifest.get('module')}.{manifest.get('entity')}: {differing}",
            f"expected {want}, manifest says {have}",
        )


def describe(world: World) -> str:
    """A short account of a world, for a failing example's report."""
    parts = [f"window [{world.start.isoformat()}, {world.end.isoformat()})"]
    for ent_id, recs in world.recs.items():
        inside = [r for r in recs if world.in_window(r.at)]
        parts.append(
            f"{ent_id}: {len(recs)} records, {len(inside)} in window, "
            f"{sum(r.bad for r in inside)} bad, {sum(r.copies - 1 for r in inside)} redelivered"
        )
    return "; ".join(parts)
