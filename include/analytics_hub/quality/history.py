"""What a window's volume and freshness should be, from the lake's history of manifests.

Volume: the rows of the same window (same time of day, same length) on each of the past
``volume_history_days`` days give a band around their median; above it is a spike
(warns), below it a collapse. What a collapse does is the entity's volume policy
(``sources.Volume``): for a stream that normally flows it blocks, for a sparse one (quiet
hours are normal) it warns. No window is expected to hold anything before the entity's
``min_history`` past windows are known: the contract never promises a non-empty window;
only a flowing stream's empty window warns then. Freshness: the newest event of a window
must be no older than one schedule interval (plus grace) before the window's end.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import croniter  # type: ignore[import-untyped]

from analytics_hub.lake import Lake, Zone
from analytics_hub.settings import GateSettings
from analytics_hub.sources import Entity, Module
from analytics_hub.windows import Window


@dataclass(frozen=True)
class VolumeBand:
    history: tuple[int, ...]  # rows of the same window on past days, newest first
    block_below: int  # fewer rows block the window (a collapse of a flowing stream)
    warn_below: int  # fewer rows warn
    maximum: int | None  # more rows warn; None: no upper bound (not enough history)


def schedule_interval(module: Module) -> timedelta:
    """The time between two runs of the module's cron schedule."""
    runs = croniter(module.schedule, datetime(2026, 1, 1, tzinfo=UTC))
    first, second = runs.get_next(datetime), runs.get_next(datetime)
    return second - first  # type: ignore[no-any-return]


def rows_of(manifest: dict[str, object]) -> int:
    """The rows a window had when it was validated (landed, if it never was)."""
    quality = manifest.get("quality")
    if isinstance(quality, dict) and isinstance(quality.get("rows"), int):
        return int(quality["rows"])
    landed = manifest.get("landed", 0)
    return int(landed) if isinstance(landed, int) else 0


def volume_band(
    lake: Lake, module: Module, entity: Entity, window: Window, settings: GateSettings
) -> VolumeBand:
    history: list[int] = []
    for days in range(1, settings.volume_history_days + 1):
        shift = timedelta(days=days)
        past = Window(window.start - shift, window.end - shift)
        path = lake.path(Zone.MANIFESTS, module.name, entity.name, past)
        if lake.exists(path):
            history.append(rows_of(lake.read_json(path)))
    policy = entity.volume
    if len(history) < policy.min_history:
        return VolumeBand(tuple(history), 0, 0 if policy.sparse else 1, None)
    median = statistics.median(history)
    minimum = math.floor(median * settings.volume_lower_ratio)
    if median >= 1:
        minimum = max(minimum, 1)  # data flowed on past days: an empty window is a collapse
    maximum = math.ceil(median * settings.volume_upper_ratio) + 1
    if policy.sparse:
        return VolumeBand(tuple(history), 0, minimum, maximum)
    return VolumeBand(tuple(history), minimum, minimum, maximum)


def fresh_after(module: Module, window: Window, settings: GateSettings) -> datetime:
    """The oldest the newest event of the window may be."""
    grace = timedelta(minutes=settings.freshness_grace_minutes)
    return window.end - schedule_interval(module) - grace
