"""Pages of random good, malformed and hostile entries: every entry is accounted for.

For any page or chunk, ``parse`` + ``normalize`` never fail, and each entry lands exactly
once: as a row, as a normalize reject or as a parse fault, the last two with a reason.
Entries whose fate is certain (a null, a non-object, bytes that are not UTF-8, text that
is not JSON, a well-formed record) are checked to meet it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from analytics_hub import parse
from analytics_hub.fx import FxRates
from analytics_hub.normalize import ROW, normalize
from analytics_hub.settings import project_root
from analytics_hub.sources import TAG_KEYS, Entity, Field, Kind, Module, get_module

KEY = b"fuzz-pseudonym-key"
# CI replays the same draws every run, so a red build names a change rather than a draw.
IN_CI = bool(os.environ.get("CI"))
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "30")),
    deadline=None,
    derandomize=IN_CI,
    database=None
    if IN_CI
    else DirectoryBasedExampleDatabase(str(project_root() / ".local" / "hypothesis-fuzz-pages")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ENTITIES = [
    ("policy", "violations"),
    ("observatory", "metrics"),
    ("costops", "cost_records"),
    ("registry", "assets"),  # a state entity: plain objects, no envelope
]

ANY = "any"  # the entry may land or be a fault of any kind
RECORD = "record"  # the entry must reach normalize (as a row or a reject)

# Stand-ins for what orjson will not write: the JSON string is swapped for the bytes after
# the record is serialized. Each maps to what becomes of a record that carries it.
SWAPS: dict[str, tuple[bytes, str]] = {
    "@@ff@@": (b'"pol-\xff"', "invalid_utf8"),
    "@@cut@@": (b'"caf\xc3"', "invalid_utf8"),
    "@@surrogate@@": (b'"\xed\xa0\x80"', "invalid_utf8"),
    "@@overlong@@": (b'"\xc0\xaf"', "invalid_utf8"),
    "@@bare@@": (b'"ok"\x80', "invalid_utf8"),  # outside the string: breaks the syntax too
    "@@nan@@": (b"NaN", ANY),
    "@@inf@@": (b"-Infinity", ANY),
    "@@overflow@@": (b"1e400", ANY),
    "@@huge@@": (b"123456789012345678901234567890123456789", ANY),
    "@@u64@@": (b"18446744073709551616", ANY),
    "@@digits@@": (b"9" * 5000, ANY),
    "@@deep@@": (b"[" * 1500 + b"]" * 1500, ANY),
    "@@deep_objects@@": (b'{"a":' * 900 + b"1" + b"}" * 900, ANY),
    "@@shallow@@": (b"[" * 40 + b"1" + b"]" * 40, ANY),
}
WORST_FIRST = ("invalid_utf8", ANY, "not_an_object", RECORD)

# Entries that are not JSON but keep the page's brackets balanced.
BROKEN = [b'{"eventId":}', b'{"eventId" "x"}', b"nul", b"tru", b"{'a': 1}", b'{"a": 1} x', b"-"]
# Lines that are not JSON at all: in a chunk, one line cannot break another.
BROKEN_LINES = [*BROKEN, b'{"eventId": "obs-1", ', b"[[[", b'"unterminated', b"}"]

TEXTS = [
    '"next_page_token":"page-2"',
    "next_page_token",
    '{"status":"success","data":[null],"next_page_token":"x"}',
    "\\",
    '"',
    "\n\r\t",
    "a\u2028b\u0085c",
    "\ufffd",
    "\x00",
    "😀",
    "  ",
    "",
]


def texts() -> st.SearchStrategy[str]:
    return st.one_of(st.text(max_size=12), st.sampled_from(TEXTS))


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        texts(),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(texts(), inner, max_size=3)
        ),
        max_leaves=8,
    )


def times() -> st.SearchStrategy[Any]:
    moments = st.datetimes(
        min_value=datetime(2000, 1, 1),  # noqa: DTZ001 (hypothesis wants naive bounds)
        max_value=datetime(2100, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    )
    return st.one_of(
        moments.map(lambda m: m.isoformat().replace("+00:00", "Z")),
        moments.map(lambda m: m.strftime("%Y-%m-%d %H:%M:%S")),
        moments.map(lambda m: int(m.timestamp())),
        moments.map(lambda m: int(m.timestamp() * 1000)),
        st.sampled_from(["yesterday", "2026-13-45T99:99:99Z", "26/11/2026 13:05", "0", "-1e30"]),
    )


def numbers() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(min_value=-10, max_value=10**9),
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(min_value=0, max_value=10**6).map(str),
        st.sampled_from(["1.5", " 20 ", "1e308", "-0", "twelve", ""]),
    )


def good_value(field: Field) -> st.SearchStrategy[Any]:
    if field.kind is Kind.ENUM:
        values = st.sampled_from(field.values)
        return st.one_of(values, values.map(str.upper), texts())
    if field.kind is Kind.INT:
        return st.one_of(st.integers(min_value=-3, max_value=10**7), numbers())
    if field.kind in (Kind.FLOAT, Kind.DURATION_MS, Kind.SIZE_BYTES):
        return numbers()
    if field.kind is Kind.TIMESTAMP:
        return times()
    if field.kind is Kind.JSON:
        return json_values()
    if field.kind is Kind.TAGS:
        return st.dictionaries(st.sampled_from([*TAG_KEYS, "unlisted"]), json_values(), max_size=4)
    return st.one_of(st.from_regex(r"[a-z]{1,8}-[0-9]{1,4}", fullmatch=True), texts())


def value(field: Field) -> st.SearchStrategy[Any]:
    hostile = st.one_of(json_values(), st.sampled_from(list(SWAPS)))
    return st.one_of(good_value(field), good_value(field), hostile)


def within_reach() -> st.SearchStrategy[Any]:
    """A number for an integer or money column, now and then beyond what it holds."""
    return st.one_of(
        st.integers(min_value=-(2**53), max_value=2**53),
        st.sampled_from([str(2**64 - 1), "1e19", 1e30, "-1e300"]),
        st.floats(min_value=-1e15, max_value=1e15),
        st.integers(min_value=0, max_value=2**53).map(str),
        st.sampled_from(["1.5", " 20 ", "-0", "twelve", ""]),
        texts(),
        st.none(),
        st.lists(st.integers(min_value=-(2**53), max_value=2**53), max_size=2),
    )


@dataclass
class Entry:
    text: bytes
    expect: str  # RECORD, ANY, or the reason code of the fault it must be


@st.composite
def records(draw: st.DrawFn, entity: Entity) -> Entry:
    """A record of the entity: each field under one of its names (casing, unit, rename)."""
    top: dict[str, Any] = {}
    payload: dict[str, Any] = {}
    amounts = {money.amount for money in entity.money}
    for field in entity.all_fields:
        bounded = field.kind is Kind.INT or field.name in amounts
        values = within_reach() if bounded else value(field)
        for _ in range(draw(st.sampled_from([1, 1, 1, 1, 0, 2]))):  # absent, or twice
            target = top if field.in_envelope or not entity.time_series else payload
            target[draw(st.sampled_from(field.wire_names))] = draw(values)
    top.update(draw(st.dictionaries(texts(), json_values(), max_size=2)))  # unknown fields
    expect = RECORD
    if entity.time_series:
        top["data"] = draw(st.one_of(st.just(payload), st.just(payload), json_values()))
        tags = top.get("tags")
        if not isinstance(top["data"], dict | None) or not isinstance(tags, dict | None):
            expect = "not_an_object"
    text = orjson.dumps(top)
    for stand_in, (swap, fate) in SWAPS.items():
        if stand_in.encode() in text:
            text = text.replace(orjson.dumps(stand_in), swap)
            expect = min(expect, fate, key=WORST_FIRST.index)
    return Entry(text, expect)


def entries(entity: Entity, broken: list[bytes]) -> st.SearchStrategy[Entry]:
    not_objects = st.one_of(
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        texts(),
        st.booleans(),
        st.lists(json_values()),
    )
    return st.one_of(
        records(entity),
        records(entity),
        st.just(Entry(b"null", "null_record")),
        not_objects.map(lambda v: Entry(orjson.dumps(v), "not_an_object")),
        st.sampled_from(broken).map(lambda text: Entry(text, "invalid_json")),
    )


def padded(text: bytes, space: bytes) -> st.SearchStrategy[bytes]:
    pads = st.sampled_from([b"", b" ", space, b"\t" + space + b" "])
    return st.tuples(pads, pads).map(lambda p: p[0] + text + p[1])


def accounted(
    parsed: parse.Parsed,
    raw: pl.Series,
    expected: list[Entry],
    module: Module,
    entity: Entity,
    rates: FxRates,
) -> None:
    """Every entry once, as a row, a reject or a fault; each fault and reject with a reason."""
    assert parsed.entries == len(expected) == parsed.records.height + parsed.faults.height
    assert raw.len() == parsed.entries
    result = normalize(parsed.records, module, entity, rates=rates, pseudonym_key=KEY)
    landed, rejected, faulted = (
        frame[ROW].to_list() for frame in (result.rows, result.rejects, parsed.faults)
    )
    assert sorted(landed + rejected + faulted) == list(range(parsed.entries))
    for bad in (result.rejects, parsed.faults):
        for code, reason in bad.select("reason_code", "reason").iter_rows():
            assert code and reason and reason.startswith(f"{code}:"), (code, reason)
    raw.gather(parsed.faults[ROW])  # every fault has its raw text, by position
    reasons = dict(zip(faulted, parsed.faults["reason_code"], strict=True))
    for row, entry in enumerate(expected):
        note(f"entry {row}: {entry}")
        if entry.expect == RECORD:
            assert row not in reasons, (row, reasons[row], entry)
        elif entry.expect != ANY:
            assert reasons.get(row) == entry.expect, (row, reasons.get(row), entry)


def entity_of(names: tuple[str, str]) -> tuple[Module, Entity]:
    module = get_module(names[0])
    return module, module.entity(names[1])


@pytest.fixture(scope="module")
def rates() -> FxRates:
    return FxRates.load()


@FUZZ
@given(data=st.data(), token=st.one_of(st.none(), texts()))
def test_every_entry_of_a_page_is_accounted_for(
    data: st.DataObject, token: str | None, rates: FxRates
) -> None:
    module, entity = entity_of(data.draw(st.sampled_from(ENTITIES), label="entity"))
    drawn = data.draw(st.lists(entries(entity, BROKEN), max_size=12), label="entries")
    sent = [data.draw(padded(entry.text, b"\n")) for entry in drawn]
    body = (
        b'{"status":"success","data":['
        + b",".join(sent)
        + b'],"next_page_token":'
        + orjson.dumps(token)
        + b',"meta":{"request_id":"r-1","api_version":"v1"}}'
    )
    note(repr(body))
    parsed = parse.read_page(body, entity)
    assert parsed.token == token
    raw = parse.raw_records(body, ndjson=False)
    accounted(parsed, raw, drawn, module, entity, rates)


@FUZZ
@given(data=st.data())
def test_every_line_of_a_chunk_is_accounted_for(data: st.DataObject, rates: FxRates) -> None:
    module, entity = entity_of(data.draw(st.sampled_from(ENTITIES), label="entity"))
    drawn = data.draw(st.lists(entries(entity, BROKEN_LINES), max_size=12), label="lines")
    lines: list[bytes] = []
    for entry in drawn:
        lines.extend(data.draw(st.lists(st.sampled_from([b"", b"  ", b"\t\r"]), max_size=1)))
        lines.append(data.draw(padded(entry.text, b"\t")))
    body = b"\n".join(lines) + data.draw(st.sampled_from([b"", b"\n", b"\r\n"]))
    note(repr(body))
    parsed = parse.read_ndjson(body, entity)
    assert parsed.token is None
    raw = parse.raw_records(body, ndjson=True)
    accounted(parsed, raw, drawn, module, entity, rates)


TEMPLATES: dict[str, dict[str, Any]] = {
    "metrics": {
        "event_id": "obs-1",
        "timestamp": "2026-11-26T13:05:01Z",
        "ingested_at": "2026-11-26T13:05:02Z",
        "event_type": "request.completed",
        "data": {"model_id": "gpt-x", "total_latency_ms": 120.5},
    },
    "cost_records": {
        "event_id": "cost-evt-1",
        "timestamp": "2026-11-26T14:00:00Z",
        "ingested_at": "2026-11-26T14:00:05Z",
        "event_type": "cost.recorded",
        "data": {
            "cost_record_id": "cost-1",
            "usage_start": "2026-11-26T13:00:00Z",
            "cost": "12.34",
            "cost_unit": "USD",
            "record_version": 1,
        },
    },
}


@pytest.mark.parametrize(
    ("names", "field", "number"),
    [
        (("costops", "cost_records"), "cost", "1e30"),
        (("costops", "cost_records"), "cost", 1e30),
        (("costops", "cost_records"), "record_version", 1e300),
        (("observatory", "metrics"), "input_tokens", 2**64 - 1),
        (("observatory", "metrics"), "output_tokens", "1e19"),
    ],
)
def test_a_number_beyond_its_columns_type_is_a_reject(
    names: tuple[str, str], field: str, number: Any, rates: FxRates
) -> None:
    module, entity = entity_of(names)
    record = orjson.loads(orjson.dumps(TEMPLATES[entity.name]))
    record["data"][field] = number
    parsed = parse.read_page(orjson.dumps({"data": [record]}), entity)
    result = normalize(parsed.records, module, entity, rates=rates, pseudonym_key=KEY)
    assert result.rows.is_empty() and result.rejects.height == 1
