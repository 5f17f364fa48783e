"""When will a backfill finish? Walk the peak calendar instead of drawing a straight line.

A backfill that runs 3 batches/s on peak and 7.5/s off peak does most of its work at nights
and weekends, so ``remaining / rate now`` is wrong by days. The estimate walks forward from
now through the schedule's segments (:meth:`PeakSchedule.next_change`), spending each
segment's capacity (ids per second in force x its length) until the remaining ids are used up.

The ids per second of a window are those of the planner: a cycle of ``duration`` seconds holds
``ceil(per_second * duration)`` batches of ``batch_size`` ids. Where the backfill was recently
slower than that (Airflow's overhead between cycles, a small pool), both windows' rates are
scaled by the observed *efficiency*: ids done in the last minutes / ids the configured rates
would have done in those same minutes, capped at 1. A ratio, not a cap: a rate observed on
peak says nothing about the off-peak ceiling, but the share lost to overhead carries over.

Time the backfill could not run (held by the governor, stopped, paused: core/idle.py) is taken out of
the window, ids and capacity alike, so that it is shown apart and never counted as slowness. The rates
are the governor's: the calendar's times the current ``factor``, in batches of the current ``batch_size``
(core/adapt.py), as if they stayed as they are now (they change at most once per cycle).
Pure standard library: no Airflow, no Redis.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from airflow_spreader.core.adapt import Pace, scaled_rate
from airflow_spreader.core.config import SpreadConfig
from airflow_spreader.core.idle import IdleSpan, idle_in, seconds_by_kind
from airflow_spreader.core.planner import exact, slot_count

#: Past this the estimate says "more than a year" rather than walk on (each week costs ~3 ms).
HORIZON = timedelta(days=366)
#: An observation shorter than this (the first minutes of a backfill) does not judge the pace.
MIN_OBSERVED_SECONDS = 120.0
DEFAULT_WINDOW_MINUTES = 15


SAME_PACE = Pace()


def ids_per_second(config: SpreadConfig, on_peak: bool, pace: Pace = SAME_PACE) -> float:
    """The ids per second the planner schedules in a window: whole batches per cycle, as planned."""
    per_second = scaled_rate(config.per_second_on_peak if on_peak else config.per_second_off_peak, pace.factor)
    batches = slot_count(per_second, config.duration)
    return float(batches * (pace.batch_size or config.batch_size) / exact(config.duration))


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of time with one rate: from ``begin`` until ``end`` (None: for ever)."""

    begin: datetime
    end: datetime | None
    on_peak: bool


def segments(config: SpreadConfig, start: datetime) -> Iterator[Segment]:
    """The schedule's stretches from ``start`` on, each ending where on/off peak flips, in UTC.

    UTC because Python subtracts and adds aware datetimes of one zone on the wall clock: across
    a DST change, Paris 18:00 to 09:00 would count 15 hours where 14 or 16 elapse.
    """
    schedule = config.peak_schedule
    at = start.astimezone(timezone.utc)
    while True:
        end = schedule.next_change(at)
        yield Segment(at, end, schedule.is_on_peak(at))
        if end is None:
            return
        at = end


def capacity(config: SpreadConfig, begin: datetime, end: datetime, efficiency: float = 1.0,
             pace: Pace = SAME_PACE) -> float:
    """Ids the configured rates (x ``efficiency``) get done between ``begin`` and ``end``."""
    total = 0.0
    end = end.astimezone(timezone.utc)
    for segment in segments(config, begin):
        stop = end if segment.end is None else min(segment.end, end)
        total += (stop - segment.begin).total_seconds() * ids_per_second(config, segment.on_peak, pace) * efficiency
        if stop >= end:
            return total
    return total  # not reached: segments() ends only with an open segment


def finish_time(
    config: SpreadConfig, remaining_ids: int, now: datetime, *, efficiency: float = 1.0,
    horizon: timedelta = HORIZON, pace: Pace = SAME_PACE,
) -> datetime | None:
    """The instant the last of ``remaining_ids`` is done (in ``now``'s zone), or None beyond ``horizon``."""
    if not 0 < efficiency <= 1:
        raise ValueError(f"efficiency must be in (0, 1], got {efficiency!r}")
    left = float(remaining_ids)
    if left <= 0:
        return now
    limit = now.astimezone(timezone.utc) + horizon
    for segment in segments(config, now):
        if segment.begin >= limit:
            return None
        rate = ids_per_second(config, segment.on_peak, pace) * efficiency
        finish = segment.begin + timedelta(seconds=left / rate)
        if segment.end is not None and finish > segment.end:
            # Spend the whole segment. Finishing inside a segment never passes its end, so more ids
            # never finish earlier, whatever the float rounding.
            left -= (segment.end - segment.begin).total_seconds() * rate
            if left > 0:
                continue
            finish = segment.end
        return finish.astimezone(now.tzinfo) if finish <= limit else None
    return None  # not reached: segments() ends only with an open segment


@dataclass(frozen=True, slots=True)
class Observed:
    """Ids done between ``begin`` and ``end``, from the tracker's per-minute history."""

    ids: int
    begin: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return max(0.0, self.end.timestamp() - self.begin.timestamp())

    @property
    def ids_per_second(self) -> float | None:
        return self.ids / self.seconds if self.seconds > 0 else None


def observe(
    done_per_minute: Mapping[int, int], now: datetime, *, minutes: int = DEFAULT_WINDOW_MINUTES,
    started_at: datetime | None = None,
) -> Observed:
    """Ids done in the last ``minutes`` minutes up to ``now`` (not before ``started_at``).

    ``done_per_minute`` maps epoch seconds of minute starts to ids done in that minute; the
    window starts on a minute boundary, or at ``started_at`` (nothing was done before it).
    """
    end = now.timestamp()
    begin: float = (math.floor(end / 60) - minutes) * 60
    if started_at is not None:
        begin = max(begin, min(started_at.timestamp(), end))
    first_bucket = math.floor(begin / 60) * 60
    ids = sum(count for minute, count in done_per_minute.items() if first_bucket <= minute <= end)
    return Observed(ids, datetime.fromtimestamp(begin, timezone.utc), now)


def efficiency(config: SpreadConfig, observed: Observed, idle: Sequence[IdleSpan] = (),
               pace: Pace = SAME_PACE) -> float | None:
    """Observed ids / ids the rates would have done then, idle time taken out, at most 1; None if the time
    the backfill could run is too short to judge."""
    pieces = idle_in(idle, observed.begin.timestamp(), observed.end.timestamp())
    if observed.seconds - sum(b - a for a, b in pieces) < MIN_OBSERVED_SECONDS:
        return None
    expected = capacity(config, observed.begin, observed.end, pace=pace) - sum(
        capacity(config, _at(a), _at(b), pace=pace) for a, b in pieces)
    return min(1.0, observed.ids / expected) if expected > 0 else None


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


EtaState = Literal["done", "estimated", "unknown"]


@dataclass(frozen=True, slots=True)
class Eta:
    """The estimate, or why there is none (``state`` unknown, ``finish`` None, ``reason`` says why)."""

    state: EtaState
    finish: datetime | None
    reason: str
    efficiency: float | None = None
    #: Seconds held, stopped and paused within the observed window: set apart, not counted as slowness.
    idle_seconds: Mapping[str, float] | None = None
    #: The governor's factor on the rates the estimate assumes (1: the calendar's).
    factor: float = 1.0

    def seconds_left(self, now: datetime) -> float | None:
        return None if self.finish is None else max(0.0, self.finish.timestamp() - now.timestamp())

    def to_dict(self, now: datetime) -> dict[str, Any]:
        return {"state": self.state, "finish": self.finish.isoformat() if self.finish else None,
                "seconds_left": self.seconds_left(now), "reason": self.reason, "efficiency": self.efficiency,
                "idle_seconds": None if self.idle_seconds is None else dict(self.idle_seconds),
                "rate_factor": self.factor}


def estimate(
    config: SpreadConfig, now: datetime, *, remaining_ids: int, failed_ids: int = 0, stopped: bool = False,
    paused: bool = False, observed: Observed | None = None, horizon: timedelta = HORIZON,
    idle: Sequence[IdleSpan] = (), pace: Pace = SAME_PACE,
) -> Eta:
    """The ETA of a backfill with ``remaining_ids`` still to do (not counting ``failed_ids``).

    ``idle``: the spans it was held, stopped or paused (taken out of ``observed``); ``pace``: the governor's
    factor and batch size now (the estimate assumes they stay).
    """
    window = None if observed is None else seconds_by_kind(idle, observed.begin.timestamp(),
                                                           observed.end.timestamp())
    found = _estimate(config, now, remaining_ids, failed_ids, stopped, paused, observed, horizon, idle, pace)
    return Eta(found.state, found.finish, found.reason, found.efficiency, window, pace.factor)


def _estimate(config: SpreadConfig, now: datetime, remaining_ids: int, failed_ids: int, stopped: bool,
              paused: bool, observed: Observed | None, horizon: timedelta, idle: Sequence[IdleSpan],
              pace: Pace) -> Eta:
    if remaining_ids <= 0:
        if failed_ids > 0:
            return Eta("unknown", None, f"only failed ranges are left ({failed_ids:,} ids): fix the work, "
                                        "then retry-failed")
        return Eta("done", now, "finished")
    if stopped:
        return Eta("unknown", None, "stopped: nothing is planned until `go`")
    if paused:
        return Eta("unknown", None, "the DAG is paused: no cycle starts until it is unpaused")
    ratio = None if observed is None else efficiency(config, observed, idle, pace)
    if observed is not None and ratio == 0.0:
        return Eta("unknown", None, f"stalled: no id done in the last {observed.seconds / 60:.0f} min",
                   efficiency=0.0)
    finish = finish_time(config, remaining_ids, now, efficiency=ratio or 1.0, horizon=horizon, pace=pace)
    rates = "the configured rates" if pace.factor >= 1 else f"the configured rates x{pace.factor:.3g} (governor)"
    pace_text = f"at {rates}" if ratio is None or ratio == 1.0 else \
        f"at {ratio:.0%} of {rates} (as observed lately)"
    if finish is None:
        return Eta("unknown", None, f"more than {horizon.days} days away {pace_text}", efficiency=ratio)
    return Eta("estimated", finish, f"walking the peak calendar {pace_text}", efficiency=ratio)
