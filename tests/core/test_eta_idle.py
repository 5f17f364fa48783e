"""The ETA net of idle time: held, stopped or paused is shown apart, never counted as slowness; the
governor's rate factor and batch size are the rates it walks the calendar at."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from airflow_spreader.core.adapt import Pace
from airflow_spreader.core.config import SpreadConfig
from airflow_spreader.core.eta import efficiency, estimate, finish_time, ids_per_second, observe
from airflow_spreader.core.idle import IdleSpan, idle_in, seconds_by_kind

UTC = timezone.utc
# 1 batch/s of 10 ids, all day: 10 ids/s, 600 ids a minute.
FLAT = SpreadConfig(batch_size=10, duration=60, per_second_on_peak=1, per_second_off_peak=1)
NOW = datetime(2024, 6, 5, 8, 15, tzinfo=UTC)


def at(minutes_ago: float) -> float:
    return (NOW - timedelta(minutes=minutes_ago)).timestamp()


def ran(minutes: range) -> dict[int, int]:
    """600 ids done in each of these minutes before NOW (minute 1 = the last whole minute)."""
    return {int(at(m)): 600 for m in minutes}


def test_a_stop_in_the_window_is_set_apart_not_counted_as_slowness() -> None:
    # At full pace for 11 min of the last 15, stopped the 4 min before: full pace, not 73% of it.
    done = ran(range(1, 12))
    observed = observe(done, NOW, minutes=15)
    stop = IdleSpan("stopped", at(15), at(11))
    assert efficiency(FLAT, observed) < 0.75  # what the ETA used to say: ~26% pessimistic
    assert efficiency(FLAT, observed, [stop]) == 1.0
    eta = estimate(FLAT, NOW, remaining_ids=6000, observed=observed, idle=[stop])
    assert eta.finish == NOW + timedelta(seconds=600) and eta.efficiency == 1.0
    assert eta.idle_seconds == {"held": 0.0, "stopped": 240.0, "paused": 0.0}


def test_overlapping_holds_and_pauses_count_once() -> None:
    spans = [IdleSpan("held", 100, 200), IdleSpan("paused", 150, 300), IdleSpan("stopped", 400, 450)]
    assert idle_in(spans, 120, 420) == [(120, 300), (400, 420)]
    assert seconds_by_kind(spans, 0, 1000) == {"held": 100, "stopped": 50, "paused": 150}


def test_a_window_idle_almost_throughout_is_too_short_to_judge() -> None:
    observed = observe(ran(range(1, 2)), NOW, minutes=15)
    held = IdleSpan("held", at(15), at(1))
    assert efficiency(FLAT, observed, [held]) is None  # 1 min of running time: judged by the configured rates
    eta = estimate(FLAT, NOW, remaining_ids=6000, observed=observed, idle=[held])
    assert eta.state == "estimated" and eta.efficiency is None


def test_the_eta_walks_at_the_governors_factor_and_batch_size() -> None:
    assert ids_per_second(FLAT, True, Pace(0.5, 10)) == 5.0
    assert ids_per_second(FLAT, True, Pace(1.0, 40)) == 40.0
    assert finish_time(FLAT, 6000, NOW, pace=Pace(0.5, 10)) == NOW + timedelta(seconds=1200)
    eta = estimate(FLAT, NOW, remaining_ids=6000, pace=Pace(0.5, 10))
    assert eta.factor == 0.5 and "x0.5 (governor)" in eta.reason


@given(st.lists(st.tuples(st.floats(0, 900), st.floats(0, 900), st.sampled_from(["held", "stopped", "paused"])),
                max_size=6),
       st.lists(st.integers(1, 15), max_size=15, unique=True))
def test_idle_time_never_makes_the_pace_look_slower(spans: list[tuple[float, float, str]], minutes: list[int]) -> None:
    observed = observe(ran(range(0)) | {int(at(m)): 300 for m in minutes}, NOW, minutes=15)
    idle = [IdleSpan(kind, at(max(a, b) / 60), at(min(a, b) / 60)) for a, b, kind in spans]  # type: ignore[arg-type]
    without, net = efficiency(FLAT, observed), efficiency(FLAT, observed, idle)
    assert without is not None
    assert net is None or without <= net + 1e-9
    assert net is None or 0 <= net <= 1
