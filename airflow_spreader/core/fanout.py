"""Fan-out arithmetic: when each of n recurring items starts inside a schedule interval.

Item i of n starts at ``start + i * span / n``, where ``span`` is the part of the interval the
items are spread over (all of it, or a window such as its first 80%, so that stragglers finish
before the next run). An optional cap on items per second widens the gap to ``1 / cap`` when
the even gap would be shorter: the cap protects a rate-limited service, so it wins over the
window, and the spread then ends after the window (:attr:`Spread.overruns_window`).

All arithmetic is in integer microseconds and exact fractions: item i's offset is computed from
i directly (``floor(i * gap)``), never by adding gaps, so there is no drift, and spacing
finer than a second (more items than seconds) is exact to the microsecond.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from airflow_spreader.core.planner import Number, exact

MICROSECOND = timedelta(microseconds=1)
_US_PER_SECOND = 1_000_000

#: A window end: a number in (0, 1] is a fraction of the interval; a timedelta is a length from the start.
Window = Number | timedelta


@dataclass(frozen=True, slots=True)
class Spread:
    """How ``count`` items are spread from ``start``: item i at ``start + floor(i * gap_us)`` microseconds."""

    start: datetime
    interval: timedelta
    span: timedelta
    count: int
    gap_us: Fraction

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            raise ValueError(f"start must be timezone-aware, got naive {self.start.isoformat()}")
        if self.count < 0:
            raise ValueError(f"count must be >= 0, got {self.count}")

    def offset(self, index: int) -> timedelta:
        """How long after ``start`` item ``index`` starts."""
        if not 0 <= index < self.count:
            raise IndexError(f"item {index} is not one of {self.count}")
        return math.floor(index * self.gap_us) * MICROSECOND

    def at(self, index: int) -> datetime:
        """When item ``index`` starts."""
        return self.start + self.offset(index)

    def times(self) -> list[datetime]:
        """Every item's start, in order (non-decreasing)."""
        return [self.at(i) for i in range(self.count)]

    @property
    def gap(self) -> timedelta:
        """The gap between consecutive starts, rounded down to the microsecond."""
        return math.floor(self.gap_us) * MICROSECOND

    @property
    def last_offset(self) -> timedelta:
        """When the last item starts, after ``start`` (zero without items)."""
        return self.offset(self.count - 1) if self.count else timedelta(0)

    @property
    def overruns_window(self) -> bool:
        """The cap pushed the last start past the window's end."""
        return self.count > 1 and self.last_offset >= self.span

    @property
    def overruns_interval(self) -> bool:
        """The cap pushed the last start past the interval: this run overlaps the next one."""
        return self.count > 1 and self.last_offset >= self.interval

    def summary(self) -> dict[str, Any]:
        """A JSON-able description, for logs and XCom."""
        return {"start": self.start.isoformat(), "count": self.count,
                "interval_seconds": self.interval.total_seconds(), "span_seconds": self.span.total_seconds(),
                "gap_seconds": float(self.gap_us / _US_PER_SECOND),
                "last_start": (self.start + self.last_offset).isoformat(),
                "overruns_window": self.overruns_window, "overruns_interval": self.overruns_interval}


def check_options(window: Window | None = None, max_per_second: Number | None = None) -> None:
    """Refuse a window or a cap that no interval could make valid (so that a DAG fails when parsed)."""
    if isinstance(window, timedelta):
        if window <= timedelta(0):
            raise ValueError(f"window must be > 0, got {window}")
    elif window is not None and not 0 < exact(window) <= 1:
        raise ValueError(f"window must be a fraction of the interval in (0, 1], got {window!r}")
    if max_per_second is not None and exact(max_per_second) <= 0:
        raise ValueError(f"max_per_second must be > 0, got {max_per_second!r}")


def window_span(interval: timedelta, window: Window | None = None) -> timedelta:
    """The part of ``interval`` items are spread over: all of it, a fraction of it, or a length from its start.

    A window longer than the interval is refused: this run's items would overlap the next run's.
    """
    if interval <= timedelta(0):
        raise ValueError(f"interval must be > 0, got {interval}")
    check_options(window)
    if window is None:
        return interval
    if isinstance(window, timedelta):
        if window > interval:
            raise ValueError(f"window ({window}) must not be longer than the interval ({interval})")
        return window
    return max(MICROSECOND, math.floor(interval // MICROSECOND * exact(window)) * MICROSECOND)


def spread(
    count: int,
    start: datetime,
    interval: timedelta,
    *,
    window: Window | None = None,
    max_per_second: Number | None = None,
) -> Spread:
    """Spread ``count`` items evenly over ``interval`` (or its ``window``) from ``start``.

    The gap is ``span / count``, or ``1 / max_per_second`` seconds when that is longer: the cap
    wins over the window. One item starts at once; zero items is an empty spread.
    """
    check_options(window, max_per_second)
    span = window_span(interval, window)
    gap = Fraction(span // MICROSECOND, max(count, 1))
    if max_per_second is not None:
        gap = max(gap, _US_PER_SECOND / exact(max_per_second))
    return Spread(start=start, interval=interval, span=span, count=count, gap_us=gap)


@dataclass(frozen=True, slots=True)
class TimedItem:
    """One item of a fan-out with its position in the run's list and its start time."""

    index: int
    at: datetime
    item: Any

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "at": self.at.isoformat(), "item": self.item}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TimedItem:
        return cls(index=int(data["index"]), at=datetime.fromisoformat(data["at"]), item=data["item"])


def timed_items(items: Iterable[Any], spread_of: Spread) -> list[TimedItem]:
    """Pair each item with its start time, in the list's order (which is the start order)."""
    listed = list(items)
    if len(listed) != spread_of.count:
        raise ValueError(f"{len(listed)} items for a spread of {spread_of.count}")
    return [TimedItem(i, spread_of.at(i), item) for i, item in enumerate(listed)]


def next_position(times: Sequence[datetime], waited_until: datetime) -> int:
    """Where a task that deferred until ``waited_until`` resumes: the number of items due before it.

    A task runs its items in time order and defers for item k only when k is due more than a
    threshold after now, waking ``margin <= threshold`` before k's time. So every item run before
    the deferral is due strictly before the wake-up moment, and item k and those after it are not.
    Being derived from the moment waited for, not from the clock, it is right however late the resume.
    """
    return sum(1 for moment in times if moment < waited_until)
