"""The verification's state in Redis: rounds recorded once, pending ranges redone exactly, one announcement."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from airflow_spreader.core.planner import IdRange
from airflow_spreader.state.tracker import Tracker
from airflow_spreader.state.verification import PendingRange, RedoRefused, Verification, ledger_generation

NOW = datetime.fromtimestamp(1_800_000_000.0, timezone.utc)


def walk_to_the_end(tracker: Tracker, max_id: int = 100) -> None:
    """Every range planned and done."""
    tracker.start(max_id=max_id)
    claim = tracker.claim_cycle(batch_size=10, per_second=100, duration=1, begin_at=NOW, lease_seconds=60)
    for batch in claim.batches:
        assert tracker.begin(batch) == "run"
        tracker.complete(batch, rows=batch.size)
    assert tracker.progress().finished


def counted(tracker: Tracker, found: list[PendingRange]) -> Verification:
    """One round that counts the whole table (ids 1-100) and finds ``found``."""
    verification = Verification(tracker)
    verification.begin(100)
    assert verification.record(100, 0, True, found)
    return verification


def test_a_round_is_recorded_only_from_the_cursor_it_was_counted_from(tracker: Tracker) -> None:
    walk_to_the_end(tracker)
    verification = Verification(tracker)
    verification.begin(100)
    verification.begin(70)  # kept: the pass has begun
    assert verification.record(100, 60, False, [PendingRange(75, 80, 2)])
    assert not verification.record(100, 60, False, [PendingRange(75, 80, 2)]), "a second plan counted the same spans"
    state = verification.state()
    assert (state.cursor, state.complete, state.pending_rows, state.rounds) == (60, False, 2, 1)
    assert verification.record(60, 0, True, [PendingRange(3, 9, 4)])
    state = verification.state()
    assert state.complete and state.incomplete and not state.verified
    assert state.pending == (PendingRange(75, 80, 2), PendingRange(3, 9, 4))
    assert state.describe() == "6 rows pending in these ranges: 75-80 (2), 3-9 (4)"


def test_redo_plans_exactly_the_pending_ranges_cut_into_batches_and_starts_a_new_pass(tracker: Tracker) -> None:
    walk_to_the_end(tracker)
    verification = counted(tracker, [PendingRange(75, 98, 5), PendingRange(3, 3, 1)])
    generation = tracker.generation()
    assert ledger_generation(tracker) == generation

    pieces = verification.redo(batch_size=10)
    assert pieces == [IdRange(89, 98), IdRange(79, 88), IdRange(75, 78), IdRange(3, 3)]
    assert set(tracker.in_flight()) == set(pieces)
    progress = tracker.progress()
    assert progress.ids_done == 100 - 25 and not progress.finished
    state = verification.state()
    assert (state.cursor, state.complete, state.pending, state.passes) == (None, False, (), 1)
    assert state.recheck == (IdRange(75, 98), IdRange(3, 3)), "the next pass counts those ranges again"
    assert ledger_generation(tracker) == f"{generation}.redo1", "the redo's batches get ledger rows of their own"

    claim = tracker.claim_cycle(batch_size=10, per_second=100, duration=1, begin_at=NOW, lease_seconds=60)
    assert [b.id_range for b in claim.batches] == pieces and all(b.replanned for b in claim.batches)


def test_redo_is_refused_before_the_end_of_the_count_with_nothing_pending_or_with_ranges_in_flight(
        tracker: Tracker) -> None:
    walk_to_the_end(tracker)
    verification = Verification(tracker)
    verification.begin(100)
    with pytest.raises(RedoRefused, match="not verified yet"):
        verification.redo(10)
    assert verification.record(100, 0, True, [])
    assert verification.state().verified
    with pytest.raises(RedoRefused, match="no rows pending"):
        verification.redo(10)

    other = Tracker(f"{tracker.name}-b", tracker.redis, clock=tracker.clock)
    try:
        walk_to_the_end(other)
        busy = counted(other, [PendingRange(5, 5, 1)])
        assert busy.redo(10) == [IdRange(5, 5)]
        with pytest.raises(RedoRefused, match="not verified yet"):  # the redo's pass counts again first
            busy.redo(10)
        counted(other, [PendingRange(5, 5, 1)])  # counted again (by hand) before the redone range was run
        with pytest.raises(RedoRefused, match="ranges in flight"):
            busy.redo(10)
        assert set(other.in_flight()) == {IdRange(5, 5)}
    finally:
        other.reset()


def test_the_finish_is_announced_once_and_each_round_starts_one_next_cycle(tracker: Tracker) -> None:
    walk_to_the_end(tracker)
    verification = Verification(tracker)
    assert verification.start_next(0) and not verification.start_next(0), "two chains, one next cycle"
    assert verification.start_next(1)
    assert verification.announce() and not verification.announce()
    tracker.reset()
    assert Verification(tracker).state() == Verification(tracker).state().__class__(
        wanted=False, cursor=None, complete=False, pending_rows=0, pending=(), rounds=0, passes=0, next_for=None,
        announced=False, recheck=()), "reset forgets the verification too"
