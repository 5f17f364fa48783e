"""The ETA walks the peak calendar: nights and weekends go faster, stopped backfills have none."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_spreader.core.config import SpreadConfig
from airflow_spreader.core.eta import (
    HORIZON,
    Observed,
    capacity,
    efficiency,
    estimate,
    finish_time,
    ids_per_second,
    observe,
)

UTC = timezone.utc
PARIS = ZoneInfo("Europe/Paris")
# 3 batches/s on peak (Monday..Friday 09:00-17:59) and 7.5/s off peak, 100 ids a batch:
# 300 ids/s on peak, 750 ids/s off peak.
WEEKDAYS = SpreadConfig(batch_size=100, duration=60, per_second_on_peak=3, per_second_off_peak=7.5)
ON, OFF = 300, 750


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def straight_line(remaining: int, per_second: float, now: datetime) -> datetime:
    return now + timedelta(seconds=remaining / per_second)


def minute(text: str) -> int:
    return int(utc(text).timestamp())


def test_the_dates_used_below() -> None:
    assert utc("2024-06-05T08:00").strftime("%A") == "Wednesday"
    assert utc("2024-06-07T16:00").strftime("%A") == "Friday"
    assert datetime(2024, 3, 29, tzinfo=PARIS).strftime("%A") == "Friday"
    assert datetime(2024, 3, 29, 18, tzinfo=PARIS).utcoffset() == timedelta(hours=1)
    assert datetime(2024, 4, 1, 9, tzinfo=PARIS).utcoffset() == timedelta(hours=2)  # DST since Sunday


def test_a_weekday_crosses_the_peak_window() -> None:
    now = utc("2024-06-05T08:00")  # Wednesday, off peak until 09:00
    remaining = 3600 * OFF + 9 * 3600 * ON + 600 * OFF  # 1 h off, 09:00-18:00 on, then 10 min off
    assert finish_time(WEEKDAYS, remaining, now) == utc("2024-06-05T18:10")
    assert straight_line(remaining, OFF, now) == utc("2024-06-05T12:46")  # what a straight line says


def test_a_weekend_runs_at_the_off_peak_rate() -> None:
    now = utc("2024-06-07T16:00")  # Friday, on peak until 18:00
    remaining = 2 * 3600 * ON + 63 * 3600 * OFF + 3600 * ON  # Friday 16-18, Friday 18:00 to Monday 09:00, 1 h
    assert remaining == 173_340_000
    assert finish_time(WEEKDAYS, remaining, now) == utc("2024-06-10T10:00")  # Monday 10:00
    assert straight_line(remaining, ON, now) == utc("2024-06-14T08:30")  # four days later


def test_a_weekend_with_a_daylight_saving_change_is_an_hour_shorter() -> None:
    paris = SpreadConfig(**{**WEEKDAYS.to_dict(), "on_peak_timezone": "Europe/Paris"})
    now = datetime(2024, 3, 29, 18, tzinfo=PARIS)  # Friday 18:00 CET; Monday 09:00 is CEST
    remaining = 62 * 3600 * OFF + 1800 * ON  # 62 real hours off peak, then half an hour on
    assert finish_time(paris, remaining, now) == datetime(2024, 4, 1, 9, 30, tzinfo=PARIS)
    assert estimate(paris, now, remaining_ids=remaining).seconds_left(now) == 62.5 * 3600


def test_the_rate_is_the_planners_whole_batches_per_cycle() -> None:
    # 0.5 batches/s for a 3 s cycle plans ceil(1.5) = 2 batches per 3 s, not 1.5.
    config = SpreadConfig(batch_size=3, duration=3, per_second_on_peak=0.5, per_second_off_peak=0.5)
    assert ids_per_second(config, on_peak=True) == 2.0
    assert finish_time(config, 600, utc("2024-06-05T08:00")) == utc("2024-06-05T08:05")


def test_half_the_observed_pace_makes_half_the_work_take_the_whole_time() -> None:
    now = utc("2024-06-05T08:00")
    full = 3600 * OFF + 9 * 3600 * ON + 600 * OFF
    assert finish_time(WEEKDAYS, full // 2, now, efficiency=0.5) == utc("2024-06-05T18:10")


def test_beyond_the_horizon_there_is_no_finish() -> None:
    now = utc("2024-06-05T08:00")
    a_year_of_weekends = int(capacity(WEEKDAYS, now, now + HORIZON))
    assert finish_time(WEEKDAYS, a_year_of_weekends - 1000, now) is not None
    assert finish_time(WEEKDAYS, a_year_of_weekends + 1000, now) is None
    assert "more than 366 days" in estimate(WEEKDAYS, now, remaining_ids=a_year_of_weekends * 2).reason


# -- observed pace -------------------------------------------------------------------------------------------


def test_observed_ids_are_counted_over_the_last_minutes() -> None:
    history = {minute("2024-06-05T08:44"): 999,  # before the window
               minute("2024-06-05T08:50"): 100, minute("2024-06-05T09:04"): 200, minute("2024-06-05T09:05"): 5}
    seen = observe(history, utc("2024-06-05T09:05:30"), minutes=15)
    assert (seen.ids, seen.begin, seen.seconds) == (305, utc("2024-06-05T08:50"), 15.5 * 60)


def test_observation_starts_no_earlier_than_the_backfill() -> None:
    history = {minute("2024-06-05T09:02"): 600}
    seen = observe(history, utc("2024-06-05T09:05"), started_at=utc("2024-06-05T09:02:30"))
    assert (seen.ids, seen.begin, seen.ids_per_second) == (600, utc("2024-06-05T09:02:30"), 4.0)


def test_efficiency_compares_with_what_the_rates_in_force_would_have_done() -> None:
    # 08:50-09:05: ten minutes off peak (45,000 ids each), five on peak (18,000 ids each).
    expected = 10 * 60 * OFF + 5 * 60 * ON
    window = (utc("2024-06-05T08:50"), utc("2024-06-05T09:05"))
    assert efficiency(WEEKDAYS, Observed(expected // 2, *window)) == 0.5
    assert efficiency(WEEKDAYS, Observed(expected * 3, *window)) == 1.0  # faster than planned: the plan wins
    assert efficiency(WEEKDAYS, Observed(0, utc("2024-06-05T09:04"), utc("2024-06-05T09:05"))) is None  # too short


# -- the estimate and its reasons ----------------------------------------------------------------------------


def test_a_slow_observed_pace_pushes_the_eta_back() -> None:
    now = utc("2024-06-05T09:05")
    remaining = 9 * 3600 * ON
    seen = Observed((10 * 60 * OFF + 5 * 60 * ON) // 2, utc("2024-06-05T08:50"), now)
    configured, observed = estimate(WEEKDAYS, now, remaining_ids=remaining), \
        estimate(WEEKDAYS, now, remaining_ids=remaining, observed=seen)
    assert configured.finish == utc("2024-06-05T18:02")  # 8 h 55 min on peak, the last 90,000 ids off
    assert (observed.state, observed.efficiency) == ("estimated", 0.5)
    assert observed.finish == finish_time(WEEKDAYS, remaining, now, efficiency=0.5)
    assert "50% of the configured rates" in observed.reason


def test_a_finished_backfill_is_done() -> None:
    now = utc("2024-06-05T09:05")
    eta = estimate(WEEKDAYS, now, remaining_ids=0)
    assert (eta.state, eta.finish, eta.seconds_left(now)) == ("done", now, 0.0)


@pytest.mark.parametrize(("flags", "why"), [
    ({"stopped": True}, "stopped"),
    ({"paused": True}, "paused"),
    ({"stopped": True, "paused": True}, "stopped"),
])
def test_a_stopped_or_paused_backfill_has_no_eta_and_says_why(flags: dict[str, bool], why: str) -> None:
    eta = estimate(WEEKDAYS, utc("2024-06-05T09:05"), remaining_ids=1000, **flags)
    assert (eta.state, eta.finish) == ("unknown", None)
    assert why in eta.reason


def test_only_failed_ranges_left_has_no_eta() -> None:
    eta = estimate(WEEKDAYS, utc("2024-06-05T09:05"), remaining_ids=0, failed_ids=500)
    assert (eta.state, eta.finish) == ("unknown", None)
    assert "failed ranges" in eta.reason and "retry-failed" in eta.reason


def test_no_progress_lately_is_stalled() -> None:
    now = utc("2024-06-05T09:05")
    eta = estimate(WEEKDAYS, now, remaining_ids=1000, observed=Observed(0, now - timedelta(minutes=15), now))
    assert (eta.state, eta.finish) == ("unknown", None)
    assert eta.reason == "stalled: no id done in the last 15 min"


def test_too_early_to_judge_the_pace_uses_the_configured_rates() -> None:
    now = utc("2024-06-05T08:00")
    eta = estimate(WEEKDAYS, now, remaining_ids=7500, observed=Observed(0, now - timedelta(seconds=30), now))
    assert (eta.state, eta.finish, eta.efficiency) == ("estimated", utc("2024-06-05T08:00:10"), None)


# -- properties ----------------------------------------------------------------------------------------------

ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
rates = st.sampled_from([0.5, 1, 2.5, 3, 7.5, 12])


@st.composite
def configs(draw: st.DrawFn, equal_rates: bool = False) -> SpreadConfig:
    on = draw(rates)
    return SpreadConfig(
        batch_size=draw(st.integers(10, 1000)), duration=draw(st.sampled_from([10, 60, 90])),
        per_second_on_peak=on, per_second_off_peak=on if equal_rates else draw(rates),
        on_peak_timezone=draw(st.sampled_from(ZONES)),
        on_peak_wday_begin=draw(st.integers(0, 6)), on_peak_wday_end=draw(st.integers(0, 6)),
        on_peak_hour_begin=draw(st.integers(0, 23)), on_peak_hour_end=draw(st.integers(0, 23)),
    )


instants = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC))
remainders = st.integers(0, 30_000_000)


@given(config=configs(), now=instants, fewer=remainders, more=remainders)
def test_more_remaining_ids_never_finish_earlier(config: SpreadConfig, now: datetime, fewer: int, more: int) -> None:
    fewer, more = sorted((fewer, more))
    first, second = finish_time(config, fewer, now), finish_time(config, more, now)
    assert first is not None
    assert second is None or first <= second


@given(config=configs(equal_rates=True), now=instants, remaining=remainders)
def test_with_equal_rates_it_is_the_straight_line(config: SpreadConfig, now: datetime, remaining: int) -> None:
    finish = finish_time(config, remaining, now)
    assert finish is not None
    line = straight_line(remaining, ids_per_second(config, on_peak=True), now)
    assert abs(finish - line) <= timedelta(milliseconds=1)


@given(config=configs(), now=instants, remaining=remainders)
def test_it_lies_between_the_straight_lines_at_either_rate(config: SpreadConfig, now: datetime,
                                                            remaining: int) -> None:
    finish = finish_time(config, remaining, now)
    fast, slow = sorted(ids_per_second(config, on_peak) for on_peak in (True, False))[::-1]
    assert finish is not None
    tick = timedelta(microseconds=1)
    assert straight_line(remaining, fast, now) - tick <= finish <= straight_line(remaining, slow, now) + tick


@given(config=configs(), now=instants, remaining=st.integers(1, 30_000_000))
def test_the_capacity_up_to_the_eta_is_the_remaining_work(config: SpreadConfig, now: datetime,
                                                         remaining: int) -> None:
    finish = finish_time(config, remaining, now)
    assert finish is not None
    fastest = max(ids_per_second(config, on_peak) for on_peak in (True, False))
    assert capacity(config, now, finish) == pytest.approx(remaining, rel=1e-9, abs=fastest * 2e-6)
