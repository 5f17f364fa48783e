"""Peak hours: the weekly window in which a backfill runs at its slower, on-peak rate.

The window is read on the local wall clock of one time zone, so "9 to 17" stays "9 to 17"
across daylight saving time. Weekdays are numbered as in cron (0 = Sunday .. 6 = Saturday),
both ranges are inclusive, and a range whose begin is after its end wraps around (hours
22..5 is overnight). Pure standard library: no Airflow, no pendulum.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from airflow_spreader.core.rules import SUNDAY, Rule, check

#: The rules of the schedule's fields, which the configuration's ``on_peak_*`` fields share.
PEAK_RULES = {
    "timezone": Rule("zone", "time zone of the peak hours"),
    "wday_begin": Rule("int", "first peak weekday", 0, 6, SUNDAY),
    "wday_end": Rule("int", "last peak weekday (inclusive; may wrap)", 0, 6, SUNDAY),
    "hour_begin": Rule("int", "first peak hour", 0, 23),
    "hour_end": Rule("int", "last peak hour (inclusive, up to hh:59:59; may wrap)", 0, 23),
}

_HOUR = timedelta(hours=1)
_TICK = timedelta(microseconds=1)
# A (weekday, hour) comes back within a week of wall-clock time; a skipped hour or day (a DST
# gap, Samoa's lost 2011-12-30) can hide one occurrence, so the next one is under 15 days away.
_SEARCH = timedelta(days=15)


def _within(value: int, begin: int, end: int) -> bool:
    """Inclusive range membership; ``begin > end`` wraps around."""
    return begin <= value <= end if begin <= end else value >= begin or value <= end


def _span(begin: int, end: int, modulus: int) -> int:
    """How many values the (possibly wrapping) inclusive range holds."""
    return (end - begin) % modulus + 1


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(
            f"expected a timezone-aware datetime, got naive {at.isoformat()} "
            "(use e.g. datetime.now(timezone.utc))"
        )


@dataclass(frozen=True, slots=True)
class PeakSchedule:
    """On peak when the local weekday (0 = Sunday) and hour both lie in their inclusive ranges."""

    timezone: str
    wday_begin: int
    wday_end: int
    hour_begin: int
    hour_end: int

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        check(PEAK_RULES, values)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)  # ZoneInfo caches instances by key

    @property
    def always_on(self) -> bool:
        """Whether every hour of the week is on peak (so the rate never changes)."""
        all_days = _span(self.wday_begin, self.wday_end, 7) == 7
        return all_days and _span(self.hour_begin, self.hour_end, 24) == 24

    def is_on_peak(self, at: datetime) -> bool:
        """Whether ``at`` (timezone-aware) falls in the window, read on the zone's wall clock."""
        _require_aware(at)
        local = at.astimezone(self.zone)
        return _within(local.isoweekday() % 7, self.wday_begin, self.wday_end) and _within(
            local.hour, self.hour_begin, self.hour_end
        )

    def next_change(self, at: datetime) -> datetime | None:
        """The first instant strictly after ``at`` where :meth:`is_on_peak` flips, in ``at``'s zone.

        None when it never flips (the whole week is on peak). Walks local hour boundaries and
        offset changes, usually less than 8 days ahead.
        """
        start = self.is_on_peak(at)
        if self.always_on:
            return None
        t = at.astimezone(timezone.utc)
        try:
            limit = t + _SEARCH
            while t < limit:
                t = self._next_boundary(t)
                if self.is_on_peak(t) != start:
                    return t.astimezone(at.tzinfo)
        except OverflowError:  # walked past year 9999
            return None
        return None  # not reached with real time zone data: see _SEARCH

    def _next_boundary(self, t: datetime) -> datetime:
        """The next instant after ``t`` (UTC) where the local hour may change.

        That is the next local top of the hour if the UTC offset holds until then (right for
        +05:30 or +05:45 zones too, as it is computed on the local clock), otherwise the instant
        the offset changes (DST, or a transition at a quarter past like Chatham's).
        """
        zone = self.zone
        local = t.astimezone(zone)
        offset = local.utcoffset()
        into_hour = timedelta(minutes=local.minute, seconds=local.second, microseconds=local.microsecond)
        candidate = t + (_HOUR - into_hour)
        if candidate.astimezone(zone).utcoffset() == offset:
            return candidate
        low, high = t, candidate  # the offset is unchanged at low and changed at high
        while high - low > _TICK:
            middle = low + (high - low) / 2
            if middle.astimezone(zone).utcoffset() == offset:
                low = middle
            else:
                high = middle
        return high
