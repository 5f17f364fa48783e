"""What the chain task decides after a cycle's plan: trigger the next cycle, wait, or end the backfill.

The chain task reads a :class:`ChainView` of the tracker, asks :func:`decide_next`, and carries the
decision out (defer, sleep, trigger a DAG run, return, fail); after a wait it reads and decides again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any

from airflow_spreader.cycle.model import CycleSummary
from airflow_spreader.cycle.verify import AfterWalk, after_walk
from airflow_spreader.state.quarantine import Quarantine
from airflow_spreader.state.records import Progress
from airflow_spreader.state.tracker import Tracker
from airflow_spreader.state.verification import Verification, VerificationState

#: A later planned end than this cycle's, by more than this, means another run carries the chain.
SUPERSEDED_SLACK_SECONDS = 0.5


class Step(str, Enum):
    SUPERSEDED = "superseded"  # a later cycle was planned meanwhile: nothing to trigger
    WAIT_FOR_GO = "wait_for_go"  # stopped: wait (deferred) for `go`
    FOLLOW = "follow"  # at the bottom with follow_new_rows: start a cycle whose plan looks for new rows
    FINISHED = "finished"  # every id done: end the chain with the summary
    FAILED_RANGES_REMAIN = "failed_ranges_remain"  # only failed ranges (or quarantined keys) are left: fail
    SETTLE = "settle"  # nothing left to plan: wait for the ranges in flight, or their lease (``until``)
    WAIT = "wait"  # wait until ``until`` (with ``settled``: or until nothing is in flight), then decide again
    TRIGGER = "trigger"  # start the next cycle's DAG run now
    AGAIN = "again"  # the ranges in flight finished while we looked: decide again
    INCOMPLETE = "incomplete"  # verified to the bottom, rows still pending: fail, saying where
    COUNT_NEXT = "count_next"  # the walk is over, spans are left to count: start the next cycle (once a round)


@dataclass(frozen=True, slots=True)
class ChainView:
    """What the chain task reads of the tracker before deciding."""

    summary: CycleSummary
    progress: Progress
    planned_until: float | None
    lease_deadline: float | None
    #: None when the DAG has no ``pending`` predicate.
    verification: VerificationState | None = None

    @classmethod
    def read(cls, tracker: Tracker, summary: CycleSummary, *, verify: bool = False) -> ChainView:
        """Settles the bisections first: a family whose last batch died before its step is moved on here."""
        Quarantine(tracker).settle()
        return cls(summary, tracker.progress(), tracker.planned_until(), tracker.next_lease_deadline(),
                   Verification(tracker).state() if verify else None)


@dataclass(frozen=True, slots=True)
class ChainDecision:
    step: Step
    until: datetime | None = None
    settled: bool = False


def decide_next(view: ChainView, now: datetime) -> ChainDecision:
    """The chain's next step. Once every id is planned, an early next cycle has nothing to gain: it waits
    until the planned end instead, waking as soon as the last batch is done, so that the chain usually
    ends in this run; a cycle that found nothing left to plan waits for the ranges in flight, or for
    their lease (a range whose lease ran out starts one more cycle, which plans it again). With
    ``follow_new_rows`` the walk at the bottom starts one more cycle, whose plan reads the key's MAX, unless
    such a look already came after the last batch."""
    summary, progress = view.summary, view.progress
    end = summary.end_at
    if view.planned_until is not None and view.planned_until > end.timestamp() + SUPERSEDED_SLACK_SECONDS:
        return ChainDecision(Step.SUPERSEDED)
    if progress.stopped:
        return ChainDecision(Step.WAIT_FOR_GO)
    if summary.follow_new_rows and progress.exhausted and progress.in_flight == 0 \
            and not progress.looked_after_last_batch:
        return ChainDecision(Step.FOLLOW)  # the passes end only at a look made after the last batch
    if progress.finished:
        return _after_walk(view, end, now)
    if progress.exhausted and progress.in_flight == 0:
        return ChainDecision(Step.FAILED_RANGES_REMAIN)
    if summary.batches == 0 and progress.exhausted:
        if view.lease_deadline is None:
            return ChainDecision(Step.AGAIN)
        due = datetime.fromtimestamp(view.lease_deadline, timezone.utc)
        return ChainDecision(Step.SETTLE, until=due) if due > now else ChainDecision(Step.TRIGGER)
    lead = 0.0 if progress.exhausted else summary.lead_seconds
    trigger_at = end - timedelta(seconds=lead)
    if trigger_at > now:
        return ChainDecision(Step.WAIT, until=trigger_at, settled=progress.exhausted)
    return ChainDecision(Step.TRIGGER)


def _after_walk(view: ChainView, end: datetime, now: datetime) -> ChainDecision:
    """Every range is done: finished, unless the verification has spans left (counted by the next cycle,
    begun at this one's end) or found rows pending."""
    outcome = after_walk(view.verification)
    if outcome is AfterWalk.FINISHED:
        return ChainDecision(Step.FINISHED)
    if outcome is AfterWalk.INCOMPLETE:
        return ChainDecision(Step.INCOMPLETE)
    return ChainDecision(Step.WAIT, until=end) if end > now else ChainDecision(Step.COUNT_NEXT)


def final_summary(progress: Progress, now: datetime,
                  verification: VerificationState | None = None) -> dict[str, Any]:
    """The final account of a backfill, for the log and XCom (with the verification's, if any)."""
    wall = (now - progress.started_at).total_seconds() if progress.started_at else 0.0
    summary: dict[str, Any] = {
        "backfill": progress.name, "ids": progress.ids_done, "rows": progress.rows_done,
        "batches": progress.batches_done, "failed_batches": progress.batches_failed,
        "errors": progress.errors, "cycles": progress.cycles, "passes": progress.passes,
        "ids_left_above": progress.ids_left_above, "wall_seconds": round(wall, 1),
        "ids_per_second": round(progress.ids_done / wall, 2) if wall > 0 else None,
        "batching": progress.batching, "rows_per_second": round(progress.rows_done / wall, 2) if wall > 0 else None,
    }
    if verification is not None:
        summary.update(verified=verification.verified, pending_rows=verification.pending_rows,
                       pending_ranges=[p.to_dict() for p in verification.pending[:100]])
    return summary
