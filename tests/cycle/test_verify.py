"""Counting the pending rows after the walk, a few spans per cycle, and what the chain makes of it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow_spreader.core.config import SpreadConfig
from airflow_spreader.cycle.chain import ChainView, Step, decide_next
from airflow_spreader.cycle.model import CycleSummary
from airflow_spreader.cycle.verify import MAX_COUNTS_PER_CYCLE, counts_this_cycle, verify_round
from airflow_spreader.sql.pending import PendingCount
from airflow_spreader.state.tracker import Tracker
from airflow_spreader.state.verification import PendingRange, Verification

NOW = datetime.fromtimestamp(1_800_000_000.0, timezone.utc)
PENDING = {33, 34, 150, 990}


def config(per_second: float, duration: float = 2) -> SpreadConfig:
    return SpreadConfig.from_dict({"batch_size": 10, "duration": duration, "per_second_on_peak": per_second,
                                   "per_second_off_peak": per_second})


class Counter:
    """Counts the ids of PENDING in a span, as count_pending would, and records every span asked."""

    def __init__(self) -> None:
        self.spans: list[tuple[int, int]] = []

    def __call__(self, begin_id: int, end_id: int) -> PendingCount:
        self.spans.append((begin_id, end_id))
        found = sorted(i for i in PENDING if begin_id <= i <= end_id)
        return PendingCount(len(found), found[0] if found else None, found[-1] if found else None)


def walk_to_the_end(tracker: Tracker) -> None:
    tracker.start(max_id=1000)
    while True:
        claim = tracker.claim_cycle(batch_size=100, per_second=100, duration=1, begin_at=NOW, lease_seconds=60)
        if not claim.batches:
            return
        for batch in claim.batches:
            tracker.begin(batch)
            tracker.complete(batch)


def summary(begin_at: datetime) -> CycleSummary:
    return CycleSummary(begin_at=begin_at, duration=2, lead_seconds=1, per_second=2.0, on_peak=False, batches=0,
                        replanned=0, task_instances=0, cursor_before=0, cursor_after=0, stopped=False, finished=True)


def test_nothing_is_counted_before_the_walk_is_over(tracker: Tracker) -> None:
    tracker.start(max_id=1000)
    count = Counter()
    assert verify_round(tracker, count, config(2), NOW) is None and count.spans == []


def test_each_cycle_counts_one_span_per_batch_slot_from_the_top_down(tracker: Tracker) -> None:
    walk_to_the_end(tracker)
    count = Counter()
    state = verify_round(tracker, count, config(2), NOW, span_batches=5)  # 4 slots, spans of 50 ids
    assert count.spans == [(951, 1000), (901, 950), (851, 900), (801, 850)]
    assert state is not None and (state.cursor, state.complete, state.pending_rows) == (800, False, 1)
    while not state.complete:
        state = verify_round(tracker, count, config(2), NOW, span_batches=5)
        assert state is not None
    assert len(count.spans) == 20 and state.rounds == 5, "1000 ids in spans of 50, 4 a cycle"
    assert state.pending == (PendingRange(990, 990, 1), PendingRange(150, 150, 1), PendingRange(33, 34, 2))
    assert verify_round(tracker, count, config(2), NOW) == state and len(count.spans) == 20, "counted once"


def test_after_a_redo_the_pass_counts_only_the_redone_ranges(tracker: Tracker) -> None:
    walk_to_the_end(tracker)
    count = Counter()
    state = verify_round(tracker, count, config(100), NOW, span_batches=5)
    while state is not None and not state.complete:
        state = verify_round(tracker, count, config(100), NOW, span_batches=5)
    assert state is not None and state.pending_rows == 4
    Verification(tracker).redo(batch_size=10)
    for batch in tracker.claim_cycle(batch_size=10, per_second=100, duration=1, begin_at=NOW,
                                     lease_seconds=60).batches:
        tracker.begin(batch)
        tracker.complete(batch)
    PENDING.discard(990)  # the redo did that one; 33, 34 and 150 are still pending
    try:
        count.spans.clear()
        state = verify_round(tracker, count, config(1), NOW)  # 2 counts a cycle
        assert state is not None and count.spans == [(990, 990), (150, 150)] and not state.complete
        state = verify_round(tracker, count, config(1), NOW)
        assert state is not None and count.spans[2:] == [(33, 34)] and state.complete
        assert state.pending == (PendingRange(150, 150, 1), PendingRange(33, 34, 2)) and state.pending_rows == 3
    finally:
        PENDING.add(990)


def test_counts_per_cycle_are_capped_whatever_the_rate() -> None:
    assert counts_this_cycle(config(0.5, duration=3), NOW) == 2
    assert counts_this_cycle(config(1000, duration=20), NOW) == MAX_COUNTS_PER_CYCLE


def test_the_chain_counts_on_fails_incomplete_or_finishes(tracker: Tracker) -> None:
    walk_to_the_end(tracker)
    cycle = summary(NOW)
    view = ChainView.read(tracker, cycle, verify=True)
    assert decide_next(view, NOW).step is Step.WAIT and decide_next(view, NOW).until == cycle.end_at
    assert decide_next(view, cycle.end_at + timedelta(seconds=1)).step is Step.COUNT_NEXT
    assert decide_next(ChainView.read(tracker, cycle), NOW).step is Step.FINISHED, "no predicate: finished"

    verification = Verification(tracker)
    verification.begin(1000)
    verification.record(1000, 0, True, [PendingRange(5, 6, 2)])
    assert decide_next(ChainView.read(tracker, cycle, verify=True), NOW).step is Step.INCOMPLETE

    other = Tracker(f"{tracker.name}-b", tracker.redis, clock=tracker.clock)
    try:
        walk_to_the_end(other)
        Verification(other).begin(1000)
        Verification(other).record(1000, 0, True, [])
        assert decide_next(ChainView.read(other, cycle, verify=True), NOW).step is Step.FINISHED
    finally:
        other.reset()
