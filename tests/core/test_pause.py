"""The pause decisions of a batch task (core/pause.py): no Airflow."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow_spreader.core.pause import PAUSE_CACHE_SECONDS, PausedReading, pause_step

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def test_a_paused_dag_starts_no_batch_it_waits() -> None:
    assert pause_step(NOW, paused=True, stopped=False, resumed_at=None) == "wait"
    assert pause_step(NOW, paused=True, stopped=False, resumed_at=NOW + timedelta(seconds=5)) == "wait"


def test_a_stop_wins_over_a_pause_the_start_hands_the_range_back() -> None:
    assert pause_step(NOW, paused=True, stopped=True, resumed_at=None) == "start"
    assert pause_step(NOW, paused=False, stopped=True, resumed_at=NOW + timedelta(seconds=5)) == "start"


def test_after_a_pause_the_batches_due_meanwhile_are_handed_back_not_burst() -> None:
    resumed = NOW + timedelta(seconds=30)
    assert pause_step(NOW, paused=False, stopped=False, resumed_at=resumed) == "hand_back"
    assert pause_step(resumed - timedelta(microseconds=1), paused=False, stopped=False,
                      resumed_at=resumed) == "hand_back"
    assert pause_step(resumed, paused=False, stopped=False, resumed_at=resumed) == "start"
    assert pause_step(resumed + timedelta(seconds=1), paused=False, stopped=False, resumed_at=resumed) == "start"


def test_without_a_pause_a_late_batch_still_starts() -> None:
    assert pause_step(NOW - timedelta(seconds=60), paused=False, stopped=False, resumed_at=None) == "start"


def test_a_paused_reading_is_trusted_for_at_most_a_second() -> None:
    reading = PausedReading(paused=True, read_at=100.0)
    assert reading.fresh(100.0) and reading.fresh(100.0 + PAUSE_CACHE_SECONDS - 0.01)
    assert not reading.fresh(100.0 + PAUSE_CACHE_SECONDS)
    assert not reading.fresh(99.0)  # a clock that went back: read again
