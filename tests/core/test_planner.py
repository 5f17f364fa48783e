"""The cycle planner: the issue's examples, exact spacing, and partition of the id space."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_spreader.core.grouping import group_batches
from airflow_spreader.core.planner import Batch, IdRange, carve_ranges, plan_cycle, slot_count, slot_offsets

T = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def at(seconds: int) -> datetime:
    return T + timedelta(seconds=seconds)


def test_twenty_ids_by_fives_at_one_per_second() -> None:
    assert plan_cycle(20, 5, 1, 30, T) == [
        Batch(at(0), 16, 20), Batch(at(1), 11, 15), Batch(at(2), 6, 10), Batch(at(3), 1, 5)]


def test_the_last_batch_is_clamped_at_min_id() -> None:
    assert plan_cycle(22, 5, 1, 30, T) == [
        Batch(at(0), 18, 22), Batch(at(1), 13, 17), Batch(at(2), 8, 12), Batch(at(3), 3, 7), Batch(at(4), 1, 2)]


def test_half_a_batch_per_second_spaces_batches_two_seconds_apart() -> None:
    assert plan_cycle(1999, 100, 0.5, 10, T) == [
        Batch(at(0), 1900, 1999), Batch(at(2), 1800, 1899), Batch(at(4), 1700, 1799),
        Batch(at(6), 1600, 1699), Batch(at(8), 1500, 1599)]


def test_three_per_second_for_two_seconds_is_exactly_six_batches() -> None:
    batches = plan_cycle(100_000_000, 100, 3, 2, T)
    assert [(b.begin_id, b.end_id) for b in batches] == [
        (99_999_901, 100_000_000), (99_999_801, 99_999_900), (99_999_701, 99_999_800),
        (99_999_601, 99_999_700), (99_999_501, 99_999_600), (99_999_401, 99_999_500)]
    assert [(b.run_at - T).seconds for b in batches] == [0, 0, 0, 1, 1, 1]


def test_reference_production_rate_plans_1350_batches() -> None:
    assert slot_count(7.5, 180) == 1350 and slot_count(3.0, 180) == 540


def test_decimal_rates_do_not_drift() -> None:
    assert slot_count(0.1, 10) == 1  # float 0.1 * 10 is 1.0000000000000002 → the reference plans 2
    assert slot_offsets(0.3, 10) == [0, 3, 6]
    assert slot_count(Fraction(1, 3), 9) == 3


def test_nothing_below_min_id() -> None:
    assert plan_cycle(0, 5, 1, 30, T) == []
    assert plan_cycle(9, 5, 1, 30, T, min_id=10) == []
    assert plan_cycle(12, 5, 1, 30, T, min_id=10) == [Batch(at(0), 10, 12)]


@pytest.mark.parametrize(("args", "message"), [
    ({"batch_size": 0}, "batch_size must be >= 1"),
    ({"per_second": 0}, "per_second must be > 0"),
    ({"per_second": float("nan")}, "finite"),
    ({"duration": -1}, "duration must be > 0"),
    ({"begin_at": datetime(2026, 1, 1)}, "timezone-aware"),
])
def test_bad_arguments_are_refused(args: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_cycle(**{"next_id": 100, "batch_size": 5, "per_second": 1, "duration": 10, "begin_at": T, **args})


def test_id_ranges_print_and_parse_back() -> None:
    assert IdRange.parse(str(IdRange(3, 70))) == IdRange(3, 70)
    with pytest.raises(ValueError):
        IdRange(5, 4)


rates = st.one_of(
    st.integers(1, 20),
    st.fractions(min_value=Fraction(1, 8), max_value=Fraction(20), max_denominator=8),
    st.sampled_from([0.1, 0.25, 0.3, 1.5, 2.5, 3.0, 7.5, 12.75]),
)
durations = st.one_of(st.integers(1, 60), st.sampled_from([0.5, 2.5, 10.25]))


@given(max_id=st.integers(0, 5_000), min_id=st.integers(1, 50), batch_size=st.integers(1, 400),
       per_second=rates, duration=durations)
def test_consecutive_cycles_partition_the_id_space(max_id, min_id, batch_size, per_second, duration) -> None:
    cursor, seen = max_id, []
    while True:
        batches = plan_cycle(cursor, batch_size, per_second, duration, T, min_id=min_id)
        if not batches:
            break
        rate = Fraction(str(per_second)) if isinstance(per_second, float) else Fraction(per_second)
        for k, batch in enumerate(batches):
            assert batch.run_at == at(math.floor(k / rate))
            assert k / rate < (Fraction(str(duration)) if isinstance(duration, float) else duration)
            assert batch.size == batch_size or batch.begin_id == min_id
        seen.extend(batches)
        cursor = batches[-1].begin_id - 1
    assert [i for b in seen for i in range(b.end_id, b.begin_id - 1, -1)] == list(range(max_id, min_id - 1, -1))


@given(per_second=rates, duration=durations)
def test_a_full_cycle_holds_every_slot_before_the_duration_ends(per_second, duration) -> None:
    offsets = slot_offsets(per_second, duration)
    rate = Fraction(str(per_second)) if isinstance(per_second, float) else Fraction(per_second)
    length = Fraction(str(duration)) if isinstance(duration, float) else Fraction(duration)
    assert len(offsets) == sum(1 for k in range(int(length * rate) + 2) if k / rate < length)
    assert offsets == sorted(offsets) and all(o < length for o in offsets)


@given(next_id=st.integers(-5, 10_000), batch_size=st.integers(1, 100), count=st.integers(0, 50))
def test_carved_ranges_are_contiguous_and_descending(next_id, batch_size, count) -> None:
    ranges = carve_ranges(next_id, batch_size, count)
    for upper, lower in pairwise(ranges):
        assert lower.end_id == upper.begin_id - 1
    assert len(ranges) <= count


@given(count=st.integers(0, 3000), max_groups=st.integers(1, 1024))
def test_grouping_deals_every_batch_once_into_bounded_groups(count: int, max_groups: int) -> None:
    groups = group_batches(list(range(count)), max_groups)
    assert len(groups) == min(count, max_groups) and all(groups)
    assert sorted(i for group in groups for i in group) == list(range(count))
    for group in groups:
        assert all(later - earlier == len(groups) for earlier, later in pairwise(group))


def test_the_reference_production_cycle_fits_in_64_task_instances() -> None:
    batches = plan_cycle(10_000_000, 70, 7.5, 180, T)
    groups = group_batches(batches, 64)
    assert len(batches) == 1350 and len(groups) == 64
    assert max(len(g) for g in groups) == 22
    # inside one instance, batches are 64 slots (about 8.5 s at 7.5/s) apart
    assert min((b.run_at - a.run_at).total_seconds() for g in groups for a, b in pairwise(g)) >= 8
