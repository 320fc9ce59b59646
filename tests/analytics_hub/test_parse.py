"""A bad entry of a page or chunk is a fault of its own; the other entries are read as Polars
reads a clean page in one pass."""

from __future__ import annotations

import io
from typing import Any

import orjson
import polars as pl
import pytest

from analytics_hub import parse
from analytics_hub.normalize import ROW
from analytics_hub.sources import get_module

VIOLATIONS = get_module("policy").entity("violations")
FAULT_SCHEMA = pl.Schema({ROW: pl.get_index_type(), "reason_code": pl.String, "reason": pl.String})


def violation(number: int, **data: Any) -> dict[str, Any]:
    return {
        "eventId": f"pol-{number}",
        "timestamp": "2026-11-26T13:05:01Z",
        "ingestedAt": "2026-11-26T13:05:02Z",
        "eventType": "violation.detected",
        "tags": {"region": "eu-west-1"},
        "data": {"violationId": f"v-{number}", "severity": "high", **data},
    }


def page(*entries: bytes, token: bytes = b"null") -> bytes:
    """A page whose ``data`` holds the entries as given, byte for byte."""
    return (
        b'{"status":"success","data":['
        + b",".join(entries)
        + b'],"next_page_token":'
        + token
        + b',"meta":{"request_id":"r-1"}}'
    )


def one_pass(body: bytes) -> pl.DataFrame:
    """The reference reading of a clean page: Polars alone, in one pass."""
    frame = pl.read_ndjson(io.BytesIO(body), schema=parse._page_schema(VIOLATIONS))
    records = frame.select(pl.col("data").explode()).drop_nulls().unnest("data")
    return records.with_row_index(ROW)


def faults(parsed: parse.Parsed) -> list[tuple[int, str]]:
    assert parsed.faults.schema == FAULT_SCHEMA
    assert parsed.faults["reason_code"].to_list() == [
        reason.split(":", 1)[0] for reason in parsed.faults["reason"]
    ]
    assert parsed.entries == parsed.records.height + parsed.faults.height
    return list(zip(parsed.faults[ROW].to_list(), parsed.faults["reason"], strict=True))


def event_ids(parsed: parse.Parsed) -> list[tuple[int, str]]:
    return list(zip(parsed.records[ROW].to_list(), parsed.records["eventId"], strict=True))


GOOD = [orjson.dumps(violation(n)) for n in range(3)]


def test_a_clean_page_reads_as_in_one_pass() -> None:
    body = page(*GOOD, token=b'"next-2"')
    parsed = parse.read_page(body, VIOLATIONS)
    assert parsed.records.equals(one_pass(body))
    assert parsed.records.schema == one_pass(body).schema
    assert faults(parsed) == [] and parsed.entries == 3 and parsed.token == "next-2"


def test_an_empty_or_absent_data_is_a_page_without_entries() -> None:
    for body in (page(), b'{"status":"success","data":null}', b'{"status":"success"}'):
        parsed = parse.read_page(body, VIOLATIONS)
        assert parsed.entries == 0 and parsed.records.is_empty() and faults(parsed) == []
        assert parsed.records.schema == one_pass(page()).schema
        assert parse.raw_records(body, ndjson=False).to_list() == []


def test_a_null_entry_is_a_fault_and_keeps_the_positions_after_it() -> None:
    body = page(GOOD[0], b"null", GOOD[1], b" null ", GOOD[2])
    parsed = parse.read_page(body, VIOLATIONS)
    assert faults(parsed) == [(1, "null_record:record"), (3, "null_record:record")]
    assert event_ids(parsed) == [(0, "pol-0"), (2, "pol-1"), (4, "pol-2")]
    assert parsed.entries == 5


@pytest.mark.parametrize(
    "entry",
    [b"42", b"-1.5e3", b'"pol-9"', b"true", b"[]", b"[1, 2]", b"[" + GOOD[0] + b"]", b'""'],
    ids=["int", "float", "string", "bool", "empty-list", "list", "list-of-record", "empty-string"],
)
def test_an_entry_that_is_not_an_object_is_a_fault(entry: bytes) -> None:
    parsed = parse.read_page(page(GOOD[0], entry, GOOD[1]), VIOLATIONS)
    assert faults(parsed) == [(1, "not_an_object:record")]
    assert event_ids(parsed) == [(0, "pol-0"), (2, "pol-1")]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"eventId": "pol-9", "data": "a string"}, "not_an_object:data"),
        ({"eventId": "pol-9", "data": [1, 2]}, "not_an_object:data"),
        ({"eventId": "pol-9", "tags": ["eu-west-1"]}, "not_an_object:tags"),
    ],
)
def test_a_record_whose_payload_or_tags_is_not_an_object_is_a_fault(
    record: dict[str, Any], reason: str
) -> None:
    parsed = parse.read_page(page(GOOD[0], orjson.dumps(record), GOOD[1]), VIOLATIONS)
    assert faults(parsed) == [(1, reason)]
    assert event_ids(parsed) == [(0, "pol-0"), (2, "pol-1")]


@pytest.mark.parametrize(
    "entry",
    [b'{"eventId":}', b'{"eventId":NaN}', b"nul", b'{"eventId":"a\tb"}', b'{"eventId":"x"} y'],
    ids=["no-value", "nan", "bad-literal", "raw-tab", "trailing-text"],
)
def test_an_entry_that_is_not_json_is_a_fault(entry: bytes) -> None:
    parsed = parse.read_page(page(GOOD[0], entry, GOOD[1]), VIOLATIONS)
    assert faults(parsed) == [(1, "invalid_json:record")]
    assert event_ids(parsed) == [(0, "pol-0"), (2, "pol-1")]


def test_a_value_nested_deeper_than_the_reader_goes_faults_only_its_record() -> None:
    deep = b'{"eventId":"pol-9","data":{"description":' + b"[" * 5000 + b"]" * 5000 + b"}}"
    parsed = parse.read_page(page(GOOD[0], deep, GOOD[1]), VIOLATIONS)
    assert faults(parsed) == [(1, "invalid_json:record")]
    assert event_ids(parsed) == [(0, "pol-0"), (2, "pol-1")]


def test_a_page_made_of_bad_entries_is_not_read_one_entry_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads = 0
    read_ndjson = pl.read_ndjson

    def counted(*args: Any, **kwargs: Any) -> pl.DataFrame:
        nonlocal reads
        reads += 1
        return read_ndjson(*args, **kwargs)

    monkeypatch.setattr(pl, "read_ndjson", counted)
    bad = [orjson.dumps({"eventId": f"pol-{n}", "data": "text"}) for n in range(500)]
    parsed = parse.read_page(page(*bad, b'{"eventId":}', GOOD[0]), VIOLATIONS)
    assert faults(parsed)[:2] == [(0, "not_an_object:data"), (1, "not_an_object:data")]
    assert faults(parsed)[-1] == (500, "invalid_json:record")
    assert event_ids(parsed) == [(501, "pol-0")]
    assert reads <= 3


@pytest.mark.parametrize(
    "bad",
    [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\x80\x80"],
    ids=["ff", "truncated", "encoded-surrogate", "overlong", "continuation"],
)
def test_bytes_that_are_not_utf8_fault_only_their_record(bad: bytes) -> None:
    broken = orjson.dumps(violation(9)).replace(b"pol-9", b"pol-" + bad + b"9")
    body = page(GOOD[0], broken, GOOD[1], token=b'"next-2"')
    parsed = parse.read_page(body, VIOLATIONS)
    assert faults(parsed) == [(1, "invalid_utf8:record")]
    assert event_ids(parsed) == [(0, "pol-0"), (2, "pol-1")]
    assert parsed.token == "next-2"
    # the other records read exactly as they would in a page of their own
    clean = parse.read_page(page(GOOD[0], GOOD[1]), VIOLATIONS).records
    assert parsed.records.drop(ROW).equals(clean.drop(ROW))


def test_bytes_that_are_not_utf8_outside_a_string_fault_only_their_record() -> None:
    broken = orjson.dumps(violation(9)) + b"\xff"
    parsed = parse.read_page(page(GOOD[0], broken, GOOD[1]), VIOLATIONS)
    assert faults(parsed) == [(1, "invalid_utf8:record")]
    assert event_ids(parsed) == [(0, "pol-0"), (2, "pol-1")]


def test_a_replacement_character_that_was_sent_is_text_not_a_fault() -> None:
    sent = orjson.dumps(violation(9, description="caf\ufffd"))
    broken = orjson.dumps(violation(8)).replace(b"pol-8", b"pol-\xff8")
    for body in (page(GOOD[0], sent), page(GOOD[0], sent, broken)):
        parsed = parse.read_page(body, VIOLATIONS)
        assert (1, "invalid_utf8:record") not in faults(parsed)
        assert event_ids(parsed)[1] == (1, "pol-9")
        descriptions = parsed.records["data"].struct.field("description").to_list()
        assert descriptions[1] == "caf\ufffd"
    assert faults(parse.read_page(page(GOOD[0], sent, broken), VIOLATIONS)) == [
        (2, "invalid_utf8:record")
    ]


def test_every_fault_kind_in_one_page() -> None:
    broken = orjson.dumps(violation(9)).replace(b"pol-9", b"pol-\xff")
    body = page(b"null", GOOD[0], b"42", broken, b'{"eventId":}', GOOD[1], token=b'"t"')
    parsed = parse.read_page(body, VIOLATIONS)
    assert faults(parsed) == [
        (0, "null_record:record"),
        (2, "not_an_object:record"),
        (3, "invalid_utf8:record"),
        (4, "invalid_json:record"),
    ]
    assert event_ids(parsed) == [(1, "pol-0"), (5, "pol-1")]
    assert parsed.entries == 6 and parsed.token == "t"


def test_raw_records_has_the_text_of_every_entry_by_position() -> None:
    tricky = violation(7, description='said "hi" \\ then\nleft \u2028 next')
    body = page(GOOD[0], b"null", b"[1, 2]", orjson.dumps(tricky), b'"text"')
    parsed = parse.read_page(body, VIOLATIONS)
    raw = parse.raw_records(body, ndjson=False)
    assert raw.len() == parsed.entries == 5
    assert raw.gather(parsed.faults[ROW]).to_list() == ["null", "[1,2]", '"text"']
    assert [orjson.loads(text) for text in raw.gather(parsed.records[ROW])] == [
        violation(0),
        tricky,
    ]


def test_raw_records_keeps_entries_that_orjson_cannot_read() -> None:
    broken = orjson.dumps(violation(9)).replace(b"pol-9", b"pol-\xff9")
    body = page(GOOD[0], broken, b"null", b'{"eventId":\n NaN}', GOOD[1])
    raw = parse.raw_records(body, ndjson=False).to_list()
    assert len(raw) == parse.read_page(body, VIOLATIONS).entries == 5
    assert raw[1] == orjson.dumps(violation(9)).decode().replace("pol-9", "pol-\ufffd9")
    assert raw[2] == "null" and raw[3] == '{"eventId":  NaN}'
    assert [orjson.loads(raw[i]) for i in (0, 4)] == [violation(0), violation(1)]


def test_raw_records_keeps_entries_nested_deeper_than_orjson_writes() -> None:
    deep = b'{"eventId":"pol-9","data":{"description":' + b'{"a":' * 600 + b"1" + b"}" * 602
    raw = parse.raw_records(page(GOOD[0], deep, b"null"), ndjson=False).to_list()
    assert raw[1:] == [deep.decode(), "null"]
    assert orjson.loads(raw[0]) == violation(0)


def test_the_token_is_read_the_same_when_the_page_is_taken_apart() -> None:
    for token in (b'"abc"', b"null", b"17"):
        clean = parse.read_page(page(GOOD[0], token=token), VIOLATIONS)
        faulty = parse.read_page(page(GOOD[0], b"[]", token=token), VIOLATIONS)
        assert faulty.token == clean.token


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[1, 2]",
        b'"page"',
        b'{"data": {"eventId": "pol-1"}}',
        b'{"data": 5}',
        b'{"data": [' + GOOD[0],
        b'{"data": []} trailing',
        b'{"data": [], "next_page_token": "\xff"}',
    ],
    ids=[
        "empty",
        "array",
        "string",
        "data-object",
        "data-number",
        "truncated",
        "trailing",
        "token-not-utf8",
    ],
)
def test_a_body_that_is_not_a_page_is_refused(body: bytes) -> None:
    with pytest.raises(ValueError, match=r"page|JSON"):
        parse.read_page(body, VIOLATIONS)


def ndjson(*lines: bytes) -> bytes:
    return b"\n".join(lines) + b"\n"


def test_a_clean_chunk_reads_as_in_one_pass() -> None:
    body = ndjson(*GOOD)
    parsed = parse.read_ndjson(body, VIOLATIONS)
    expected = pl.read_ndjson(io.BytesIO(body), schema=parse._line_schema(VIOLATIONS))
    assert parsed.records.equals(expected.with_row_index(ROW))
    assert faults(parsed) == [] and parsed.entries == 3 and parsed.token is None


def test_a_bad_line_is_a_fault_of_its_own() -> None:
    broken = orjson.dumps(violation(9)).replace(b"pol-9", b"pol-\xff9")
    body = ndjson(
        GOOD[0], b'{"eventId": "pol-x", ', b"", b"null", GOOD[1], b"  ", b"[1]", broken, GOOD[2]
    )
    parsed = parse.read_ndjson(body, VIOLATIONS)
    assert faults(parsed) == [
        (1, "invalid_json:line"),
        (2, "null_record:record"),
        (4, "not_an_object:record"),
        (5, "invalid_utf8:record"),
    ]
    assert event_ids(parsed) == [(0, "pol-0"), (3, "pol-1"), (6, "pol-2")]
    assert parsed.entries == 7
    raw = parse.raw_records(body, ndjson=True)
    assert raw.gather(parsed.faults[ROW]).to_list() == [
        '{"eventId": "pol-x", ',
        "null",
        "[1]",
        broken.decode(errors="replace"),
    ]
    assert raw.gather(parsed.records[ROW]).to_list() == [g.decode() for g in GOOD]


def test_a_chunk_with_a_bad_line_reads_its_good_lines_as_a_clean_chunk_would() -> None:
    clean = parse.read_ndjson(ndjson(*GOOD), VIOLATIONS)
    faulty = parse.read_ndjson(ndjson(GOOD[0], b"{oops", GOOD[1], GOOD[2]), VIOLATIONS)
    assert faulty.records[ROW].to_list() == [0, 2, 3]
    assert faulty.records.drop(ROW).equals(clean.records.drop(ROW))
    assert faulty.records.schema == clean.records.schema


def test_ndjson_lines_are_split_on_newlines_only() -> None:
    body = ndjson(orjson.dumps(violation(1, description="a\u2028b\x1cc\u0085d")), GOOD[2])
    parsed = parse.read_ndjson(body, VIOLATIONS)
    assert parsed.entries == 2 and faults(parsed) == []
    assert parse.raw_records(body, ndjson=True).len() == 2
