"""Read wire pages into Polars frames whose every leaf is text.

A module may send a number as a JSON number or as a string, an object where a string
was expected, or a field the hub does not know. Reading every known field as text
(Polars turns numbers and objects into their JSON text) keeps one bad value from
failing the page; the normalizer then decides, per record, what is valid.

An entry that is not a record at all (``null``, a number, a list, bytes that are not
UTF-8, a line that is not JSON) is a fault of that entry alone: the other entries are
read, and the fault keeps its position, so it is dead-lettered with its raw text. Polars
reads a clean page in one pass; only a page it refuses is taken apart entry by entry, to
pin the refusal on the entries that caused it.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from functools import cache
from typing import TypeAlias

import orjson
import polars as pl

from analytics_hub.normalize import ROW, TAGS
from analytics_hub.sources import Entity, Kind

_JSON_SPACE = " \t\n\r"
_SPACE = re.compile(r"[ \t\n\r]*")
# A string (its closing quote optional, so an unterminated one runs to the end) or one
# structural character: enough to find where a malformed value ends.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[][{},]', re.DOTALL)
# Decoding with ``surrogateescape`` turns each byte that is not UTF-8, and only those,
# into one of these lone surrogates.
_NOT_UTF8 = re.compile("[\udc80-\udcff]")
_SCANNER = json.JSONDecoder()
# The fields of a record schema read as objects, each with its own such fields.
_Objects: TypeAlias = tuple[tuple[str, "_Objects"], ...]


@dataclass(frozen=True)
class Parsed:
    """The entries of one page or chunk, each either a record or a fault, by position."""

    records: pl.DataFrame  # every known field as text, plus ROW
    faults: pl.DataFrame  # ROW, reason_code, reason (``code:field``): entries that are not records
    entries: int  # every entry, good or bad: records.height + faults.height
    token: str | None = None  # the next page token


@cache
def record_schema(entity: Entity) -> pl.Struct:
    """Every wire name of every field of the entity, as text; payload fields under ``data``."""
    top: dict[str, pl.DataType] = {}
    payload: dict[str, pl.DataType] = {}
    for field in entity.all_fields:
        target = top if (field.in_envelope or not entity.time_series) else payload
        for name in field.wire_names:
            target[name] = TAGS if field.kind is Kind.TAGS else pl.String()
    if entity.time_series:
        top["data"] = pl.Struct(payload)
    return pl.Struct(top)


@cache
def _page_schema(entity: Entity) -> pl.Schema:
    return pl.Schema({"data": pl.List(record_schema(entity)), "next_page_token": pl.String()})


@cache
def _line_schema(entity: Entity) -> pl.Schema:
    return pl.Schema(record_schema(entity).to_schema())


def read_page(body: bytes, entity: Entity) -> Parsed:
    """The records of one JSON page (ROW: position in ``data``), its faults and next token.

    Faults: ``null_record`` (a JSON null), ``not_an_object`` (a number, string or list, or
    a record whose ``data`` or ``tags`` is not an object), ``invalid_json`` (an entry that
    does not parse) and ``invalid_utf8``: exactly the entries whose own bytes are not
    UTF-8; a valid U+FFFD in a record is text like any other. In a page Polars refuses,
    an entry is a record only if both orjson and Polars read it (orjson refuses a number
    beyond a double, a lone surrogate escape, nesting past 1024 levels).

    Raises ValueError if the body is not one JSON object, or its ``data`` is neither a
    list nor null (a missing or null ``data`` is a page without entries).
    """
    try:
        page = pl.read_ndjson(io.BytesIO(body.replace(b"\n", b" ")), schema=_page_schema(entity))
    except pl.exceptions.PolarsError:
        return _read_page_by_entry(body, entity)
    if page.height != 1:
        raise ValueError(f"expected one JSON page object, found {page.height}")
    entries = page.select(pl.col("data").explode(keep_nulls=False)).with_row_index(ROW)
    nulls = entries.get_column("data").is_null()
    faults = _faults([])
    if nulls.any():
        faults = _faults([(row, "null_record:record") for row in entries.filter(nulls)[ROW]])
        entries = entries.filter(~nulls)
    token = page.get_column("next_page_token")[0]
    return Parsed(entries.unnest("data"), faults, entries.height + faults.height, token)


def read_ndjson(body: bytes, entity: Entity) -> Parsed:
    """The records of a chunk of newline-delimited JSON (ROW: position among non-blank lines).

    A line that does not parse is ``invalid_json:line``; other faults as in ``read_page``.
    """
    try:
        records = pl.read_ndjson(io.BytesIO(body), schema=_line_schema(entity))
    except pl.exceptions.PolarsError:
        texts = [_utf8(line) for line in _lines(body)]
        records, faults = _sort_out(texts, entity, "line")
        return Parsed(records, faults, len(texts))
    return Parsed(records.with_row_index(ROW), _faults([]), records.height)


def raw_records(body: bytes, *, ndjson: bool) -> pl.Series:
    """The text of each entry of a page or chunk, by position (ROW), records and faults alike.

    NDJSON lines are kept as received. A page's entries are written back by orjson: valid
    JSON equal to what was sent (Polars' own rendering of a nested value drops escapes),
    read only for pages that have dead letters. An entry orjson cannot read or write (not
    JSON, not UTF-8, nested too deep) is kept as sent, on one line, its bytes that are not
    UTF-8 replaced by U+FFFD.
    """
    if ndjson:
        texts = [line.decode(errors="replace") for line in _lines(body)]
        return pl.Series("raw", texts, dtype=pl.String)
    try:
        page = orjson.loads(body)
        if not isinstance(page, dict):
            raise ValueError(f"a page must be a JSON object, got {type(page).__name__}")
        data = page.get("data")
        if not isinstance(data, list | None):
            raise ValueError(f"a page's data must be a list, got {type(data).__name__}")
        texts = [orjson.dumps(entry).decode() for entry in data or []]
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        entries, _ = _layout(body.decode(errors="surrogateescape"))
        texts = [_rewritten(entry) for entry in entries]
    return pl.Series("raw", texts, dtype=pl.String)


def _read_page_by_entry(body: bytes, entity: Entity) -> Parsed:
    entries, token = _layout(body.decode(errors="surrogateescape"))
    texts = [None if _NOT_UTF8.search(entry) else entry for entry in entries]
    records, faults = _sort_out(texts, entity, "record")
    return Parsed(records, faults, len(entries), _token(token, entity))


def _sort_out(
    texts: list[str | None], entity: Entity, unit: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The records among the entries (None: not UTF-8), and a fault for each of the others.

    orjson screens every entry first: bisecting Polars' refusals is cheap for a few bad
    entries but costs a read per entry on a page made of them.
    """
    faults: list[tuple[int, str]] = []
    objects: list[tuple[int, str]] = []
    nested = _objects(entity)
    for row, text in enumerate(texts):
        fault = "invalid_utf8:record" if text is None else _fault(text, nested, unit)
        if fault:
            faults.append((row, fault))
        elif text is not None:
            objects.append((row, text))
    # A raw line break can only sit between tokens, where a space means the same.
    lines = [text.replace("\n", " ").replace("\r", " ").encode() for _, text in objects]
    records, refused = _read_lines(lines, _line_schema(entity))
    faults.extend((objects[index][0], f"invalid_json:{unit}") for index in refused)
    skipped = set(refused)
    rows = [row for index, (row, _) in enumerate(objects) if index not in skipped]
    records = records.insert_column(0, pl.Series(ROW, rows, dtype=pl.get_index_type()))
    return records, _faults(sorted(faults))


def _read_lines(lines: list[bytes], schema: pl.Schema) -> tuple[pl.DataFrame, list[int]]:
    """The records Polars reads from the lines, and the indexes of the lines it refuses.

    Polars refuses a whole chunk for one bad line; halving the chunk until each refusal is
    one line costs a few reads per bad line rather than one read per line.
    """
    try:
        records = pl.read_ndjson(io.BytesIO(b"\n".join(lines)), schema=schema)
        if records.height == len(lines):
            return records, []
    except pl.exceptions.PolarsError:
        pass
    if len(lines) == 1:
        return pl.DataFrame(schema=schema), [0]
    half = len(lines) // 2
    head, head_refused = _read_lines(lines[:half], schema)
    tail, tail_refused = _read_lines(lines[half:], schema)
    return pl.concat([head, tail]), head_refused + [half + i for i in tail_refused]


def _fault(text: str, nested: _Objects, unit: str) -> str | None:
    """Why an entry is not a record, or None for one that Polars is to read."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return f"invalid_json:{unit}"
    if value is None:
        return "null_record:record"
    if not isinstance(value, dict):
        return "not_an_object:record"
    field = _misshapen(value, nested)
    return f"not_an_object:{field}" if field else None


def _misshapen(record: dict[str, object], objects: _Objects) -> str | None:
    """The first field read as an object whose value is neither an object nor null."""
    for name, inner_objects in objects:
        value = record.get(name)
        if value is None:
            continue
        if not isinstance(value, dict):
            return name
        inner = _misshapen(value, inner_objects)
        if inner:
            return f"{name}.{inner}"
    return None


@cache
def _objects(entity: Entity) -> _Objects:
    """The fields read as objects, and theirs: a few among many, to check on every entry."""

    def within(schema: pl.Struct) -> _Objects:
        return tuple(
            (field.name, within(field.dtype))
            for field in schema.fields
            if isinstance(field.dtype, pl.Struct)
        )

    return within(record_schema(entity))


def _faults(faults: list[tuple[int, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            ROW: [row for row, _ in faults],
            "reason_code": [reason.split(":", 1)[0] for _, reason in faults],
            "reason": [reason for _, reason in faults],
        },
        schema={ROW: pl.get_index_type(), "reason_code": pl.String, "reason": pl.String},
    )


def _lines(body: bytes) -> list[bytes]:
    """The non-blank lines of an NDJSON chunk, as Polars counts them."""
    return [line.removesuffix(b"\r") for line in body.split(b"\n") if line.strip(b" \t\r")]


def _utf8(line: bytes) -> str | None:
    try:
        return line.decode()
    except UnicodeDecodeError:
        return None


def _rewritten(entry: str) -> str:
    try:
        return orjson.dumps(orjson.loads(entry)).decode()
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        sent = entry.encode(errors="surrogateescape").decode(errors="replace")
        return sent.replace("\n", " ").replace("\r", " ")


def _token(value: str | None, entity: Entity) -> str | None:
    """The next page token, read as the one-pass reader reads it (a number as its text)."""
    if value is None:
        return None
    try:
        page = pl.read_ndjson(
            io.BytesIO(f'{{"next_page_token":{value}}}'.encode()), schema=_page_schema(entity)
        )
    except (pl.exceptions.PolarsError, UnicodeEncodeError) as error:
        raise ValueError(f"the page's next_page_token is unreadable: {value[:80]!r}") from error
    token: str | None = page.get_column("next_page_token")[0]
    return token


def _layout(text: str) -> tuple[list[str], str | None]:
    """The text of each entry of the page's ``data`` and of its next_page_token value.

    Entries are delimited, not parsed: one that is not JSON is still one entry, for the
    reader to refuse. Raises ValueError where the page itself is not a JSON object.
    """
    at = _skip_space(text, 0)
    if not text.startswith("{", at):
        raise ValueError(f"a page must be a JSON object, got {text[at : at + 40]!r}")
    entries: list[str] = []
    token: str | None = None
    at = _skip_space(text, at + 1)
    while not text.startswith("}", at):
        try:
            key, at = _SCANNER.raw_decode(text, at)
        except ValueError as error:
            raise ValueError(f"a page's member name is malformed at {at}") from error
        at = _skip_space(text, at)
        if not isinstance(key, str) or not text.startswith(":", at):
            raise ValueError(f"a page's member is malformed at {at}")
        at = _skip_space(text, at + 1)
        if key == "data" and text.startswith("[", at):
            spans, at = _items(text, at)
            entries = [text[start:end].rstrip(_JSON_SPACE) for start, end in spans]
            at = _skip_space(text, at)
        else:
            end = _item_end(text, at)
            value = text[at:end].rstrip(_JSON_SPACE)
            if key == "data" and value != "null":
                raise ValueError(f"a page's data must be a list, got {value[:40]!r}")
            if key == "next_page_token":
                token = None if value == "null" else value
            at = end
        if text.startswith(",", at):
            at = _skip_space(text, at + 1)
        elif not text.startswith("}", at):
            raise ValueError(f"a page's members are malformed at {at}")
    if _skip_space(text, at + 1) != len(text):
        raise ValueError("a page has text after its JSON object")
    return entries, token


def _items(text: str, opening: int) -> tuple[list[tuple[int, int]], int]:
    """Where each item of the array opening at ``opening`` starts and ends; where it closes."""
    items: list[tuple[int, int]] = []
    at = _skip_space(text, opening + 1)
    if text.startswith("]", at):
        return items, at + 1
    while True:
        end = _item_end(text, at)
        items.append((at, end))
        if text[end] == "]":
            return items, end + 1
        if text[end] != ",":
            raise ValueError(f"a page's data is malformed at {end}")
        at = _skip_space(text, end + 1)


def _item_end(text: str, start: int) -> int:
    """Where the item starting at ``start`` ends: at its ',' or at the closing bracket.

    Python's scanner finds the end of a well-formed value at C speed; a malformed one
    (bad syntax, bytes that are not UTF-8 outside a string, nesting deeper than the
    scanner recurses) is skipped by counting brackets outside strings.
    """
    try:
        end = _skip_space(text, _SCANNER.raw_decode(text, start)[1])
        if end < len(text) and text[end] in ",]}":
            return end
    except (ValueError, RecursionError):
        pass
    depth = 0
    for token in _TOKENS.finditer(text, start):
        mark = token.group()
        if mark in ("[", "{"):
            depth += 1
        elif mark in ("]", "}"):
            if depth == 0:
                return token.start()
            depth -= 1
        elif mark == "," and depth == 0:
            return token.start()
    raise ValueError("a page ends inside a value")


def _skip_space(text: str, at: int) -> int:
    space = _SPACE.match(text, at)
    return space.end() if space else at
