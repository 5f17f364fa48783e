"""The governor's part in a batch task: ask before each batch start whether the backfill is held."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_spreader.hooks.governor import Governor
from airflow_spreader.state.tracker import Tracker
from airflow_spreader.triggers.backfill_wait import BackfillWaitTrigger


def governor_holds(tracker: Tracker, log: Any = None) -> bool:
    """True while the governor holds the backfill (a signal above hold_above, or a failed check).

    A governor's stop sets the tracker's stop flag, which the batch's start then sees.
    """
    verdict = Governor(tracker.redis, tracker.name, log).verdict()
    return verdict is not None and verdict.decision == "hold"


#: A held task that defers (a hold longer than its defer_threshold; shorter ones are waited out in the worker)
#: stays deferred at least this long (a stop still wakes it at once). Under a real scheduler a trigger firing
#: within seconds of the deferral races the executor's report of the deferring process's exit, up to ~5 s
#: late on a loaded machine: the scheduler then sees "finished with state success" for a task it has queued
#: again and fails it (apache/airflow#67287; seen in tests/scheduler), stranding its batches until their lease.
HOLD_MIN_SECONDS = 10.0


def hold_trigger(backfill: str, redis_conn_id: str, poll_interval: float) -> BackfillWaitTrigger:
    """Fires when the hold ends, when a new check is due, or on a stop; not before HOLD_MIN_SECONDS."""
    not_before = datetime.now(timezone.utc) + timedelta(seconds=HOLD_MIN_SECONDS)
    return BackfillWaitTrigger(backfill, redis_conn_id, not_before, wait_for="healthy",
                               poll_interval=poll_interval)
