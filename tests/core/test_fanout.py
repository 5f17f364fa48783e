"""Fan-out start times: even, exact (no drift), windowed, capped; and where a deferred task resumes."""

from __future__ import annotations

import itertools
import math
import re
from datetime import datetime, timedelta, timezone
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from airflow_spreader.core.fanout import (
    MICROSECOND,
    TimedItem,
    check_options,
    next_position,
    spread,
    timed_items,
    window_span,
)
from airflow_spreader.core.grouping import group_batches

T0 = datetime(2025, 3, 30, 0, 0, tzinfo=timezone.utc)
US = 1_000_000

counts = st.integers(min_value=0, max_value=3000)
intervals = st.integers(min_value=1, max_value=7 * 86400 * US).map(lambda us: us * MICROSECOND)
caps = st.fractions(min_value=Fraction(1, 1000), max_value=10_000)


def us(delta: timedelta) -> int:
    return delta // MICROSECOND


def test_the_six_hour_example_starts_one_account_every_three_minutes() -> None:
    plan = spread(120, T0, timedelta(hours=6))
    assert plan.times() == [T0 + i * timedelta(minutes=3) for i in range(120)]
    assert plan.gap == timedelta(minutes=3)
    assert plan.last_offset == timedelta(hours=5, minutes=57)
    assert not plan.overruns_window and not plan.overruns_interval


def test_thirds_of_ten_seconds_are_floored_to_the_microsecond_not_accumulated() -> None:
    assert [us(spread(3, T0, timedelta(seconds=10)).offset(i)) for i in range(3)] == [0, 3_333_333, 6_666_666]


def test_zero_items_is_an_empty_spread_and_one_item_starts_at_once() -> None:
    assert spread(0, T0, timedelta(hours=6)).times() == []
    assert spread(0, T0, timedelta(hours=6)).last_offset == timedelta(0)
    assert spread(1, T0, timedelta(hours=6), window=0.5, max_per_second=0.001).times() == [T0]


def test_more_items_than_seconds_are_spaced_below_a_second_exactly() -> None:
    plan = spread(100_000, T0, timedelta(minutes=1))
    assert plan.gap == timedelta(microseconds=600)
    assert plan.at(99_999) == T0 + timedelta(seconds=59, microseconds=999_400)
    # more items than microseconds: several share a microsecond, in order, none early or late
    dense = spread(3_000_000, T0, timedelta(seconds=1))
    assert dense.at(2) == T0 and dense.at(3) == T0 + MICROSECOND and dense.at(2_999_999) < T0 + timedelta(seconds=1)


def test_a_window_spreads_over_the_first_part_of_the_interval() -> None:
    plan = spread(120, T0, timedelta(hours=6), window=0.8)
    assert plan.span == timedelta(hours=4, minutes=48)
    assert plan.gap == timedelta(minutes=2, seconds=24)
    assert plan.at(119) == T0 + 119 * timedelta(minutes=2, seconds=24)
    assert spread(120, T0, timedelta(hours=6), window=timedelta(hours=3)).gap == timedelta(seconds=90)


def test_the_cap_wins_over_the_window_and_says_so() -> None:
    plan = spread(120, T0, timedelta(minutes=1), window=0.5, max_per_second=1)
    assert plan.gap == timedelta(seconds=1) and plan.at(119) == T0 + timedelta(seconds=119)
    assert plan.overruns_window and plan.overruns_interval
    assert plan.summary()["overruns_interval"] is True
    within = spread(40, T0, timedelta(minutes=1), window=0.5, max_per_second=1)
    assert within.gap == timedelta(seconds=1) and within.overruns_window and not within.overruns_interval
    assert not spread(10, T0, timedelta(minutes=1), window=0.5, max_per_second=1).overruns_window


def test_the_summary_is_json_ready() -> None:
    summary = spread(4, T0, timedelta(seconds=20), window=0.8).summary()
    assert summary == {"start": T0.isoformat(), "count": 4, "interval_seconds": 20.0, "span_seconds": 16.0,
                       "gap_seconds": 4.0, "last_start": (T0 + timedelta(seconds=12)).isoformat(),
                       "overruns_window": False, "overruns_interval": False}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"window": 0}, "window must be a fraction of the interval in (0, 1]"),
    ({"window": 1.5}, "window must be a fraction of the interval in (0, 1]"),
    ({"window": -timedelta(seconds=1)}, "window must be > 0"),
    ({"window": timedelta(hours=7)}, "must not be longer than the interval"),
    ({"max_per_second": 0}, "max_per_second must be > 0"),
    ({"max_per_second": float("nan")}, "finite"),
])
def test_bad_options_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        spread(10, T0, timedelta(hours=6), **kwargs)


def test_bad_starts_counts_and_intervals_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        spread(3, datetime(2025, 1, 1), timedelta(hours=1))
    with pytest.raises(ValueError, match="count must be >= 0"):
        spread(-1, T0, timedelta(hours=1))
    with pytest.raises(ValueError, match="interval must be > 0"):
        spread(3, T0, timedelta(0))
    with pytest.raises(IndexError):
        spread(3, T0, timedelta(hours=1)).offset(3)
    with pytest.raises(ValueError, match="3 items for a spread of 2"):
        timed_items([1, 2, 3], spread(2, T0, timedelta(hours=1)))
    check_options(timedelta(hours=100), 5)  # a long window can only be judged against the run's interval


@given(count=counts, interval=intervals)
def test_item_i_starts_at_exactly_i_times_interval_over_n_without_drift(count: int, interval: timedelta) -> None:
    plan = spread(count, T0, interval)
    offsets = [us(plan.offset(i)) for i in range(count)]
    assert offsets == [i * us(interval) // count for i in range(count)]
    assert all(0 <= i * Fraction(us(interval), count) - offsets[i] < 1 for i in range(count))
    diffs = {b - a for a, b in itertools.pairwise(offsets)}
    n = max(count, 1)
    assert diffs <= {us(interval) // n, -(-us(interval) // n)}  # even: gaps differ by at most 1 us
    assert all(offset < us(interval) for offset in offsets)  # every item starts inside the interval


@given(count=counts, interval=intervals, fraction=st.fractions(min_value=Fraction(1, 100), max_value=1))
def test_a_windowed_spread_is_the_plain_spread_of_the_window(count: int, interval: timedelta,
                                                             fraction: Fraction) -> None:
    span = window_span(interval, fraction)
    assert span == max(MICROSECOND, math.floor(us(interval) * fraction) * MICROSECOND)
    windowed = spread(count, T0, interval, window=fraction)
    assert windowed.times() == spread(count, T0, span).times()
    assert all(moment < T0 + span for moment in windowed.times())


@given(count=counts, interval=intervals, cap=caps)
def test_the_cap_bounds_every_run_of_starts(count: int, interval: timedelta, cap: Fraction) -> None:
    plan = spread(count, T0, interval, max_per_second=cap)
    offsets = [us(plan.offset(i)) for i in range(count)]
    for i in range(count):
        for k in (1, 2, 7, count - 1 - i):
            if k > 0 and i + k < count:
                # k gaps take at least k / cap seconds, up to the 1 us of flooring
                assert offsets[i + k] - offsets[i] > k * US / cap - 1
    uncapped = spread(count, T0, interval)
    if count == 0 or uncapped.gap_us >= US / cap:
        assert plan.times() == uncapped.times()  # a cap that does not bind changes nothing
    else:
        assert plan.gap_us == US / cap


@given(gaps=st.lists(st.integers(min_value=0, max_value=60 * US), min_size=1, max_size=40), data=st.data())
def test_a_resume_continues_at_the_item_it_deferred_for(gaps: list[int], data: st.DataObject) -> None:
    """However the deferral was timed (within the operator's rule), the moment waited for gives the position."""
    threshold = data.draw(st.integers(min_value=0, max_value=20 * US), label="threshold_us")
    margin = data.draw(st.integers(min_value=0, max_value=threshold), label="margin_us")
    times = [T0 + sum(gaps[: i + 1]) * MICROSECOND for i in range(len(gaps))]
    deferrable = [k for k in range(len(times))
                  if k == 0 or us(times[k] - times[k - 1]) > threshold]
    assume(deferrable)
    k = data.draw(st.sampled_from(deferrable), label="k")
    earliest = times[k - 1] if k else times[0] - 3600 * US * MICROSECOND
    deferred_at = data.draw(st.integers(min_value=us(earliest - T0), max_value=us(times[k] - T0) - threshold - 1),
                            label="deferred_at_us") * MICROSECOND + T0
    assert times[k] - deferred_at > threshold * MICROSECOND  # the operator defers for k
    assert next_position(times, times[k] - margin * MICROSECOND) == k


def test_timed_items_round_trip_and_group_in_time_order() -> None:
    items = timed_items([f"acct-{i}" for i in range(10)], spread(10, T0, timedelta(seconds=10)))
    assert items[3] == TimedItem(3, T0 + timedelta(seconds=3), "acct-3")
    assert [TimedItem.from_dict(item.to_dict()) for item in items] == items
    groups = group_batches(items, 4)
    assert [[item.index for item in group] for group in groups] == [[0, 4, 8], [1, 5, 9], [2, 6], [3, 7]]
    assert all([item.at for item in group] == sorted(item.at for item in group) for group in groups)
