"""The governor's part in a batch task: ask before each batch start whether the backfill is held."""

from __future__ import annotations

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


def hold_trigger(backfill: str, redis_conn_id: str, poll_interval: float) -> BackfillWaitTrigger:
    """Fires when the hold ends, when a new check is due, or on a stop."""
    return BackfillWaitTrigger(backfill, redis_conn_id, None, wait_for="healthy",
                               poll_interval=poll_interval)
