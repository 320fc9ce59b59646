"""Windows on a module's schedule: which windows a cron makes, and which ranges a manual run may pull."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analytics_hub.windows import (
    DEFAULT_MAX_MANUAL_SPAN,
    Window,
    WindowError,
    require_aligned,
    scheduled_windows,
    split_window,
)

HOURLY, QUARTER_HOURLY = "0 * * * *", "*/15 * * * *"


def at(hour: int, minute: int = 0, day: int = 24) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def window(start: datetime, end: datetime) -> Window:
    return Window(start, end)


def test_a_cron_makes_consecutive_windows_between_two_instants() -> None:
    assert scheduled_windows(HOURLY, at(6), at(9)) == [
        window(at(6), at(7)),
        window(at(7), at(8)),
        window(at(8), at(9)),
    ]


def test_windows_cut_by_either_bound_are_left_out() -> None:
    assert scheduled_windows(HOURLY, at(6, 7), at(9, 7)) == [
        window(at(7), at(8)),
        window(at(8), at(9)),
    ]
    assert scheduled_windows(HOURLY, at(6, 7), at(6, 50)) == []


def test_a_quarter_hourly_cron_makes_quarter_hour_windows() -> None:
    windows = scheduled_windows(QUARTER_HOURLY, "2026-11-24T06:00:00Z", "2026-11-24T07:00:00Z")
    assert [(w.start.minute, w.end.minute) for w in windows] == [
        (0, 15),
        (15, 30),
        (30, 45),
        (45, 0),
    ]


def test_windows_are_utc_across_a_daylight_saving_change() -> None:
    # Europe's clocks went back at 01:00 UTC on 2026-10-25; a UTC schedule does not notice.
    night = datetime(2026, 10, 25, 0, tzinfo=UTC)
    windows = scheduled_windows(HOURLY, night, night + timedelta(hours=3))
    assert [w.start.hour for w in windows] == [0, 1, 2]
    assert all(w.end - w.start == timedelta(hours=1) for w in windows)
    assert all(w.start.utcoffset() == timedelta(0) for w in windows)


def test_an_aligned_window_passes() -> None:
    require_aligned(HOURLY, window(at(10), at(12)))
    require_aligned(QUARTER_HOURLY, window(at(10, 15), at(10, 45)))


def test_a_misaligned_window_is_refused_with_the_nearest_aligned_ones() -> None:
    with pytest.raises(WindowError) as refused:
        require_aligned(HOURLY, window(at(10, 7), at(11, 7)), module="policy")
    assert str(refused.value) == (
        "window [2026-11-24T10:07:00Z, 2026-11-24T11:07:00Z) is not aligned to schedule "
        "'0 * * * *' of module 'policy'; use [2026-11-24T10:00:00Z, 2026-11-24T11:00:00Z) "
        "or [2026-11-24T10:00:00Z, 2026-11-24T12:00:00Z)"
    )


def test_a_misaligned_quarter_hour_window_is_refused_with_quarter_hour_bounds() -> None:
    with pytest.raises(
        WindowError,
        match=r"use \[\S+T10:00:00Z, \S+T11:00:00Z\) or \[\S+T10:00:00Z, \S+T11:15:00Z\)",
    ):
        require_aligned(QUARTER_HOURLY, window(at(10, 7), at(11, 7)))


def test_a_window_within_one_interval_is_offered_the_interval_around_it() -> None:
    with pytest.raises(WindowError) as refused:
        require_aligned(HOURLY, window(at(10, 10), at(10, 20)))
    assert str(refused.value).endswith("; use [2026-11-24T10:00:00Z, 2026-11-24T11:00:00Z)")


def test_a_misaligned_bound_by_seconds_is_refused() -> None:
    with pytest.raises(WindowError, match="not aligned"):
        require_aligned(HOURLY, window(at(10), at(11) + timedelta(seconds=1)))


def test_a_range_is_split_into_the_scheduled_windows_it_covers() -> None:
    assert split_window(HOURLY, window(at(6), at(8))) == [
        window(at(6), at(7)),
        window(at(7), at(8)),
    ]
    assert len(split_window(QUARTER_HOURLY, window(at(6), at(8)))) == 8
    assert split_window(QUARTER_HOURLY, window(at(6), at(6, 15))) == [window(at(6), at(6, 15))]


def test_a_misaligned_range_is_not_split() -> None:
    with pytest.raises(
        WindowError, match="not aligned to schedule '0 \\* \\* \\* \\*' of module 'costops'"
    ):
        split_window(HOURLY, window(at(6, 30), at(8)), module="costops")


def test_a_range_longer_than_the_maximum_is_refused_pointing_at_backfill() -> None:
    century = Window.parse("1990-01-01T00:00:00Z", "2090-01-01T00:00:00Z")
    with pytest.raises(WindowError) as refused:
        split_window(HOURLY, century)
    message = str(refused.value)
    assert "168 hours" in message
    assert "HUB_MAX_MANUAL_WINDOW_HOURS" in message
    assert "Backfill" in message


def test_the_maximum_is_inclusive_and_can_be_overridden() -> None:
    week = window(at(0, day=1), at(0, day=1) + DEFAULT_MAX_MANUAL_SPAN)
    assert len(split_window(QUARTER_HOURLY, week)) == 7 * 24 * 4
    with pytest.raises(WindowError, match="more than the 2 hours"):
        split_window(HOURLY, window(at(6), at(9)), max_span=timedelta(hours=2))


def test_a_window_round_trips_through_its_dict() -> None:
    original = window(at(6), at(7))
    assert original.to_dict() == {
        "window_start": "2026-11-24T06:00:00Z",
        "window_end": "2026-11-24T07:00:00Z",
    }
    assert Window.from_dict(original.to_dict()) == original
