"""The interval a recurring run spreads its items over, from its DAG's schedule: cron arithmetic, no Airflow.

The DAG and run are read by attribute (``timetable``, ``run_after``, ``data_interval_*``, ``conf``), so
these functions take Airflow's objects without importing Airflow.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

import pendulum
from croniter import croniter

from airflow_spreader.errors import SpreaderError

#: An explicit interval: a timedelta, or a cron expression whose period (in the DAG's time zone) is used.
Interval = timedelta | str
#: The key of a run's conf that spreads this run over that many seconds instead of the interval: a manual
#: catch-up run compressed into ten minutes is ``airflow dags trigger DAG --conf '{"spread_over": 600}'``.
SPREAD_OVER_CONF_KEY = "spread_over"


class FanoutScheduleError(SpreaderError, ValueError):
    """The DAG's schedule gives no interval to spread over, and none was given."""


def run_start(dag_run: Any) -> datetime:
    """When the run is due to begin: ``run_after``, for scheduled and manual runs alike.

    For the default trigger timetables it equals the data-interval start (and the logical date);
    for data-interval timetables the run only begins at the interval's end, which is its
    ``run_after``; a manual run without a logical date has no data interval, only ``run_after``.
    """
    start: datetime = dag_run.run_after
    if start.tzinfo is None:
        raise FanoutScheduleError(f"run_after is naive: {start.isoformat()}")
    return start


def _zone(value: Any) -> tzinfo:
    return pendulum.timezone(value) if isinstance(value, str) else value


def _cron_bounds(expression: str, zone: Any, at: datetime) -> tuple[datetime, datetime]:
    """The cron period holding ``at``: its latest fire at or before ``at`` and its first fire after."""
    local = at.astimezone(_zone(zone))
    following = croniter(expression, local).get_next(datetime)
    latest = croniter(expression, following).get_prev(datetime)
    return latest.astimezone(timezone.utc), following.astimezone(timezone.utc)


def cron_period(expression: str, zone: Any, at: datetime) -> timedelta:
    """The length of the cron period holding ``at``, in real time (5 or 7 hours across a DST change)."""
    latest, following = _cron_bounds(expression, zone, at)
    return following - latest


def schedule_interval(dag: Any, dag_run: Any, start: datetime, explicit: Interval | None = None) -> timedelta:
    """The interval to spread over: ``explicit``, else the DAG's timetable, else the run's data interval.

    Cron timetables give the period holding ``start`` (for a scheduled run, up to the next run; a
    manual run gets the same spacing as a scheduled one); delta timetables their delta.
    """
    if isinstance(explicit, timedelta):
        return explicit
    if isinstance(explicit, str):
        return cron_period(explicit, getattr(dag, "timezone", None) or timezone.utc, start)
    timetable = getattr(dag, "timetable", None)
    crons = getattr(timetable, "timetables", None)  # MultipleCronTriggerTimetable
    if crons:
        bounds = [_cron_bounds(t.expression, t.timezone, start) for t in crons]
        return min(b[1] for b in bounds) - max(b[0] for b in bounds)
    if isinstance(getattr(timetable, "expression", None), str):
        return cron_period(timetable.expression, timetable.timezone, start)  # type: ignore[union-attr]
    delta = getattr(timetable, "delta", None)
    if delta is not None:
        utc = start.astimezone(timezone.utc)
        return (utc + delta) - utc  # type: ignore[no-any-return]
    begin, end = getattr(dag_run, "data_interval_start", None), getattr(dag_run, "data_interval_end", None)
    if begin is not None and end is not None and end > begin:
        return end - begin  # type: ignore[no-any-return]
    raise FanoutScheduleError(
        f"the schedule {type(timetable).__name__} gives no interval to spread items over, and this run has no "
        "data interval: pass interval= (a timedelta or a cron expression) to spread_items")


def run_interval_override(dag_run: Any) -> timedelta | None:
    """The run's ``spread_over`` seconds (from its conf), if it gives one; a bad value is a ValueError."""
    value = (getattr(dag_run, "conf", None) or {}).get(SPREAD_OVER_CONF_KEY)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 10**9:
        raise ValueError(f"the run's conf {SPREAD_OVER_CONF_KEY}={value!r} is not allowed: give a number of seconds "
                         "> 0 to spread this run's items over, or leave it out to use the interval")
    return timedelta(seconds=value)
