"""The governor's adaptation: the rate factor (AIMD on holds) and the batch size towards a target time."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_spreader.core.adapt import (
    BATCH_STEP,
    RATE_FLOOR,
    Pace,
    batch_bounds,
    next_batch_size,
    next_factor,
    scaled_rate,
    smooth,
)
from airflow_spreader.core.governor_config import GovernorConfig
from airflow_spreader.core.rules import MAX_BATCH_SIZE, ConfigError

factors = st.floats(min_value=RATE_FLOOR, max_value=1.0)
cycles = st.lists(st.tuples(st.integers(0, 5), st.booleans()), max_size=60)


@given(factors, cycles)
def test_the_factor_stays_in_its_bounds_whatever_the_holds(start: float, history: list[tuple[int, bool]]) -> None:
    factor = start
    for holds, healthy in history:
        before, factor = factor, next_factor(factor, holds, healthy)
        assert RATE_FLOOR <= factor <= 1.0
        if holds:
            assert factor <= before  # a hold never speeds it up
        elif healthy:
            assert before <= factor <= before + min(0.1, before) + 1e-6  # +0.1, or x2 below 0.1 (6 digits)
        else:
            assert factor == before


def test_each_hold_halves_the_factor_down_to_the_floor_and_healthy_cycles_add_a_tenth() -> None:
    assert next_factor(1.0, 1, healthy=False) == 0.5
    assert next_factor(1.0, 2, healthy=True) == 0.25
    assert next_factor(RATE_FLOOR * 1.2, 1, healthy=False) == RATE_FLOOR
    assert next_factor(0.5, 0, healthy=True) == 0.6
    assert next_factor(0.95, 0, healthy=True) == 1.0
    assert next_factor(0.5, 0, healthy=False) == 0.5  # held now (or no check yet): no growth


def test_below_a_tenth_a_healthy_cycle_doubles_the_factor_instead_of_adding_a_tenth() -> None:
    """A ceiling 50x what the database takes settles near 0.02: a step of 0.1 would overshoot it six-fold."""
    steps = [RATE_FLOOR]
    for _ in range(5):
        steps.append(next_factor(steps[-1], 0, healthy=True))
    assert steps == [0.01, 0.02, 0.04, 0.08, 0.16, 0.26]


@given(st.floats(min_value=1 / 86_400, max_value=1_000), factors,
       st.datetimes(timezones=st.just(timezone.utc)))
def test_the_calendar_rate_is_the_ceiling(per_second: float, factor: float, at: datetime) -> None:
    rate = Pace(factor, 10).rate(lambda _: per_second)(at)
    assert 0 < rate <= per_second
    assert scaled_rate(per_second, 1.0) == per_second


@given(st.integers(1, 10**6), st.floats(min_value=1e-9, max_value=10.0), st.floats(min_value=0.001, max_value=3600),
       st.integers(1, 10**6), st.integers(1, 10**6))
def test_the_batch_size_stays_within_bounds_and_moves_by_a_bounded_step(
        current: int, seconds_per_unit: float, target: float, a: int, b: int) -> None:
    low, high = min(a, b), max(a, b)
    size = next_batch_size(current, seconds_per_unit, target, low, high)
    assert low <= size <= high
    if low <= current <= high:
        assert current / BATCH_STEP <= size <= current * BATCH_STEP


@given(st.integers(1, MAX_BATCH_SIZE), st.none() | st.integers(1, MAX_BATCH_SIZE),
       st.none() | st.integers(1, MAX_BATCH_SIZE))
def test_the_bounds_are_ordered_and_at_least_one(batch_size: int, low: int | None, high: int | None) -> None:
    if low is not None and high is not None and low > high:
        low, high = high, low
    lo, hi = batch_bounds(batch_size, low, high)
    assert 1 <= lo <= hi
    assert lo == (low if low is not None else lo) and hi == (high if high is not None else hi)


def test_default_bounds_are_a_tenth_to_ten_times_the_batch_size() -> None:
    assert batch_bounds(100, None, None) == (10, 1000)
    assert batch_bounds(5, None, None) == (1, 50)
    assert batch_bounds(100, None, 5) == (5, 5)  # a maximum under the default minimum moves it down


def test_with_time_proportional_to_the_size_the_batch_size_converges_to_the_target() -> None:
    # Each id costs 2 ms plus 50 ms per batch: 1 s a batch is (1 - 0.05) / 0.002 = 475 ids.
    size, spu = 100, None
    for _ in range(12):
        seconds = 0.05 + 0.002 * size
        spu = smooth(spu, seconds / size)
        size = next_batch_size(size, spu, 1.0, 10, 10_000)
    assert abs(size - 475) <= 10


def test_no_measure_keeps_the_size_and_the_smoothed_value() -> None:
    assert next_batch_size(100, None, 1.0, 10, 1000) == 100
    assert smooth(0.5, None) == 0.5 and smooth(None, 0.2) == 0.2 and smooth(0.4, 0.2) == pytest.approx(0.3)


@pytest.mark.parametrize(("fields", "path", "says"), [
    ({"target_batch_seconds": 0}, "governor.target_batch_seconds", "must be a number of seconds > 0"),
    ({"target_batch_seconds": "1"}, "governor.target_batch_seconds", "must be a number of seconds > 0"),
    ({"min_batch_size": 0}, "governor.min_batch_size", "must be an integer from 1 to 1,000,000,000"),
    ({"max_batch_size": 2.5}, "governor.max_batch_size", "must be an integer from 1 to 1,000,000,000"),
    ({"min_batch_size": 50, "max_batch_size": 10}, "governor.max_batch_size", "must be at least min_batch_size (50)"),
    ({"adaptive_rate": "yes"}, "governor.adaptive_rate", "must be true or false, got 'yes'"),
])
def test_bad_adaptation_fields_name_their_path(fields: dict[str, object], path: str, says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        GovernorConfig.from_dict({"signals": [], **fields})
    assert raised.value.problems[path].startswith(says)


def test_the_adaptation_fields_round_trip() -> None:
    data = {"health_interval": 2.0, "signals": [], "target_batch_seconds": 1.5, "min_batch_size": 10,
            "max_batch_size": 500, "adaptive_rate": True}
    config = GovernorConfig.from_dict(data)
    assert (config.target_batch_seconds, config.min_batch_size, config.max_batch_size, config.adaptive_rate) == (
        1.5, 10, 500, True)
    assert config.to_dict() == data and GovernorConfig.from_dict(config.to_dict()) == config
    assert GovernorConfig.from_dict({"signals": []}).to_dict() == {"health_interval": 10.0, "signals": []}
