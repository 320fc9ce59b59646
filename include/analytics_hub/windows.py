"""Half-open time windows ``[start, end)`` in UTC: the unit of every pull, file and re-run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# croniter is Airflow's own cron engine (CronDataIntervalTimetable runs on it), so the
# windows computed here are the ones the scheduler makes; it ships no type information.
from croniter import croniter  # type: ignore[import-untyped]

# The longest range one manual run may pull: seven days is 672 windows of a 15-minute
# module, within Airflow's default ``core.max_map_length`` (1024 mapped task instances).
DEFAULT_MAX_MANUAL_SPAN = timedelta(days=7)
# The environment variable that overrides ``DEFAULT_MAX_MANUAL_SPAN``, in hours.
MAX_MANUAL_SPAN_SETTING = "HUB_MAX_MANUAL_WINDOW_HOURS"


def as_utc(moment: datetime | str) -> datetime:
    """A timezone-aware UTC datetime; a naive one or a string without zone is taken as UTC."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@dataclass(frozen=True, order=True)
class Window:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", as_utc(self.start))
        object.__setattr__(self, "end", as_utc(self.end))
        if self.start >= self.end:
            raise ValueError(f"window start {self.start} is not before its end {self.end}")

    @classmethod
    def parse(cls, start: datetime | str, end: datetime | str) -> Window:
        return cls(as_utc(start), as_utc(end))

    def query(self) -> dict[str, str]:
        """The window as the modules' ``from``/``to`` query parameters."""
        return {"from": _iso(self.start), "to": _iso(self.end)}

    def to_dict(self) -> dict[str, str]:
        """The window under the keys manifests and Asset events use."""
        return {"window_start": _iso(self.start), "window_end": _iso(self.end)}

    @classmethod
    def from_dict(cls, bounds: dict[str, Any]) -> Window:
        return cls.parse(bounds["window_start"], bounds["window_end"])

    @property
    def span(self) -> timedelta:
        return self.end - self.start

    @property
    def id(self) -> str:
        """A stable name for objects written for this window."""
        return f"{self.start:%Y%m%dT%H%M%SZ}_{self.end:%Y%m%dT%H%M%SZ}"

    def __str__(self) -> str:
        return f"[{_iso(self.start)}, {_iso(self.end)})"


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class WindowError(ValueError):
    """A window the hub refuses to pull as asked; the message says what it would accept."""


def scheduled_windows(schedule: str, start: datetime | str, end: datetime | str) -> list[Window]:
    """The windows of consecutive runs of the cron ``schedule`` (in UTC) within ``[start, end]``.

    A run's window spans from one firing of the cron to the next, as Airflow's
    ``CronDataIntervalTimetable`` makes them; a window cut by either bound is left out.
    """
    first, last = as_utc(start), as_utc(end)
    windows: list[Window] = []
    tick = _ceil(schedule, first)
    while True:
        following = _after(schedule, tick)
        if following > last:
            return windows
        windows.append(Window(tick, following))
        tick = following


def require_aligned(schedule: str, window: Window, *, module: str | None = None) -> None:
    """Refuse a window whose bounds are not firings of ``schedule``, naming aligned ones."""
    if _on_schedule(schedule, window.start) and _on_schedule(schedule, window.end):
        return
    nearest = (_nearest(schedule, window.start), _nearest(schedule, window.end))
    covering = (_floor(schedule, window.start), _ceil(schedule, window.end))
    suggestions = dict.fromkeys(
        str(Window(start, end)) for start, end in (nearest, covering) if start < end
    )
    owner = f" of module {module!r}" if module else ""
    raise WindowError(
        f"window {window} is not aligned to schedule {schedule!r}{owner}; "
        f"use {' or '.join(suggestions)}"
    )


def split_window(
    schedule: str,
    window: Window,
    *,
    module: str | None = None,
    max_span: timedelta = DEFAULT_MAX_MANUAL_SPAN,
) -> list[Window]:
    """The scheduled windows that make up a window asked for by hand.

    Pulling a range as the scheduled windows it covers, never as one window of its own,
    keeps every landed window on the schedule's grid: two windows of one entity are then
    either the same (a re-run replaces it) or disjoint, never overlapping.
    """
    if window.span > max_span:
        raise WindowError(
            f"window {window} spans {_hours(window.span)} hours, more than the "
            f"{_hours(max_span)} hours one manual run may pull ({MAX_MANUAL_SPAN_SETTING}); "
            "for a longer range use the UI's Backfill (Trigger → Backfill), one run per window"
        )
    require_aligned(schedule, window, module=module)
    return scheduled_windows(schedule, window.start, window.end)


def _after(schedule: str, moment: datetime) -> datetime:
    tick: datetime = croniter(schedule, moment).get_next(datetime)
    return as_utc(tick)


def _before(schedule: str, moment: datetime) -> datetime:
    tick: datetime = croniter(schedule, moment).get_prev(datetime)
    return as_utc(tick)


def _on_schedule(schedule: str, moment: datetime) -> bool:
    return _after(schedule, _before(schedule, moment)) == moment


def _floor(schedule: str, moment: datetime) -> datetime:
    return moment if _on_schedule(schedule, moment) else _before(schedule, moment)


def _ceil(schedule: str, moment: datetime) -> datetime:
    return moment if _on_schedule(schedule, moment) else _after(schedule, moment)


def _nearest(schedule: str, moment: datetime) -> datetime:
    floor, ceil = _floor(schedule, moment), _ceil(schedule, moment)
    return floor if moment - floor <= ceil - moment else ceil


def _hours(span: timedelta) -> str:
    hours = span / timedelta(hours=1)
    return f"{hours:.0f}" if hours.is_integer() else f"{hours:.2f}"
