"""A held batch task waits a short hold out in the worker and defers only a long one, for at least
HOLD_MIN_SECONDS: a trigger firing seconds after the deferral races the executor's report of the deferring
process's exit, and the scheduler then fails the task it has just queued again (apache/airflow#67287; seen in
tests/scheduler/test_backfill_scheduler.py's governor test on a loaded machine, its batches then stranded until
their lease)."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from airflow.exceptions import TaskDeferred

from airflow_spreader.core.governor_config import GovernorConfig
from airflow_spreader.operators.batch import SpreadBatchOperator
from airflow_spreader.operators.governed import HOLD_MIN_SECONDS, governor_holds
from airflow_spreader.state.governor import GovernorState
from airflow_spreader.state.tracker import Tracker
from airflow_spreader.triggers.backfill_wait import BackfillWaitTrigger
from tests.airflow import governor_knob
from tests.airflow.conftest import redis_connection

INTERVAL = 0.2


@pytest.fixture
def held(tracker: Tracker, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Tracker:
    """A backfill whose governor reads the knob (a real `callable` signal), turned above hold_above."""
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_DEFAULT", redis_connection(redis_url))
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    GovernorState(tracker.redis, tracker.name).publish(GovernorConfig.from_dict({
        "health_interval": INTERVAL, "signals": [
            {"kind": "callable", "callable": "tests.airflow.governor_knob:knob", "name": "knob", "hold_above": 1}]}))
    governor_knob.turn(5)
    assert governor_holds(tracker)
    return tracker


def batch_task(tracker: Tracker, defer_threshold: float) -> SpreadBatchOperator:
    task = SpreadBatchOperator(task_id="batches", batches=[], backfill=tracker.name, source_conn_id="unused",
                               work=lambda connection, begin_id, end_id: None)
    task.pause_poll_seconds = 0.05
    task.defer_threshold = defer_threshold
    return task


def test_a_hold_shorter_than_the_defer_threshold_is_waited_out_in_the_worker(held: Tracker) -> None:
    lowered: list[float] = []

    def lower() -> None:
        time.sleep(1.0)
        governor_knob.turn(0)
        lowered.append(time.monotonic())

    threading.Thread(target=lower, daemon=True).start()
    batch_task(held, defer_threshold=8).wait_out_hold(held)  # returns: TaskDeferred would fail the test
    back = time.monotonic()
    assert lowered and 0 <= back - lowered[0] < INTERVAL + 1.0, "the end of the hold was not seen within a check"
    assert not governor_holds(held)


def test_a_stop_ends_the_wait_at_once(held: Tracker) -> None:
    threading.Timer(0.5, held.stop).start()
    started = time.monotonic()
    batch_task(held, defer_threshold=8).wait_out_hold(held)
    assert time.monotonic() - started < 2 and governor_holds(held)  # still held: the stop ended the wait


def test_a_longer_hold_defers_for_at_least_the_minimum(held: Tracker) -> None:
    started = time.monotonic()
    with pytest.raises(TaskDeferred) as deferred:
        batch_task(held, defer_threshold=0.6).wait_out_hold(held)
    assert time.monotonic() - started >= 0.6  # waited in the worker first
    trigger = deferred.value.trigger
    assert isinstance(trigger, BackfillWaitTrigger) and trigger.wait_for == "healthy"
    assert deferred.value.method_name == "resume_after_pause"
    assert trigger.moment is not None
    not_before = trigger.moment - datetime.now(timezone.utc)
    assert timedelta(seconds=HOLD_MIN_SECONDS - 1) < not_before <= timedelta(seconds=HOLD_MIN_SECONDS)
    assert HOLD_MIN_SECONDS >= 10  # the deferring process's exit is reported up to ~5 s late, plus a loop
