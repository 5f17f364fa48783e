"""Pausing the DAG inside a batch task: the decisions, no Airflow.

A paused DAG starts no new batch. A task instance that sleeps between its batches asks before each
start whether its DAG is paused; if so it defers (the scheduler does not queue it again until the
unpause). Batches whose moment passed during the pause are handed back to the tracker instead of run
in a burst: the next cycle plans them first, at the configured rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

#: Seconds a read of the DAG's paused flag is trusted: at most one Task SDK call per second.
PAUSE_CACHE_SECONDS = 1.0
#: Seconds before a batch's moment that its task asks whether to start it (stopped, held, paused), then sleeps
#: the rest: the answers' round trips (seconds on a loaded machine) no longer delay the start. The price: a
#: pause or a hold that lands in that last half second does not stop that one batch.
PREPARE_SECONDS = 0.5

PauseStep = Literal["start", "wait", "hold", "hand_back"]


def pause_step(run_at: datetime, *, paused: bool, stopped: bool, resumed_at: datetime | None,
               held: bool = False) -> PauseStep:
    """What to do with a batch now due: ``start`` it, ``wait`` (defer) while the DAG is paused, ``hold``
    (defer) while the governor holds the backfill, or ``hand_back`` a batch whose moment passed before
    ``resumed_at`` (the end of a pause or a hold of this task).

    A stop wins over a pause and a hold: the batch goes on to its start, which hands the range back untouched.
    """
    if stopped:
        return "start"
    if paused:
        return "wait"
    if held:
        return "hold"
    if resumed_at is not None and run_at < resumed_at:
        return "hand_back"
    return "start"


@dataclass(frozen=True)
class PausedReading:
    """One read of the paused flag, at ``read_at`` (monotonic seconds)."""

    paused: bool
    read_at: float

    def fresh(self, now: float, max_age: float = PAUSE_CACHE_SECONDS) -> bool:
        return 0 <= now - self.read_at < max_age
