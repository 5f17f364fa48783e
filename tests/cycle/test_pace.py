"""The pace the plan picks per cycle (real Redis): the rate factor on holds, the batch size on measured
times, idempotent for a retried plan, logged; and the idle spans the ETA sets apart."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from airflow_spreader.core.adapt import Pace
from airflow_spreader.core.config import SpreadConfig
from airflow_spreader.core.governor import Verdict
from airflow_spreader.cycle.pace import current_pace, pace_for_cycle
from airflow_spreader.cycle.plan import plan_next_cycle
from airflow_spreader.state.adapt import AdaptState
from airflow_spreader.state.governor import GovernorState
from airflow_spreader.state.idle import IdleLog
from airflow_spreader.state.tracker import Tracker
from tests.conftest import ManualClock

ALWAYS_ON_PEAK = {"on_peak_wday_begin": 0, "on_peak_wday_end": 6, "on_peak_hour_begin": 0, "on_peak_hour_end": 23}
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
SIGNAL = {"kind": "callable", "callable": "tests.airflow.governor_knob:knob", "hold_above": 1}
HOLD = Verdict("hold", "knob", "callable", 3.0, 1.0)
OK = Verdict("ok")


def config(**governor: Any) -> SpreadConfig:
    return SpreadConfig.from_dict({"batch_size": 100, "duration": 10, "per_second_on_peak": 2,
                                   "per_second_off_peak": 2, **ALWAYS_ON_PEAK,
                                   "governor": {"signals": [SIGNAL], **governor}})


def test_a_hold_halves_the_factor_a_retry_keeps_it_and_a_healthy_cycle_grows_it(tracker: Tracker) -> None:
    adaptive, state = config(adaptive_rate=True), GovernorState(tracker.redis, tracker.name)
    assert pace_for_cycle(tracker, adaptive, "run/1", NOW) == Pace(1.0, 100)
    state.record(OK, [])
    state.record(HOLD, [])
    assert pace_for_cycle(tracker, adaptive, "run/2", NOW) == Pace(0.5, 100)
    assert pace_for_cycle(tracker, adaptive, "run/2", NOW) == Pace(0.5, 100)  # a retried plan: same pace
    assert pace_for_cycle(tracker, adaptive, "run/3", NOW) == Pace(0.5, 100)  # still held: no growth
    state.record(OK, [])
    state.record(HOLD, [])
    state.record(OK, [])
    state.record(HOLD, [])
    state.record(OK, [])
    assert pace_for_cycle(tracker, adaptive, "run/4", NOW).factor == 0.125  # two holds: x0.25
    assert pace_for_cycle(tracker, adaptive, "run/5", NOW).factor == 0.225  # healthy: +0.1
    assert current_pace(tracker, adaptive) == Pace(0.225, 100)
    changes = [(e.what, e.previous, e.decision) for e in state.history() if e.what == "rate_factor"]
    assert changes == [("rate_factor", "x0.125", "x0.225"), ("rate_factor", "x0.5", "x0.125"),
                       ("rate_factor", "x1", "x0.5")]
    assert state.history()[0].reason == "rate factor: healthy since the last cycle: +0.1"


def test_the_planned_cycle_runs_at_the_reduced_rate_and_batch_size(tracker: Tracker) -> None:
    tracker.start(max_id=10_000)
    plan = plan_next_cycle(tracker, config(), NOW, pace=Pace(0.5, 40))
    assert plan.summary.per_second == 1.0 and plan.summary.rate_factor == 0.5 and plan.summary.batch_size == 40
    assert len(plan.claim.batches) == 10  # 1/s for 10 s, not 2/s
    assert {b.size for b in plan.claim.batches} == {40}


def test_the_batch_size_follows_the_measured_time_within_bounds_and_steps(tracker: Tracker) -> None:
    sized, times = config(target_batch_seconds=0.5, max_batch_size=150), AdaptState(tracker.redis, tracker.name)
    assert pace_for_cycle(tracker, sized, "run/1", NOW) == Pace(1.0, 100)  # nothing measured yet
    times.record_batch(1.0, 100, None)
    times.record_batch(1.0, 100, 90)  # 10 ms an id: 0.5 s is 50 ids
    assert pace_for_cycle(tracker, sized, "run/2", NOW) == Pace(1.0, 50)
    times.record_batch(0.05, 50, None)  # 1 ms an id, smoothed to 5.5 ms: 90 ids, the step allows 100
    assert pace_for_cycle(tracker, sized, "run/3", NOW) == Pace(1.0, 90)
    for _ in range(3):
        times.record_batch(0.001, 90, None)
    assert pace_for_cycle(tracker, sized, "run/4", NOW) == Pace(1.0, 150)  # the maximum
    entry = GovernorState(tracker.redis, tracker.name).history()[0]
    assert (entry.what, entry.previous, entry.decision) == ("batch_size", "90", "150")
    assert entry.reason.startswith("batch size: ") and "target 0.5 s a batch" in entry.reason
    assert pace_for_cycle(tracker, config(), "run/5", NOW) == Pace(1.0, 100)  # switched off: the configured
    assert AdaptState(tracker.redis, tracker.name).load() is None


def test_stops_and_holds_leave_idle_spans(tracker: Tracker, clock: ManualClock) -> None:
    idle, state = IdleLog(tracker.redis, tracker.name, clock=clock), GovernorState(tracker.redis, tracker.name,
                                                                                   clock=clock)
    tracker.stop()
    clock.advance(30)
    tracker.stop()  # a second stop keeps the first start
    clock.advance(30)
    tracker.go()
    state.record(HOLD, [])
    clock.advance(12)
    state.record(HOLD, [])
    clock.advance(8)
    assert [(s.kind, s.end - s.begin) for s in idle.spans()] == [("stopped", 60), ("held", 20)]  # open: up to now
    state.record(OK, [])
    clock.advance(100)
    assert [(s.kind, s.end - s.begin) for s in idle.spans()] == [("held", 20), ("stopped", 60)]
    idle.open("paused")
    clock.advance(5)
    assert idle.close("paused") and not idle.close("paused")
    assert next((s.kind, s.end - s.begin) for s in idle.spans()) == ("paused", 5)
