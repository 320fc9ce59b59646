"""Feeds out: each report reaches its receiver (the simulators' receivers) equal to its
report model's rows, once per payload, under receiver chaos and across re-runs; a changed
window goes out again as the next revision of the same report id, exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from warehouse_house import Warehouse

from analytics_hub.feeds import (
    FEEDS,
    FeedError,
    Receiver,
    complete_through,
    deliver,
    payload_hash,
    publish,
    report_rows,
)
from analytics_hub.settings import HubSettings, load_settings
from analytics_hub.warehouse import LOADS_LEDGER, ensure_landing_tables, landing_table
from analytics_hub.windows import Window
from hub_dev.postgres import PrivatePostgres
from simulators import SimulatorConfig, SimulatorProcess

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 23, 10, tzinfo=UTC)
WINDOWS = [
    Window(START, START + timedelta(hours=1)),
    Window(START + timedelta(hours=1), START + timedelta(hours=2)),
]
CONFIG = SimulatorConfig(seed=21, chaos=0.3, stall_seconds=0.0, fault_rate=0.0)
# Receivers that answer 429, 503 and 500 (with Retry-After where the contract says) and
# stall, most of the time: every report needs retries.
CHAOS = SimulatorConfig(seed=22, chaos=0.0, stall_seconds=0.2, fault_rate=0.6)
# The holder of each feed's receiver in the simulators (its path prefix and its token).
HOLDERS = {"policy_compliance": "policy", "costops_usage": "costops"}
RECEIVED = {
    "policy_compliance": "policy-compliance-report",
    "costops_usage": "costops-usage-report",
}


def settings() -> HubSettings:
    return load_settings(http_max_attempts=12, http_max_backoff_seconds=0.2)


def receiver(sim: SimulatorProcess, config: SimulatorConfig, feed: str) -> Receiver:
    holder = HOLDERS[feed]
    return Receiver(f"{sim.url}/{holder}", config.token_of(holder))


def received(sim: SimulatorProcess, feed: str) -> dict[str, dict[str, Any]]:
    answer = httpx.get(f"{sim.url}/_sim/received/{RECEIVED[feed]}").json()["data"]
    return {report["report_id"]: report for report in answer}


def posts(sim: SimulatorProcess, feed: str) -> list[dict[str, Any]]:
    """Every post the receiver accepted, in order: how often each report came."""
    return list(httpx.get(f"{sim.url}/_sim/posts/{RECEIVED[feed]}").json()["data"])


def hours(house: Warehouse) -> list[Window]:
    """Every hour the reports hold."""
    found = house.query(
        "select distinct hour from analytics.rpt_policy_compliance_hourly"
        " union select distinct hour from analytics.rpt_costops_usage_hourly order by 1"
    )
    return [Window(row["hour"], row["hour"] + timedelta(hours=1)) for row in found]


@pytest.fixture(scope="module")
def house(
    private_pg: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Warehouse]:
    root = tmp_path_factory.mktemp("feeds")
    with SimulatorProcess(CONFIG) as sim:
        built = Warehouse(private_pg, root, sim, database="warehouse_feeds")
        built.ingest_and_load(WINDOWS)
        built.dbt_build()
        yield built


@pytest.fixture(autouse=True)
def fresh_ledger(house: Warehouse) -> None:
    """Each test posts to receivers of its own: none holds what an earlier test sent."""
    with psycopg.connect(house.dsn, autocommit=True) as conn:
        conn.execute("drop table if exists hub_meta.feed_deliveries")


def test_each_report_reaches_its_receiver_as_its_model_says_once_under_chaos(
    house: Warehouse,
) -> None:
    windows = hours(house)
    assert len(windows) >= 3
    with SimulatorProcess(CHAOS) as sim, psycopg.connect(house.dsn, autocommit=True) as conn:
        for name, feed in FEEDS.items():
            first = [
                deliver(conn, feed, w, receiver(sim, CHAOS, name), settings()) for w in windows
            ]
            assert all(d.sent and d.revision == 1 for d in first)
            assert sum(d.attempts for d in first) > len(first), "the chaos should need retries"
            again = [
                deliver(conn, feed, w, receiver(sim, CHAOS, name), settings()) for w in windows
            ]
            assert not any(d.sent for d in again), "a re-run sends nothing"

            got = received(sim, name)
            assert sorted(got) == sorted(feed.report_id(w) for w in windows)
            # retried through 429s, 5xx and stalls, each report was accepted once
            assert len(posts(sim, name)) == len(windows)
            for window in windows:
                report = got[feed.report_id(window)]
                rows = report_rows(conn, feed, window)
                assert report["revision"] == 1
                assert report["window_start"] == window.start.strftime("%Y-%m-%dT%H:%M:%SZ")
                assert payload_hash(feed, window, rows) == first[windows.index(window)].payload_hash
                if name == "policy_compliance":
                    (row,) = rows or [{}]
                    assert report["total_evaluations"] == row.get("evaluations", 0)
                    assert report["violations"] == row.get("violations", 0)
                    assert report["by_type"] == row.get("violations_by_type", [])
                    assert report["by_severity"] == row.get("violations_by_severity", [])
                    for field, column in [
                        ("compliance_rate", "compliance_rate"),
                        ("trend", "compliance_rate_trend"),
                    ]:
                        if row.get(column) is None:
                            assert field not in report  # absent, not zero
                        else:
                            assert report[field] == float(row[column])
                else:
                    assert {
                        (u["account_id"], u["asset_id"]): (
                            u["requests"],
                            u["input_tokens"],
                            u["output_tokens"],
                        )
                        for u in report["usage"]
                    } == {
                        (r["account_id"], r["asset_id"]): (
                            r["requests"],
                            r["input_tokens"],
                            r["output_tokens"],
                        )
                        for r in rows
                    }
        ledger = house.query(
            "select feed, count(*) as windows, sum(attempts) as attempts, min(status) as status,"
            " max(revision) as revision from hub_meta.feed_deliveries group by 1 order by 1"
        )
    assert [(r["feed"], r["windows"], r["status"], r["revision"]) for r in ledger] == [
        (name, len(windows), "sent", 1) for name in sorted(FEEDS)
    ]


def test_a_changed_window_is_sent_again_as_the_next_revision_exactly_once(
    house: Warehouse,
) -> None:
    feed = FEEDS["policy_compliance"]
    window = Window(START, START + timedelta(hours=1))
    quiet = SimulatorConfig(seed=23, chaos=0.0, stall_seconds=0.0, fault_rate=0.0)
    with SimulatorProcess(quiet) as sim, psycopg.connect(house.dsn, autocommit=True) as conn:
        to = receiver(sim, quiet, "policy_compliance")
        before = deliver(conn, feed, window, to, settings())
        # a late evaluation, as a later window would bring it, rebuilt into the hour
        conn.execute(
            "insert into landing.policy__evaluations select (p).* from ("
            " select jsonb_populate_record(null::landing.policy__evaluations,"
            "  to_jsonb(e) || jsonb_build_object('event_id', 'late-eval', 'evaluation_id',"
            "  'late-eval', 'result', 'non_compliant', '_loaded_at', statement_timestamp()))"
            "  as p from landing.policy__evaluations as e"
            "  where event_time >= %s and event_time < %s limit 1) as late",
            (window.start, window.end),
        )
        house.dbt_build("--select", "+rpt_policy_compliance_hourly")
        changed = deliver(conn, feed, window, to, settings())
        again = deliver(conn, feed, window, to, settings())
        report = received(sim, "policy_compliance")[feed.report_id(window)]
    assert changed.sent and changed.revision == before.revision + 1
    assert not again.sent and again.revision == changed.revision
    assert report["revision"] == changed.revision
    assert report["non_compliant"] == (
        house.one(
            "select non_compliant from analytics.rpt_policy_compliance_hourly"
            f" where hour = '{window.start.isoformat()}'"
        )
    )


def test_a_refused_report_fails_naming_feed_window_status_and_message(house: Warehouse) -> None:
    feed = FEEDS["costops_usage"]
    window = Window(START, START + timedelta(hours=1))
    quiet = SimulatorConfig(seed=24, chaos=0.0, stall_seconds=0.0, fault_rate=0.0)
    with SimulatorProcess(quiet) as sim, psycopg.connect(house.dsn, autocommit=True) as conn:
        wrong = Receiver(f"{sim.url}/costops", "not-the-token")
        with pytest.raises(FeedError) as refused:
            deliver(conn, feed, window, wrong, settings())
        message = str(refused.value)
        assert "costops_usage" in message and "2026-11-23T10:00:00Z" in message
        assert "401" in message and "bearer token" in message
        failed = house.query(
            "select status, attempts from hub_meta.feed_deliveries"
            f" where feed = 'costops_usage' and window_start = '{window.start.isoformat()}'"
            " order by revision desc limit 1"
        )[0]
        assert failed == {"status": "failed", "attempts": 1}  # a 4xx is not retried
        # the right token later: the same revision goes out and is recorded as sent
        sent = deliver(conn, feed, window, receiver(sim, quiet, "costops_usage"), settings())
        assert sent.sent and feed.report_id(window) in received(sim, "costops_usage")


def test_a_window_is_complete_once_every_source_has_landed_and_been_built_through_it(
    new_database: Callable[[str], str],
) -> None:
    """Per source: the unbroken run of its loaded windows, those loaded by the newest
    load the builds took in; less its settle (costops: an hour); the earliest wins."""
    h = START
    built = datetime(2026, 11, 23, 20, tzinfo=UTC)

    def loaded(conn: psycopg.Connection[Any], module: str, entity: str, *hours: int) -> None:
        for hour in hours:
            conn.execute(
                f"insert into {LOADS_LEDGER} (table_name, window_start, window_end, rows,"
                " loaded_at) values (%s, %s, %s, 0, %s)",
                (
                    landing_table(module, entity),
                    h + timedelta(hours=hour),
                    h + timedelta(hours=hour + 1),
                    h + timedelta(hours=hour + 1, minutes=5),
                ),
            )

    policy, usage = FEEDS["policy_compliance"], FEEDS["costops_usage"]
    with psycopg.connect(new_database("feeds_complete"), autocommit=True) as conn:
        ensure_landing_tables(conn)
        assert complete_through(conn, policy, built) is None  # nothing loaded yet
        loaded(conn, "policy", "evaluations", 0, 1, 2, 3)
        assert complete_through(conn, policy, built) is None  # violations: none yet
        loaded(conn, "policy", "violations", 0, 2, 3)
        assert complete_through(conn, policy, built) == h + timedelta(hours=1)  # the gap
        loaded(conn, "policy", "violations", 1)
        assert complete_through(conn, policy, built) == h + timedelta(hours=4)
        # a window loaded after the newest load the builds took in is not built yet
        assert complete_through(conn, policy, h + timedelta(hours=3)) == h + timedelta(hours=2)

        loaded(conn, "observatory", "metrics", 0, 1, 2, 3)
        loaded(conn, "costops", "cost_records", 0, 1, 2, 3)
        # costops reports an hour's usage in the batch after it
        assert complete_through(conn, usage, built) == h + timedelta(hours=3)


def test_publish_sends_each_complete_window_once_and_a_changed_one_again(house: Warehouse) -> None:
    quiet = SimulatorConfig(seed=25, chaos=0.0, stall_seconds=0.0, fault_rate=0.0)
    with SimulatorProcess(quiet) as sim, psycopg.connect(house.dsn, autocommit=True) as conn:
        built = house.one("select landing.newest_load()")
        for name, feed in FEEDS.items():
            to = receiver(sim, quiet, name)
            until = complete_through(conn, feed, built)
            assert until is not None
            sent = [d for d in publish(conn, feed, to, settings(), built) if d.sent]
            windows = {d.window for d in sent}
            assert all(w.end <= until for w in windows)
            # every hour of the report up to there, and every hour since the first load
            reported = {
                Window(row["hour"], row["hour"] + timedelta(hours=1))
                for row in house.query(f"select distinct hour from analytics.{feed.model}")
                if row["hour"] + timedelta(hours=1) <= until
            }
            assert reported <= windows
            assert Window(START, START + timedelta(hours=1)) in windows
            assert set(received(sim, name)) == {feed.report_id(w) for w in windows}
            assert not any(d.sent for d in publish(conn, feed, to, settings(), built))

        # a late evaluation in a sent hour, loaded and built after it
        feed = FEEDS["policy_compliance"]
        window = Window(START, START + timedelta(hours=1))
        conn.execute(
            "insert into landing.policy__evaluations select (p).* from ("
            " select jsonb_populate_record(null::landing.policy__evaluations,"
            "  to_jsonb(e) || jsonb_build_object('event_id', 'late-eval-2', 'evaluation_id',"
            "  'late-eval-2', 'result', 'non_compliant', '_loaded_at', statement_timestamp()))"
            "  as p from landing.policy__evaluations as e"
            "  where event_time >= %s and event_time < %s limit 1) as late",
            (window.start, window.end),
        )
        house.dbt_build("--select", "+rpt_policy_compliance_hourly")
        later = house.one("select max(_loaded_at) from landing.policy__evaluations")
        to = receiver(sim, quiet, "policy_compliance")
        resent = [d for d in publish(conn, feed, to, settings(), later) if d.sent]
        assert window in {d.window for d in resent}
        # the hour itself and, its trend having changed, the hour after it: nothing else
        assert {d.window.start for d in resent} <= {window.start, window.end}
        assert all(d.sent and d.revision == 2 for d in resent)
        late = [
            p for p in posts(sim, "policy_compliance") if p["report_id"] == feed.report_id(window)
        ]
        assert [p["revision"] for p in late] == [1, 2]  # once per change
        assert not any(d.sent for d in publish(conn, feed, to, settings(), later))
