"""TimescaleDB from PGlite's WASM build answers psycopg 3 over TCP (tests/tooling/pglite_server).

One server for the module; it serves one connection at a time, so every test closes its
connection before the next one opens.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from hub_dev.timescale_wasm import PgliteTimescale

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pglite() -> Iterator[PgliteTimescale]:
    with PgliteTimescale() as server:
        print(f"\nPGlite + TimescaleDB server ready in {server.startup_seconds:.2f} s")
        yield server


@pytest.fixture
def conn(pglite: PgliteTimescale) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pglite.dsn, autocommit=True, connect_timeout=30) as connection:
        yield connection


def _job_id(conn: psycopg.Connection, query: str) -> int:
    row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def test_timescaledb_extension(pglite: PgliteTimescale, conn: psycopg.Connection) -> None:
    assert pglite.dsn == f"postgresql://postgres@127.0.0.1:{pglite.port}/{pglite.dbname}"
    row = conn.execute("select extversion from pg_extension where extname = 'timescaledb'")
    version = row.fetchone()
    assert version is not None and version[0].startswith("2.")
    assert conn.info.parameter_status("TimeZone") == "UTC"
    assert conn.info.parameter_status("integer_datetimes") == "on"
    assert conn.info.server_version >= 170000


def test_hypertable_by_day(conn: psycopg.Connection) -> None:
    conn.execute(
        "create table readings (ts timestamptz not null, device int not null, value float8)"
    )
    conn.execute("select create_hypertable('readings', by_range('ts', interval '1 day'))")
    start = datetime(2024, 1, 1, tzinfo=UTC)
    with conn.cursor() as cur:
        cur.executemany(
            "insert into readings values (%s, %s, %s)",
            [(start + timedelta(hours=6 * i), i % 3, i * 0.5) for i in range(12)],
        )
    assert conn.execute("select count(*), sum(value) from readings").fetchone() == (12, 33.0)
    chunks = conn.execute("select count(*) from show_chunks('readings')").fetchone()
    assert chunks == (3,)


def test_copy_from_stdin_50mb(conn: psycopg.Connection) -> None:
    conn.execute(
        "create table copy_big (ts timestamptz not null, device int not null, payload text)"
    )
    conn.execute("select create_hypertable('copy_big', by_range('ts', interval '1 day'))")
    payload = "x" * 90
    block_rows = 10_000
    blocks = [
        "".join(
            f"2024-02-{1 + (b % 4):02d} {i % 24:02d}:{i % 60:02d}:00+00\t{i % 50}\t{payload}\n"
            for i in range(block_rows)
        ).encode()
        for b in range(4)
    ]
    target = 50 * 1024 * 1024
    sent = rows = 0
    started = time.monotonic()
    with conn.cursor() as cur, cur.copy("copy copy_big (ts, device, payload) from stdin") as copy:
        while sent < target:
            block = blocks[rows // block_rows % len(blocks)]
            for offset in range(0, len(block), 1 << 20):  # write in 1 MiB pieces
                copy.write(block[offset : offset + (1 << 20)])
            sent += len(block)
            rows += block_rows
    elapsed = time.monotonic() - started
    assert conn.execute("select count(*) from copy_big").fetchone() == (rows,)
    print(
        f"\nCOPY FROM STDIN: {rows} rows, {sent / 1e6:.1f} MB in {elapsed:.2f} s = "
        f"{rows / elapsed:,.0f} rows/s, {sent / 1e6 / elapsed:.1f} MB/s"
    )
    assert sent >= target


def test_copy_to_stdout(conn: psycopg.Connection) -> None:
    conn.execute("create table copy_out (id int, name text)")
    conn.execute("insert into copy_out select g, 'name ' || g from generate_series(1, 200000) g")
    started = time.monotonic()
    data = bytearray()
    with conn.cursor() as cur, cur.copy("copy copy_out to stdout") as copy:
        for chunk in copy:
            data += chunk
    elapsed = time.monotonic() - started
    lines = bytes(data).splitlines()
    assert len(lines) == 200_000
    assert lines[0] == b"1\tname 1" and lines[-1] == b"200000\tname 200000"
    print(f"\nCOPY TO STDOUT: {len(lines)} rows, {len(data) / 1e6:.1f} MB in {elapsed:.2f} s")
    with (
        conn.cursor() as cur,
        cur.copy("copy (select id from copy_out where id <= 3) to stdout") as copy,
    ):
        assert list(copy.rows()) == [("1",), ("2",), ("3",)]


def test_copy_csv_and_binary_roundtrip(conn: psycopg.Connection) -> None:
    conn.execute("create table copy_fmt (id int, v text)")
    with conn.cursor() as cur:
        with cur.copy("copy copy_fmt from stdin with (format csv, header)") as copy:
            copy.write(b'id,v\n1,one\n2,"t,wo"\n')
        with cur.copy("copy copy_fmt (id, v) from stdin (format binary)") as copy:
            copy.set_types(["int4", "text"])
            copy.write_row((3, "three"))
    rows = conn.execute("select id, v from copy_fmt order by id").fetchall()
    assert rows == [(1, "one"), (2, "t,wo"), (3, "three")]


def test_copy_error_reports_and_recovers(conn: psycopg.Connection) -> None:
    conn.execute("create table copy_bad (id int)")
    with (
        pytest.raises(psycopg.errors.InvalidTextRepresentation),
        conn.cursor() as cur,
        cur.copy("copy copy_bad from stdin") as copy,
    ):
        copy.write(b"1\nnot a number\n")
    with (
        pytest.raises(psycopg.errors.UndefinedTable),
        conn.cursor() as cur,
        cur.copy("copy no_such_table from stdin") as copy,
    ):
        copy.write(b"1\n")
    assert conn.execute("select count(*) from copy_bad").fetchone() == (0,)


def test_extended_protocol_parameters(conn: psycopg.Connection) -> None:
    big = "é" * (1024 * 1024 // 2)  # 1 MiB of UTF-8
    row = conn.execute("select length(%s::text), md5(%s::text), %s::int + 1", [big, big, 41])
    assert row.fetchone() == (len(big), hashlib.md5(big.encode()).hexdigest(), 42)
    # a named prepared statement, executed repeatedly, with binary parameters
    for i in range(3):
        got = conn.execute(
            "select %b::int8 * 2, %b::timestamptz",
            [i, datetime(2024, 1, 1, tzinfo=UTC)],
            prepare=True,
        ).fetchone()
        assert got == (2 * i, datetime(2024, 1, 1, tzinfo=UTC))
    huge = "z" * (16 * 1024 * 1024)
    assert conn.execute("select length(%s)", [huge]).fetchone() == (len(huge),)


def test_continuous_aggregate_refreshed_by_run_job(conn: psycopg.Connection) -> None:
    conn.execute("create table cond (ts timestamptz not null, device int, temp float8)")
    conn.execute("select create_hypertable('cond', by_range('ts', interval '1 day'))")
    conn.execute(
        "insert into cond select now() - interval '5 hours' + g * interval '1 minute', g % 2, g "
        "from generate_series(0, 179) g"
    )
    conn.execute(
        "create materialized view cond_hourly with (timescaledb.continuous) as "
        "select time_bucket('1 hour', ts) as bucket, device, avg(temp) as avg_temp, count(*) as n "
        "from cond group by bucket, device with no data"
    )
    assert conn.execute("select count(*) from cond_hourly").fetchone() == (0,)
    job = _job_id(
        conn,
        "select add_continuous_aggregate_policy('cond_hourly', start_offset => interval '7 days', "
        "end_offset => interval '1 minute', schedule_interval => interval '1 hour')",
    )
    conn.execute("call run_job(%s)", [job])
    total = conn.execute("select sum(n) from cond_hourly").fetchone()
    assert total is not None and total[0] == 180


def test_retention_policy_drops_old_chunks(conn: psycopg.Connection) -> None:
    conn.execute("create table events (ts timestamptz not null, v int)")
    conn.execute("select create_hypertable('events', by_range('ts', interval '1 day'))")
    conn.execute(
        "insert into events values (now() - interval '100 days', 1), "
        "(now() - interval '60 days', 2), (now() - interval '1 hour', 3)"
    )
    assert conn.execute("select count(*) from show_chunks('events')").fetchone() == (3,)
    job = _job_id(conn, "select add_retention_policy('events', interval '30 days')")
    conn.execute("call run_job(%s)", [job])
    assert conn.execute("select count(*) from show_chunks('events')").fetchone() == (1,)
    assert conn.execute("select array_agg(v) from events").fetchone() == ([3],)


def test_compression(conn: psycopg.Connection) -> None:
    conn.execute("create table comp (ts timestamptz not null, device int, v float8)")
    conn.execute("select create_hypertable('comp', by_range('ts', interval '1 day'))")
    conn.execute(
        "insert into comp select timestamptz '2024-03-01' + g * interval '1 minute', g % 4, g "
        "from generate_series(0, 2 * 1440 - 1) g"
    )
    before = conn.execute("select device, count(*), sum(v) from comp group by 1 order by 1")
    expected = before.fetchall()
    conn.execute(
        "alter table comp set (timescaledb.compress, timescaledb.compress_segmentby = 'device', "
        "timescaledb.compress_orderby = 'ts')"
    )
    compressed = conn.execute("select count(compress_chunk(c)) from show_chunks('comp') c")
    assert compressed.fetchone() == (2,)
    flags = conn.execute(
        "select bool_and(is_compressed) from timescaledb_information.chunks "
        "where hypertable_name = 'comp'"
    ).fetchone()
    assert flags == (True,)
    after = conn.execute("select device, count(*), sum(v) from comp group by 1 order by 1")
    assert after.fetchall() == expected
    row = conn.execute(
        "select v from comp where device = 1 and ts = timestamptz '2024-03-02 00:01'"
    )
    assert row.fetchone() == (1441.0,)


def test_transaction_rollback(pglite: PgliteTimescale) -> None:
    with psycopg.connect(pglite.dsn) as conn:  # not autocommit: psycopg opens transactions
        conn.execute("create table tx (v int)")
        conn.commit()
        conn.execute("insert into tx values (1)")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        conn.rollback()
        assert conn.execute("select count(*) from tx").fetchone() == (0,)
        with conn.transaction():
            conn.execute("insert into tx values (2)")
            with conn.transaction(force_rollback=True):
                conn.execute("insert into tx values (3)")
            with pytest.raises(psycopg.errors.DivisionByZero), conn.transaction():
                conn.execute("select 1 / 0")
        assert conn.execute("select array_agg(v) from tx").fetchone() == ([2],)


def test_error_leaves_connection_usable(pglite: PgliteTimescale) -> None:
    with psycopg.connect(pglite.dsn) as conn:
        with pytest.raises(psycopg.errors.SyntaxError):
            conn.execute("selec 1")
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("select 1")
        conn.rollback()
        assert conn.execute("select 2").fetchone() == (2,)
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("select * from no_such_table where x = %s", [1])
        conn.rollback()
        assert conn.execute("select %s::text", ["ok"]).fetchone() == ("ok",)


def test_disconnect_mid_transaction_rolls_back(pglite: PgliteTimescale) -> None:
    with psycopg.connect(pglite.dsn, autocommit=True) as conn:
        conn.execute("create table dropped (v int)")
    conn = psycopg.connect(pglite.dsn)
    conn.execute("insert into dropped values (1)")
    conn.execute("set timezone to 'Asia/Tokyo'")
    assert conn.info.parameter_status("TimeZone") == "Asia/Tokyo"
    # cut the TCP connection under the client, mid-transaction, without a Terminate
    raw = socket.fromfd(conn.fileno(), socket.AF_INET, socket.SOCK_STREAM)
    raw.shutdown(socket.SHUT_RDWR)
    raw.close()
    conn.close()
    with psycopg.connect(pglite.dsn, autocommit=True) as fresh:
        assert fresh.execute("select count(*) from dropped").fetchone() == (0,)
        assert fresh.execute("show timezone").fetchone() == ("UTC",)


def test_clients_are_served_one_at_a_time(pglite: PgliteTimescale) -> None:
    order: list[str] = []
    first = psycopg.connect(pglite.dsn, autocommit=True)
    first.execute("create temp table mine (v int)")

    def second() -> None:
        with psycopg.connect(pglite.dsn, autocommit=True, connect_timeout=30) as conn:
            order.append("second connected")
            missing = conn.execute(
                sql.SQL("select to_regclass({})").format(sql.Literal("pg_temp.mine"))
            ).fetchone()
            order.append(f"temp table seen: {missing != (None,)}")

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.5)
    order.append("first closing")
    first.close()
    thread.join(30)
    assert order == ["first closing", "second connected", "temp table seen: False"]
