"""Issue 13 items 8 and 9: cycles never exceed the configured rate, and every field has an upper bound."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_spreader.core.config import (
    MAX_BATCH_SIZE,
    MAX_DURATION,
    MAX_LEASE_SECONDS,
    MAX_PER_SECOND,
    MAX_SLOTS_PER_CYCLE,
    ConfigError,
    SpreadConfig,
)
from airflow_spreader.core.planner import cycle_length, exact, slot_count, slot_offsets

BASE = {"batch_size": 10, "duration": 10, "per_second_on_peak": 1, "per_second_off_peak": 1}


def test_the_issues_examples_run_at_the_configured_rate() -> None:
    assert (slot_count(0.1, 1), cycle_length(0.1, 1)) == (1, 10)  # was 1 batch a second
    assert (slot_count(0.25, 10), cycle_length(0.25, 10)) == (3, 12)  # was 3 per 10 s = 0.3/s
    assert slot_offsets(0.25, 10) == [0, 4, 8]


def test_a_whole_rate_keeps_its_duration() -> None:
    assert cycle_length(7.5, 180) == 180 and cycle_length(3, 2) == 2


rates = st.one_of(
    st.integers(1, 50),
    st.fractions(min_value=Fraction(1, 16), max_value=Fraction(50), max_denominator=16),
    st.sampled_from([0.1, 0.25, 0.3, 1.5, 2.5, 7.5, 12.75, 0.001]),
)
durations = st.one_of(st.integers(1, 120), st.sampled_from([0.5, 1.5, 2.5, 10.25]))


@given(rate=rates, cycles=st.lists(durations, min_size=1, max_size=12), data=st.data())
def test_over_any_window_of_whole_cycles_the_batches_never_exceed_the_rate(rate, cycles, data) -> None:
    """Cycles tile at their length; the durations (tuned by hand) may change from cycle to cycle.
    Exactly: batches started in cycles i..j <= rate x (end of cycle j - begin of cycle i), no extra one."""
    begins, slots, clock = [], [], Fraction(0)
    for duration in cycles:
        begins.append(clock)
        slots.append([clock + offset for offset in slot_offsets(rate, duration)])
        clock += cycle_length(rate, duration)
    begins.append(clock)
    i = data.draw(st.integers(0, len(cycles) - 1))
    j = data.draw(st.integers(i, len(cycles) - 1))
    started = sum(len(s) for s in slots[i:j + 1])
    assert started <= exact(rate) * (begins[j + 1] - begins[i])
    assert all(begins[c] <= t < begins[c + 1] for c, times in enumerate(slots) for t in times)


@given(per_cycle=st.lists(st.tuples(rates, durations), min_size=1, max_size=12))
def test_when_the_rate_changes_each_cycle_holds_its_own_rate(per_cycle) -> None:
    """A peak boundary changes the rate between cycles: each cycle starts at most rate x its length."""
    for rate, duration in per_cycle:
        assert slot_count(rate, duration) <= exact(rate) * cycle_length(rate, duration)
        assert cycle_length(rate, duration) >= exact(duration)
        assert cycle_length(rate, duration) < exact(duration) + 1 / exact(rate)


# --- item 9: bounds -----------------------------------------------------------------------------

@pytest.mark.parametrize(("field", "bound", "above"), [
    ("batch_size", MAX_BATCH_SIZE, MAX_BATCH_SIZE + 1),
    ("duration", MAX_DURATION, MAX_DURATION + 0.5),
    ("per_second_on_peak", MAX_PER_SECOND, 1e9),
    ("per_second_off_peak", MAX_PER_SECOND, MAX_PER_SECOND + 1),
    ("lease_seconds", MAX_LEASE_SECONDS, MAX_LEASE_SECONDS + 1),
])
def test_each_bounded_field_passes_at_its_bound_and_fails_above(field: str, bound: float, above: float) -> None:
    small = {"duration": 1} if field.startswith("per_second") else {"per_second_on_peak": 0.1,
                                                                  "per_second_off_peak": 0.1}
    at_bound = SpreadConfig.from_dict({**BASE, **small, field: bound})
    assert getattr(at_bound, field) == bound
    with pytest.raises(ConfigError) as error:
        SpreadConfig.from_dict({**BASE, **small, field: above})
    assert list(error.value.problems) == [field]
    assert f"{bound:,}" in str(error.value) and repr(above)[:20] in str(error.value) and field in str(error.value)


@pytest.mark.parametrize(("field", "bound", "above"), [
    ("max_tasks_per_cycle", 1024, 1025), ("lead_seconds", 3600, 3601),
])
def test_the_fields_bounded_before_keep_their_bounds(field: str, bound: int, above: int) -> None:
    assert getattr(SpreadConfig.from_dict({**BASE, field: bound}), field) == bound
    with pytest.raises(ConfigError, match=rf"{field}={above}: must be an integer from \d+ to {bound}"):
        SpreadConfig.from_dict({**BASE, field: above})


def test_slots_per_cycle_are_bounded_with_what_to_set() -> None:
    at_bound = {**BASE, "per_second_on_peak": 1000, "duration": MAX_SLOTS_PER_CYCLE / 1000}
    assert slot_count(1000, SpreadConfig.from_dict(at_bound).duration) == MAX_SLOTS_PER_CYCLE
    with pytest.raises(ConfigError) as error:
        SpreadConfig.from_dict({**at_bound, "duration": 20.001})
    assert list(error.value.problems) == ["per_second_on_peak"]
    assert "20,001 batch slots per cycle, more than the 20,000" in str(error.value)
    assert "set duration to at most 20 s" in str(error.value)


def test_the_issues_billion_per_second_is_one_clear_error_at_once() -> None:
    with pytest.raises(ConfigError, match=r"per_second_off_peak: must be at most 1,000 .*got 1000000000.0"):
        SpreadConfig.from_dict({**BASE, "per_second_off_peak": 1e9, "duration": 120})


def test_a_rate_slower_than_a_batch_a_day_is_refused() -> None:
    assert SpreadConfig.from_dict({**BASE, "per_second_on_peak": 1 / 86_400}).per_second_on_peak == 1 / 86_400
    with pytest.raises(ConfigError, match=r"per_second_on_peak: must be at least 1/86400"):
        SpreadConfig.from_dict({**BASE, "per_second_on_peak": 1e-9})
    assert math.isfinite(cycle_length(1 / 86_400, 1))


def test_the_readme_table_states_every_bound() -> None:
    table = SpreadConfig.reference()
    for text in ("at most 1,000,000,000", "at most 86,400", "at most 1,000,", "at most 20,000 slots per cycle",
                 "at most 2,592,000", "from 1 to 1024", "from 0 to 3600"):
        assert text in table
    with open("README.md", encoding="utf-8") as readme:
        assert table in readme.read()
