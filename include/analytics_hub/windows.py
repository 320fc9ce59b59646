"""Half-open time windows ``[start, end)`` in UTC: the unit of every pull, file and re-run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


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

    @property
    def id(self) -> str:
        """A stable name for objects written for this window."""
        return f"{self.start:%Y%m%dT%H%M%SZ}_{self.end:%Y%m%dT%H%M%SZ}"

    def __str__(self) -> str:
        return f"[{_iso(self.start)}, {_iso(self.end)})"


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
