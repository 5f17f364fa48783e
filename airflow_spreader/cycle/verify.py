"""Verification before "done": after the walk, count the rows still pending, a few spans per cycle.

A cycle whose walk is over plans no batch; its plan counts instead, from the verification cursor
down, one count query per span of ``span_batches x batch_size`` ids, at most one per batch slot of the
cycle (``per_second x duration``) and at most ``MAX_COUNTS_PER_CYCLE``: counting is throttled like the
batches, and each cycle's queries are few. The chain then starts the next cycle at this one's end,
until every span is counted: finished when nothing is pending, else incomplete (the final run fails).
After a redo the pass counts only the redone ranges (one query each), the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import Enum

from airflow_spreader.core.config import SpreadConfig
from airflow_spreader.core.planner import carve_ranges, slot_count
from airflow_spreader.sql.pending import PendingCount
from airflow_spreader.state.tracker import Tracker
from airflow_spreader.state.verification import PendingRange, Verification, VerificationState

#: Count queries one cycle runs at most, whatever its rate.
MAX_COUNTS_PER_CYCLE = 100
#: Default span of one count query, in batches: 100 x batch_size ids.
DEFAULT_SPAN_BATCHES = 100

#: Counts the pending rows of keys ``begin_id..end_id``.
Counter = Callable[[int, int], PendingCount]


class AfterWalk(str, Enum):
    """What the walk's end means once the verification is read."""

    FINISHED = "finished"  # verified (or no predicate): the backfill is done
    INCOMPLETE = "incomplete"  # counted to the bottom, rows remain: fail, saying where
    COUNT_MORE = "count_more"  # spans left to count: the next cycle counts


def after_walk(state: VerificationState | None) -> AfterWalk:
    """``state`` is None when the DAG has no ``pending`` predicate."""
    if state is None or state.verified:
        return AfterWalk.FINISHED
    return AfterWalk.INCOMPLETE if state.incomplete else AfterWalk.COUNT_MORE


def counts_this_cycle(config: SpreadConfig, begin_at: datetime) -> int:
    """One count per batch slot of the cycle, capped."""
    return min(slot_count(config.per_second(begin_at), config.duration), MAX_COUNTS_PER_CYCLE)


def verify_round(tracker: Tracker, count: Counter, config: SpreadConfig, begin_at: datetime, *,
                 span_batches: int = DEFAULT_SPAN_BATCHES) -> VerificationState | None:
    """Count this cycle's spans once the walk is over; None while it is not (nothing counted).

    The round is recorded only if no other plan counted meanwhile (the verification cursor is as read),
    so a span is never counted twice; memory is the round's spans with pending rows."""
    progress = tracker.progress()
    if not progress.finished or progress.max_id is None or progress.min_id is None:
        return None
    verification = Verification(tracker)
    state = verification.state()
    if state.complete:
        return state
    if state.cursor is None:
        verification.begin(progress.max_id)
        state = verification.state()
    cursor = progress.max_id if state.cursor is None else state.cursor
    limit = counts_this_cycle(config, begin_at)
    if state.recheck:  # a redo's pass: the redone ranges only
        left = [span for span in state.recheck if span.end_id <= cursor]
        spans, complete = left[:limit], len(left) <= limit
    else:
        spans = carve_ranges(cursor, config.batch_size * span_batches, limit, progress.min_id)
        complete = not spans or spans[-1].begin_id <= progress.min_id
    found = []
    for span in spans:
        counted = count(span.begin_id, span.end_id)
        if counted.rows and counted.min_id is not None and counted.max_id is not None:
            found.append(PendingRange(counted.min_id, counted.max_id, counted.rows))
    verification.record(cursor, spans[-1].begin_id - 1 if spans else cursor, complete, found)
    return verification.state()
