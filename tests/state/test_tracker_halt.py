"""The halt record against a real Redis: a plan that failed for good says so until a plan succeeds or ``resume``."""

from __future__ import annotations

from datetime import datetime, timezone

from airflow_spreader.state.tracker import Tracker
from tests.conftest import ManualClock


def test_a_halt_is_recorded_read_and_cleared(tracker: Tracker, clock: ManualClock) -> None:
    tracker.start(max_id=100)
    assert tracker.halt() is None
    tracker.record_halt("ConfigError: invalid spreader configuration: batch_size=0: must be an integer >= 1")
    reason, at = tracker.halt() or ("", None)
    assert reason == "ConfigError: invalid spreader configuration: batch_size=0: must be an integer >= 1"
    assert at == datetime.fromtimestamp(clock.now, tz=timezone.utc)
    clock.now += 60
    tracker.record_halt("TableError: no table", at=clock.now)  # the latest failure wins
    assert tracker.halt() == ("TableError: no table", datetime.fromtimestamp(clock.now, tz=timezone.utc))
    tracker.clear_halt()
    assert tracker.halt() is None
    assert tracker.progress().cursor == 100  # the position is untouched


def test_a_halt_before_the_first_cycle_does_not_start_the_backfill(tracker: Tracker) -> None:
    tracker.record_halt("ConfigError: bad")
    assert not tracker.is_started()
    assert tracker.start(max_id=50) is True  # the first successful plan still captures the bounds
    assert tracker.progress().total_ids == 50
    halt = tracker.halt()
    assert halt is not None and halt[0] == "ConfigError: bad"  # a plan that succeeds clears it, not a start


def test_a_reset_forgets_the_halt(tracker: Tracker) -> None:
    tracker.start(max_id=10)
    tracker.record_halt("PoolMissingError: pool 'x' does not exist")
    tracker.reset()
    assert tracker.halt() is None
