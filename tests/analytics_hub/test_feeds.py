"""The feeds' payloads, without a warehouse or a receiver (delivery: tests/integration)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from analytics_hub.feeds import FEEDS, compliance_body, payload, payload_hash, usage_body
from analytics_hub.windows import Window

HOUR = Window(datetime(2026, 11, 23, 10, tzinfo=UTC), datetime(2026, 11, 23, 11, tzinfo=UTC))


def test_the_report_id_derives_from_feed_and_window_only() -> None:
    feed = FEEDS["policy_compliance"]
    assert feed.report_id(HOUR) == "hub:policy_compliance:2026-11-23T10:00:00Z/2026-11-23T11:00:00Z"
    later = Window(HOUR.start + timedelta(hours=1), HOUR.end + timedelta(hours=1))
    assert feed.report_id(later) != feed.report_id(HOUR)
    assert FEEDS["costops_usage"].report_id(HOUR) != feed.report_id(HOUR)


def test_a_rate_or_trend_with_nothing_to_compute_it_from_is_absent_not_zero() -> None:
    quiet = compliance_body([])
    assert quiet["total_evaluations"] == 0 and quiet["violations"] == 0
    assert "compliance_rate" not in quiet and "trend" not in quiet
    first = compliance_body(
        [
            {
                "evaluations": 4,
                "compliant": 3,
                "non_compliant": 1,
                "violations": 2,
                "compliance_rate": Decimal("0.750000"),
                "previous_compliance_rate": None,
                "compliance_rate_trend": None,
                "violations_by_type": [{"violation_type": None, "violations": 2}],
                "violations_by_severity": [{"violation_severity": "high", "violations": 2}],
            }
        ]
    )
    assert first["compliance_rate"] == 0.75 and "trend" not in first
    assert first["by_type"] == [{"violation_type": None, "violations": 2}]


def test_the_payload_hash_ignores_the_revision_and_changes_with_the_rows() -> None:
    feed = FEEDS["costops_usage"]
    rows = [
        {"account_id": "a", "asset_id": "x", "requests": 3, "input_tokens": 9, "output_tokens": 1},
        {"account_id": None, "asset_id": "x", "requests": 1, "input_tokens": 2, "output_tokens": 0},
    ]
    assert payload(feed, HOUR, rows, 1)["revision"] == 1
    assert payload(feed, HOUR, rows, 2)["report_id"] == payload(feed, HOUR, rows, 1)["report_id"]
    assert payload_hash(feed, HOUR, rows) == payload_hash(feed, HOUR, [dict(r) for r in rows])
    changed = [dict(rows[0], requests=4), rows[1]]
    assert payload_hash(feed, HOUR, changed) != payload_hash(feed, HOUR, rows)
    assert usage_body(rows)["unattributed_requests"] == 1
