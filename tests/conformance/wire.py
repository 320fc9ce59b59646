"""Canonical records → what a module may send for them, every variant the contract allows.

Each choice goes through a ``Chooser``: backed by Hypothesis (``HypothesisChooser``) the
choices shrink to the plainest spelling (the first option: snake_case, ISO with ``Z``, a
JSON number, ...), so a failing example says which variant broke the hub; backed by a
seeded ``random.Random`` (``RandomChooser``) it makes the bigger worlds of the DAG test
without Hypothesis's limit on the number of choices in one example.

Numbers are written with their exact text (``RawNumber``) by a small JSON writer of our
own, so a module's ``1.234E+3`` or ``12.50`` reaches the hub as sent.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from conformance.contract import (
    LOCAL_ZONE,
    Entity,
    Kind,
    Spec,
    camel,
)

T = TypeVar("T")


class Chooser(Protocol):
    def pick(self, options: Sequence[T]) -> T: ...  # shrinks to options[0]
    def chance(self, one_in: int) -> bool: ...  # True about once in one_in; shrinks to False
    def integer(self, low: int, high: int) -> int: ...  # shrinks to low
    def shuffled(self, items: Sequence[T]) -> list[T]: ...


class HypothesisChooser:
    def __init__(self, draw: Callable[[st.SearchStrategy[Any]], Any]):
        self.draw = draw

    def pick(self, options: Sequence[T]) -> T:
        return options[0] if len(options) == 1 else self.draw(st.sampled_from(options))  # type: ignore[no-any-return]

    def chance(self, one_in: int) -> bool:
        return bool(self.draw(st.sampled_from([False] * (one_in - 1) + [True])))

    def integer(self, low: int, high: int) -> int:
        return low if low == high else int(self.draw(st.integers(low, high)))

    def shuffled(self, items: Sequence[T]) -> list[T]:
        return list(self.draw(st.permutations(list(items)))) if len(items) > 1 else list(items)


class RandomChooser:
    def __init__(self, rng: random.Random):
        self.rng = rng

    def pick(self, options: Sequence[T]) -> T:
        return self.rng.choice(list(options))

    def chance(self, one_in: int) -> bool:
        return self.rng.randrange(one_in) == 0

    def integer(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def shuffled(self, items: Sequence[T]) -> list[T]:
        out = list(items)
        self.rng.shuffle(out)
        return out


# --- Records ------------------------------------------------------------------------------

# How a bad record is bad: field → fault. ``NO_FX_RATE`` sits on the money's output column.
MISSING = "missing_required"
UNKNOWN_ENUM = "unknown_enum"
UNPARSEABLE_NUMBER = "unparseable_number"
NEGATIVE = "negative_number"
OUT_OF_RANGE = "out_of_range"
UNPARSEABLE_TIME = "unparseable_time"
NO_FX_RATE = "no_fx_rate"
# "most specific first"
REASON_ORDER = (
    UNPARSEABLE_TIME,
    UNPARSEABLE_NUMBER,
    NEGATIVE,
    OUT_OF_RANGE,
    UNKNOWN_ENUM,
    NO_FX_RATE,
    MISSING,
)


@dataclass
class Rec:
    """A canonical record, how it is bad (if it is), and where the module serves it."""

    ent: Entity
    values: dict[str, Any]
    faults: dict[str, str] = field(default_factory=dict)
    omit_payload: frozenset[str] = frozenset()  # fields sent only in the envelope's tags
    parent: str | None = None  # a fan-out child's parent id
    copies: int = 1  # redeliveries in the same window: served this many times
    wires: list[dict[str, Any]] = field(default_factory=list)  # as served, one per copy

    @property
    def bad(self) -> bool:
        return bool(self.faults)

    @property
    def at(self) -> datetime | None:
        """When the module selects it for a window (ingest or update time)."""
        name = self.ent.window_field
        return self.values[name] if name else None

    def reasons(self) -> frozenset[str]:
        return frozenset(f"{code}:{name}" for name, code in self.faults.items())

    def key(self) -> tuple[Any, ...]:
        return tuple(self.values[k] for k in self.ent.key)


class RawNumber(str):
    """A JSON number, written as this exact text."""


def dumps(
    value: Any, *, indent: int | None = None, ascii_only: bool = True, spaced: bool = False
) -> str:
    """JSON text of ``value``; ``RawNumber`` leaves go out as their text."""
    colon, comma = (": ", ", ") if spaced or indent is not None else (":", ",")

    def write(item: Any, depth: int) -> str:
        pad = "\n" + " " * (indent * (depth + 1)) if indent is not None else ""
        end = "\n" + " " * (indent * depth) if indent is not None else ""
        sep = "," + pad if indent is not None else comma
        if isinstance(item, RawNumber):
            return str(item)
        if isinstance(item, dict):
            if not item:
                return "{}"
            body = sep.join(
                f"{json.dumps(k, ensure_ascii=ascii_only)}{colon}{write(v, depth + 1)}"
                for k, v in item.items()
            )
            return "{" + pad + body + end + "}"
        if isinstance(item, list):
            if not item:
                return "[]"
            return "[" + pad + sep.join(write(v, depth + 1) for v in item) + end + "]"
        return json.dumps(item, ensure_ascii=ascii_only)

    return write(value, 0)


def plain(number: Decimal) -> str:
    text = format(number.normalize(), "f")
    return text


def number_texts(number: Decimal) -> list[str]:
    """Ways to write a number: plain first, then trailing zeros and exponent forms (an
    integer too: ``1.2E+3`` is the JSON number 1200)."""
    text = plain(number)
    forms = [text, text + ("0" if "." in text else ".0")]  # 12, 12.0: the same number
    sign, digits, exponent = number.normalize().as_tuple()
    mantissa = "".join(map(str, digits))
    scale = int(exponent) + len(digits) - 1
    head = f"{'-' if sign else ''}{mantissa[0]}" + (f".{mantissa[1:]}" if len(mantissa) > 1 else "")
    forms.append(f"{head}E{scale:+d}")
    forms.append(f"{'-' if sign else ''}{mantissa}e{int(exponent)}")
    return forms


def render_number(ch: Chooser, number: Decimal) -> Any:
    text = ch.pick(number_texts(number))
    return ch.pick([RawNumber(text), text])


BAD_NUMBERS = ("n/a", "ten", "1.2.3", "12abc", "--5", "0x1A", "1,5", "NaN")
BAD_TIMES = (
    "yesterday",
    "2026-02-30T10:00:00Z",
    "2026-13-01T00:00:00Z",
    "31/12/2026 10:00",
    "10:00:00",
    "2026-11-24T25:00:00Z",
    "not a time",
)
BAD_ENUMS = ("bogus", "n/a", "other", "sev-9", "unknown_value", "CRITICAL!!")

OFFSETS = (
    timedelta(hours=5, minutes=30),
    timedelta(hours=-8),
    timedelta(hours=5, minutes=45),
    timedelta(hours=-3, minutes=-30),
    timedelta(hours=9),
    timedelta(hours=14),
    timedelta(hours=-12),
    timedelta(0),
    timedelta(hours=1),
)


def _offset_text(offset: timedelta, form: str) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    if form == "colon":
        return f"{sign}{hours:02d}:{mins:02d}"
    if form == "compact":
        return f"{sign}{hours:02d}{mins:02d}"
    return f"{sign}{hours:02d}"  # hours alone, only for whole hours


def _fraction(ch: Chooser, micros: int) -> str:
    digits = f"{micros:06d}000"
    needed = len(digits.rstrip("0"))
    count = ch.pick(list(range(needed, 10)))
    return f".{digits[:count]}" if count else ""


def _iso(ch: Chooser, local: datetime) -> str:
    sep = ch.pick(["T", " ", "t"])
    return f"{local:%Y-%m-%d}{sep}{local:%H:%M:%S}{_fraction(ch, local.microsecond)}"


def _unambiguous_local(moment: datetime, zone: str) -> datetime | None:
    """The wall-clock time of ``moment`` in ``zone``, unless that wall time is ambiguous."""
    tz = ZoneInfo(zone)
    local = moment.astimezone(tz).replace(tzinfo=None)
    early, late = local.replace(tzinfo=tz, fold=0), local.replace(tzinfo=tz, fold=1)
    if early.utcoffset() != late.utcoffset():
        return None
    if early.astimezone(UTC) != moment:
        return None
    return local


TIME_FORMS = ("iso_z", "iso_offset", "zoneless", "epoch_s", "epoch_ms")


def render_time(ch: Chooser, moment: datetime, zone: str, zoned_only: bool = False) -> Any:
    """One of the contract's spellings of an instant (UTC, microsecond precision)."""
    form = ch.pick(TIME_FORMS[:2] if zoned_only else TIME_FORMS)
    micros = moment.microsecond
    if form == "zoneless":
        local = _unambiguous_local(moment, zone)
        if local is not None:
            return _iso(ch, local)
        form = "iso_offset"
    if form == "epoch_s" and micros % 1000 == 0:
        seconds = int(moment.timestamp())
        text = str(seconds) if micros == 0 else f"{seconds}.{micros // 1000:03d}"
        return ch.pick([RawNumber(text), text])
    if form == "epoch_ms" and micros % 1000 == 0:
        text = str(int(moment.timestamp()) * 1000 + micros // 1000)
        return ch.pick([RawNumber(text), text])
    if form in ("iso_offset", "epoch_s", "epoch_ms"):
        offset = ch.pick(OFFSETS)
        styles = ["colon", "compact"] + (["hours"] if offset.total_seconds() % 3600 == 0 else [])
        local = moment.astimezone(timezone(offset)).replace(tzinfo=None)
        return _iso(ch, local) + _offset_text(offset, ch.pick(styles))
    return _iso(ch, moment.astimezone(UTC)) + ch.pick(["Z", "z"])


def _enum_text(ch: Chooser, value: str) -> str:
    return ch.pick([value, value.upper(), value.title(), value.swapcase(), value.lower()])


def _name(ch: Chooser, snake: str) -> str:
    return ch.pick([snake, camel(snake)])


def _put_absent(ch: Chooser, spec: Spec, out: dict[str, Any]) -> None:
    """An absent field: left out, or sent as null under one of its names."""
    if ch.chance(4):
        names = (
            [n for n, _ in spec.unit_names]
            if spec.kind in (Kind.DURATION, Kind.SIZE)
            else list(spec.names)
        )
        out[_name(ch, ch.pick(names))] = None


def render_field(ch: Chooser, rec: Rec, spec: Spec, zone: str, out: dict[str, Any]) -> None:
    value = rec.values.get(spec.name)
    fault = rec.faults.get(spec.name)
    if fault == MISSING or value is None or spec.name in rec.omit_payload:
        _put_absent(ch, spec, out)
        return
    if spec.from_path and ch.chance(2):  # a fan-out child need not repeat its parent's id
        _put_absent(ch, spec, out)
        return
    kind = spec.kind
    if kind in (Kind.DURATION, Kind.SIZE):
        name, factor = ch.pick(spec.unit_names)
        wire_name = _name(ch, name)
        if fault == UNPARSEABLE_NUMBER:
            out[wire_name] = ch.pick(BAD_NUMBERS)
            return
        amount = Decimal(value) / Decimal(factor)
        if fault == NEGATIVE:
            amount = -amount if amount > 0 else Decimal("-1.5")
        out[wire_name] = render_number(ch, amount)
        return
    wire_name = _name(ch, ch.pick(spec.names))
    if kind is Kind.TIME:
        if fault == UNPARSEABLE_TIME:
            out[wire_name] = ch.pick(BAD_TIMES)
        else:
            out[wire_name] = render_time(ch, value, zone, zoned_only=spec.name == "ingested_at")
    elif kind is Kind.ENUM:
        if fault == UNKNOWN_ENUM:
            out[wire_name] = ch.pick(BAD_ENUMS)
        else:
            out[wire_name] = _enum_text(ch, value)
    elif kind in (Kind.INT, Kind.FLOAT):
        if fault == UNPARSEABLE_NUMBER:
            out[wire_name] = ch.pick(BAD_NUMBERS)
            return
        number = Decimal(value)
        if fault == NEGATIVE:
            number = -number if number > 0 else Decimal(-1)
        elif fault == OUT_OF_RANGE:
            number = (spec.high + Decimal("0.5")) if spec.high is not None else spec.low - 1  # type: ignore[operator]
        out[wire_name] = render_number(ch, number)
    elif kind is Kind.OPEN:
        out[wire_name] = ch.pick([value, f" {value}", f"{value}  "])
    elif kind is Kind.TAGS:
        out[wire_name] = {key: value[key] for key in ch.shuffled(list(value))}
    elif kind is Kind.LIST:
        out[wire_name] = list(value)
    else:  # ID, TEXT, PERSONAL
        out[wire_name] = value


EXTRA_FIELDS = (
    ("trace_id", "3f2a9c"),
    ("shard", RawNumber("7")),
    ("sdkVersion", "2.4.1"),
    ("debugContext", {"spans": [RawNumber("1"), "two"], "sampled": True}),
)


def render(ch: Chooser, rec: Rec) -> dict[str, Any]:
    """One wire spelling of a record; field order, names and forms chosen independently."""
    ent = rec.ent
    zone = LOCAL_ZONE.get(ent.module, "UTC")
    top: dict[str, Any] = {}
    payload: dict[str, Any] = {}
    for spec in ent.specs:
        render_field(ch, rec, spec, zone, top if (spec.envelope or not ent.series) else payload)
    if ch.chance(5):  # a field this reading of the contract does not know
        name, value = ch.pick(EXTRA_FIELDS)
        (payload if ent.series else top)[name] = value
    if ent.series:
        top["data"] = {k: payload[k] for k in ch.shuffled(list(payload))}
    return {k: top[k] for k in ch.shuffled(list(top))}
