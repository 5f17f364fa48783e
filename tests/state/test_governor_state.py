"""The governor's shared state in a real Redis: one check per interval, atomic records, a capped log."""

from __future__ import annotations

import threading

import redis

from airflow_spreader.core.governor import Reading, Verdict
from airflow_spreader.core.governor_config import GovernorConfig
from airflow_spreader.state.governor import GOVERNOR_STOP, LOG_KEPT, GovernorState
from airflow_spreader.state.tracker import Tracker
from tests.conftest import ManualClock

CONFIG = GovernorConfig.from_dict({"health_interval": 0.5, "signals": [
    {"kind": "replica_lag", "conn_id": "replica", "hold_above": 2, "stop_above": 30}]})
HOLD = Verdict("hold", "replica lag", "replica_lag", 4.2, 2.0)
OK = Verdict("ok")


def test_the_published_config_is_read_back_and_cleared(tracker: Tracker) -> None:
    state = GovernorState(tracker.redis, tracker.name)
    assert state.config() is None
    state.publish(CONFIG)
    assert state.config() == CONFIG
    state.publish(None)
    assert state.config() is None


def test_one_caller_per_interval_takes_the_turn_however_many_ask(tracker: Tracker, redis_url: str) -> None:
    wins: list[bool] = []

    def ask() -> None:
        wins.append(GovernorState(redis.Redis.from_url(redis_url), tracker.name).take_turn(60))

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False] * 15 + [True]
    assert 0 < tracker.redis.pttl(tracker.keys.governor_lease) <= 60_000


def test_a_hold_records_since_when_and_the_total_held(tracker: Tracker, clock: ManualClock) -> None:
    state = GovernorState(tracker.redis, tracker.name, clock=clock)
    assert state.record(OK, [("replica lag", Reading(0.1))]) == "none"
    clock.advance(10)
    assert state.record(HOLD, [("replica lag", Reading(4.2))]) == "ok"
    clock.advance(5)
    assert state.record(HOLD, [("replica lag", Reading(6.0))]) == "hold"  # the hold goes on: same since
    record = state.current()
    assert record is not None and record.readings == {"replica lag": Reading(6.0)}
    assert record.since is not None and record.since.timestamp() == clock.now - 5
    clock.advance(7)
    state.record(OK, [("replica lag", Reading(0.0))])
    record = state.current()
    assert record is not None and record.held_seconds == 12 and record.verdict == OK and record.checks == 4
    assert [(e.previous, e.decision, e.reason) for e in state.history()] == [
        ("hold", "ok", "all signals healthy"), ("ok", "hold", "replica lag 4.2 s > 2 s"),
        ("none", "ok", "all signals healthy")]
    assert not tracker.is_stopped()


def test_a_stop_sets_the_stop_flag_as_the_governors_and_go_clears_it(tracker: Tracker) -> None:
    state = GovernorState(tracker.redis, tracker.name)
    stop = Verdict("stop", "replica lag", "replica_lag", 31.0, 30.0)
    state.record(stop, [("replica lag", Reading(31.0))])
    assert tracker.is_stopped() and state.stopped_by_governor()
    assert tracker.redis.get(tracker.keys.stop) == GOVERNOR_STOP.encode()
    tracker.go()
    assert not tracker.is_stopped()
    state.record(stop, [("replica lag", Reading(32.0))])  # still above: stopped again, and logged again
    assert tracker.is_stopped() and [e.decision for e in state.history()] == ["stop", "stop"]
    tracker.stop()  # an operator's stop is not the governor's
    assert not state.stopped_by_governor()


def test_the_log_is_capped_and_reset_forgets_the_governor(tracker: Tracker) -> None:
    state = GovernorState(tracker.redis, tracker.name)
    state.publish(CONFIG)
    for i in range(LOG_KEPT + 20):
        state.record(HOLD if i % 2 else OK, [])
    assert tracker.redis.llen(tracker.keys.governor_log) == LOG_KEPT
    assert state.history()[0].decision == "hold"
    tracker.reset()
    assert state.current() is None and state.history() == [] and state.config() is None


def test_the_waiting_state_wakes_one_waiter_per_interval_for_a_new_check(tracker: Tracker) -> None:
    state = GovernorState(tracker.redis, tracker.name)
    state.publish(CONFIG)
    state.take_turn(60)
    state.record(HOLD, [])
    assert state.waiting_state() == ("hold", False)  # checked this interval: nobody wakes
    tracker.redis.delete(tracker.keys.governor_lease)
    assert [state.waiting_state() for _ in range(5)] == [("hold", True)] + [("hold", False)] * 4
    assert 0 < tracker.redis.pttl(tracker.keys.governor_waker) <= 500  # health_interval 0.5 s
    tracker.redis.delete(tracker.keys.governor_waker)  # the interval passed and still no check: wake again
    assert state.waiting_state() == ("hold", True)
