"""The schedule's interval, pure: cron periods in real time, delta and data-interval fallbacks, no Airflow."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from airflow_spreader.core.schedule_interval import (
    FanoutScheduleError,
    cron_period,
    run_interval_override,
    run_start,
    schedule_interval,
)

UTC = timezone.utc
SIX = datetime(2025, 3, 30, 6, 0, tzinfo=UTC)


def run(run_after: datetime, **fields: object) -> SimpleNamespace:
    return SimpleNamespace(run_after=run_after, data_interval_start=None, data_interval_end=None, **fields)


def test_cron_periods_are_real_time_across_daylight_saving_changes() -> None:
    spring = datetime(2025, 3, 29, 23, tzinfo=UTC)  # 00:00 CET; the next fire is 06:00 CEST, 5 hours later
    autumn = datetime(2025, 10, 25, 22, tzinfo=UTC)
    assert cron_period("0 */6 * * *", "Europe/Paris", spring) == timedelta(hours=5)
    assert cron_period("0 */6 * * *", "Europe/Paris", autumn) == timedelta(hours=7)
    assert cron_period("0 */6 * * *", UTC, SIX + timedelta(hours=4)) == timedelta(hours=6)


def test_the_interval_from_a_timetable_read_by_attribute() -> None:
    cron = SimpleNamespace(timetable=SimpleNamespace(expression="*/10 * * * *", timezone="UTC"))
    delta = SimpleNamespace(timetable=SimpleNamespace(delta=timedelta(minutes=20)))
    multi = SimpleNamespace(timetable=SimpleNamespace(timetables=[
        SimpleNamespace(expression="0 9 * * *", timezone="UTC"), SimpleNamespace(expression="0 17 * * *",
                                                                                 timezone="UTC")]))
    nine = datetime(2025, 3, 30, 9, tzinfo=UTC)
    assert schedule_interval(cron, run(SIX), SIX) == timedelta(minutes=10)
    assert schedule_interval(delta, run(SIX), SIX) == timedelta(minutes=20)
    assert schedule_interval(multi, run(nine), nine) == timedelta(hours=8)
    assert schedule_interval(cron, run(SIX), SIX, timedelta(seconds=90)) == timedelta(seconds=90)
    assert schedule_interval(SimpleNamespace(timezone="Europe/Paris"), run(SIX), SIX, "0 0 * * *") == timedelta(
        hours=23)  # 2025-03-30 in the DAG's zone is a 23-hour day
    windowed = run(SIX)
    windowed.data_interval_start, windowed.data_interval_end = SIX, SIX + timedelta(minutes=5)
    assert schedule_interval(SimpleNamespace(timetable=None), windowed, SIX) == timedelta(minutes=5)


def test_no_interval_and_bad_overrides_are_refused_by_name() -> None:
    with pytest.raises(FanoutScheduleError, match=r"gives no interval to spread items over.*pass interval="):
        schedule_interval(SimpleNamespace(timetable=None), run(SIX), SIX)
    with pytest.raises(FanoutScheduleError, match="run_after is naive"):
        run_start(run(datetime(2025, 1, 1)))
    assert run_start(run(SIX)) == SIX
    assert run_interval_override(run(SIX, conf={"spread_over": 600})) == timedelta(seconds=600)
    assert run_interval_override(run(SIX, conf={})) is None
    with pytest.raises(ValueError, match=r"spread_over=-1 is not allowed"):
        run_interval_override(run(SIX, conf={"spread_over": -1}))
