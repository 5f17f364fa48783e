"""Poison rows isolated by bisection (state.quarantine), on a real Redis: cycles claimed and batches run by hand."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_spreader.core.planner import IdRange, carve_ranges
from airflow_spreader.core.split import Parked
from airflow_spreader.cycle.chain import ChainView
from airflow_spreader.cycle.model import CycleSummary
from airflow_spreader.state.quarantine import Quarantine
from airflow_spreader.state.records import ClaimedBatch
from airflow_spreader.state.tracker import Tracker
from tests.conftest import ManualClock


class Backfill:
    """Runs cycles against the tracker: a batch fails on its last try when it holds a poison key."""

    def __init__(self, tracker: Tracker, clock: ManualClock, batch_size: int, max_split_depth: int = 3) -> None:
        self.tracker, self.clock, self.batch_size = tracker, clock, batch_size
        self.quarantine = Quarantine(tracker, max_split_depth)
        self.done: Counter[int] = Counter()
        self.batches_run = 0

    def claim(self) -> list[ClaimedBatch]:
        claim = self.tracker.claim_cycle(batch_size=self.batch_size, per_second=50, duration=1, lease_seconds=60,
                                         begin_at=datetime.fromtimestamp(self.clock(), timezone.utc))
        self.clock.advance(1)
        return claim.batches

    def run(self, batch: ClaimedBatch, poison: set[int], *, tell_done: bool = True) -> None:
        assert self.tracker.begin(batch) == "run"
        self.batches_run += 1
        bad = sorted(k for k in poison if batch.begin_id <= k <= batch.end_id)
        if bad:
            self.quarantine.fail(batch, f"PoisonRow: row {bad[0]} is bad", final=True)
            return
        self.done.update(range(batch.begin_id, batch.end_id + 1))
        self.tracker.complete(batch, batch.size)
        if tell_done:
            self.quarantine.after_done(batch)

    def until_settled(self, poison: Iterable[int], cycles: int = 40) -> int:
        bad = set(poison)
        for cycle in range(cycles):
            batches = self.claim()
            if not batches and self.tracker.in_flight_count() == 0:
                return cycle
            for batch in batches:
                self.run(batch, bad)
        raise AssertionError(f"not settled after {cycles} cycles: {self.tracker.progress()}")


def test_three_poison_rows_are_quarantined_and_every_other_row_is_done_once(tracker: Tracker,
                                                                           clock: ManualClock) -> None:
    tracker.start(1000)
    backfill = Backfill(tracker, clock, batch_size=100)
    poison = {17, 500, 999}
    backfill.until_settled(poison)

    assert [(q.key, q.error, q.root) for q in backfill.quarantine.quarantined()] == [
        (17, "PoisonRow: row 17 is bad", IdRange(1, 100)), (500, "PoisonRow: row 500 is bad", IdRange(401, 500)),
        (999, "PoisonRow: row 999 is bad", IdRange(901, 1000))]
    assert set(backfill.done) == set(range(1, 1001)) - poison and set(backfill.done.values()) == {1}
    progress = tracker.progress()
    assert (progress.keys_quarantined, progress.ids_done, progress.batches_failed) == (3, 997, 0)
    assert not progress.finished and tracker.failed_ranges() == [] and backfill.quarantine.families() == []
    assert backfill.batches_run <= 10 + 3 * 2 * 7  # each poison row: two pieces a level, ceil(log2(100)) levels
    assert tracker.low_water_mark() == 999  # a checkpoint restored from here redoes the quarantined keys

    assert tracker.retry_failed_counts() == (0, 3)  # after the fix
    backfill.until_settled(poison=())
    assert set(backfill.done) == set(range(1, 1001)) and set(backfill.done.values()) == {1}
    progress = tracker.progress()
    assert progress.finished and progress.keys_quarantined == 0 and backfill.quarantine.count() == 0


def test_a_range_where_every_row_fails_stays_one_failed_range(tracker: Tracker, clock: ManualClock) -> None:
    tracker.start(300)
    backfill = Backfill(tracker, clock, batch_size=100, max_split_depth=2)
    backfill.until_settled(poison=range(101, 201))

    [failed] = tracker.failed_ranges()
    assert (failed.begin_id, failed.end_id, failed.error) == (101, 200, "PoisonRow: row 101 is bad")
    assert backfill.batches_run == 3 + 2 + 4  # the root, two halves, four quarters: then kept whole
    assert backfill.quarantine.count() == 0 and backfill.quarantine.families() == []
    progress = tracker.progress()
    assert (progress.batches_failed, progress.ids_failed, progress.ids_done, progress.in_flight) == (1, 100, 200, 0)
    assert set(backfill.done) == set(range(1, 101)) | set(range(201, 301))


@pytest.mark.parametrize("bad", [1, 35, 36, 70])
def test_one_bad_row_in_a_batch_of_70_costs_at_most_7_more_cycles_and_14_more_batches(
        tracker: Tracker, clock: ManualClock, bad: int) -> None:
    tracker.start(70)
    backfill = Backfill(tracker, clock, batch_size=70)
    assert backfill.until_settled(poison={bad}) <= 1 + 7
    assert backfill.batches_run <= 1 + 14
    assert [q.key for q in backfill.quarantine.quarantined()] == [bad] and len(backfill.done) == 69


def test_at_the_default_depth_a_batch_where_every_row_fails_costs_15_batches_over_4_cycles(
        tracker: Tracker, clock: ManualClock) -> None:
    tracker.start(70)
    backfill = Backfill(tracker, clock, batch_size=70)
    assert backfill.until_settled(poison=range(1, 71)) == 4
    assert backfill.batches_run == 1 + 2 + 4 + 8
    assert [(f.begin_id, f.end_id) for f in tracker.failed_ranges()] == [(1, 70)]


def test_a_small_range_where_every_row_fails_is_one_failed_range_not_its_keys(tracker: Tracker,
                                                                            clock: ManualClock) -> None:
    tracker.start(4)
    backfill = Backfill(tracker, clock, batch_size=4)
    backfill.until_settled(poison={1, 2, 3, 4})  # split down to single keys within the depth, none succeeded
    assert [(f.begin_id, f.end_id) for f in tracker.failed_ranges()] == [(1, 4)]
    assert backfill.quarantine.count() == 0 and tracker.progress().keys_quarantined == 0


def test_a_failing_range_of_one_key_is_quarantined(tracker: Tracker, clock: ManualClock) -> None:
    tracker.start(3)
    backfill = Backfill(tracker, clock, batch_size=1)
    backfill.until_settled(poison={2})
    assert [q.key for q in backfill.quarantine.quarantined()] == [2] and tracker.failed_ranges() == []
    assert set(backfill.done) == {1, 3}


def test_without_isolation_a_failed_range_is_kept_whole_at_once(tracker: Tracker, clock: ManualClock) -> None:
    tracker.start(200)
    backfill = Backfill(tracker, clock, batch_size=100, max_split_depth=0)
    backfill.until_settled(poison={150})
    assert [(f.begin_id, f.end_id) for f in tracker.failed_ranges()] == [(101, 200)]
    assert backfill.batches_run == 2


def run_pieces_lowest_first(backfill: Backfill, poison: set[int], tell_done: bool = True) -> list[IdRange]:
    batches = sorted(backfill.claim(), key=lambda b: b.begin_id)
    for batch in batches:
        backfill.run(batch, poison, tell_done=tell_done)
    return [b.id_range for b in batches]


def test_parked_pieces_are_split_on_once_a_sibling_succeeds(tracker: Tracker, clock: ManualClock) -> None:
    tracker.start(8)
    backfill = Backfill(tracker, clock, batch_size=8, max_split_depth=2)
    poison = {1, 3, 8}
    assert run_pieces_lowest_first(backfill, poison) == [IdRange(1, 8)]
    assert run_pieces_lowest_first(backfill, poison) == [IdRange(1, 4), IdRange(5, 8)]
    # Depth 2, no success yet: 1-2 and 3-4 are parked; then 5-6 succeeds, and they are split on.
    assert run_pieces_lowest_first(backfill, poison) == [IdRange(1, 2), IdRange(3, 4), IdRange(5, 6), IdRange(7, 8)]
    assert backfill.until_settled(poison) == 1
    assert [q.key for q in backfill.quarantine.quarantined()] == [1, 3, 8]
    assert set(backfill.done) == {2, 4, 5, 6, 7} and set(backfill.done.values()) == {1}


def test_the_chain_mends_a_family_whose_last_batch_died_before_its_step(tracker: Tracker,
                                                                       clock: ManualClock) -> None:
    tracker.start(4)
    backfill = Backfill(tracker, clock, batch_size=4, max_split_depth=1)
    poison = {1}
    run_pieces_lowest_first(backfill, poison)
    run_pieces_lowest_first(backfill, poison, tell_done=False)  # 1-2 parked; 3-4 done, but died before its step
    [family] = backfill.quarantine.families()
    assert family.parked == (Parked(IdRange(1, 2), 1, IdRange(1, 4)),) and tracker.in_flight_count() == 0
    summary = CycleSummary(datetime.fromtimestamp(clock(), timezone.utc), 1.0, 0.0, 1.0, False, 0, 0, 0, 0, 0,
                           False, False)
    view = ChainView.read(tracker, summary)  # settles first: 1-2 is split on
    assert view.progress.in_flight == 2 and sorted(tracker.in_flight()) == [IdRange(1, 1), IdRange(2, 2)]
    backfill.until_settled(poison)
    assert [q.key for q in backfill.quarantine.quarantined()] == [1] and set(backfill.done) == {2, 3, 4}


def test_a_piece_planned_again_after_its_lease_keeps_its_family(tracker: Tracker, clock: ManualClock) -> None:
    tracker.start(10)
    backfill = Backfill(tracker, clock, batch_size=10)
    run_pieces_lowest_first(backfill, {3})
    [lower, upper] = sorted(backfill.claim(), key=lambda b: b.begin_id)  # claimed, then the task dies
    clock.advance(120)
    again = {b.id_range: b for b in backfill.claim()}
    assert set(again) == {lower.id_range, upper.id_range}
    assert tracker.in_flight()[lower.id_range]["root"] == "1-10"
    assert tracker.in_flight()[lower.id_range]["depth"] == 1
    for batch in again.values():
        backfill.run(batch, {3})
    backfill.until_settled({3})
    assert [q.key for q in backfill.quarantine.quarantined()] == [3] and set(backfill.done.values()) == {1}


def test_siblings_failing_at_once_merge_their_root_exactly_once(tracker: Tracker, clock: ManualClock) -> None:
    """Two batches of one family settle at the same moment: the script's checks let one step win at a time."""
    for round_no in range(15):
        tracker.reset()
        tracker.start(4)
        backfill = Backfill(tracker, clock, batch_size=4, max_split_depth=1)
        run_pieces_lowest_first(backfill, {1, 2, 3, 4})
        pieces = backfill.claim()
        assert len(pieces) == 2
        for batch in pieces:
            assert tracker.begin(batch) == "run"
        start = threading.Barrier(2)

        def fail(batch: ClaimedBatch, start: threading.Barrier = start) -> None:
            quarantine = Quarantine(Tracker(tracker.name, tracker.redis, clock=clock), 1)
            start.wait()
            quarantine.fail(batch, "Boom: every row", final=True)

        threads = [threading.Thread(target=fail, args=(batch,)) for batch in pieces]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [(f.begin_id, f.end_id) for f in tracker.failed_ranges()] == [(1, 4)], round_no
        progress = tracker.progress()
        assert (progress.batches_failed, progress.ids_failed, progress.in_flight) == (1, 4, 0), round_no
        assert backfill.quarantine.families() == []


def test_a_half_where_every_row_fails_is_kept_whole_though_the_other_half_succeeded(tracker: Tracker,
                                                                                   clock: ManualClock) -> None:
    """Levels without a success count along each piece's lineage: 1-64 fails row after row, 65-128 is fine."""
    tracker.start(128)
    backfill = Backfill(tracker, clock, batch_size=128, max_split_depth=2)
    backfill.until_settled(poison=range(1, 65))
    assert [(f.begin_id, f.end_id) for f in tracker.failed_ranges()] == [(1, 64)]
    assert backfill.batches_run == 1 + 2 + 2 + 4  # not 127 batches quarantining 64 keys one by one
    assert backfill.quarantine.count() == 0 and backfill.quarantine.families() == []
    assert set(backfill.done) == set(range(65, 129)) and set(backfill.done.values()) == {1}
    progress = tracker.progress()
    assert (progress.batches_failed, progress.ids_failed, progress.ids_done) == (1, 64, 64)


@settings(max_examples=40)
@given(rows=st.integers(1, 80), batch_size=st.integers(1, 40), depth=st.integers(0, 4), data=st.data())
def test_every_row_ends_done_once_quarantined_or_in_a_failed_range(redis_url: str, rows: int, batch_size: int,
                                                                   depth: int, data: st.DataObject) -> None:
    """Any table, batch size, depth and set of poison rows (from none to all)."""
    poison = data.draw(st.sets(st.integers(1, rows), max_size=rows))
    clock = ManualClock()
    tracker = Tracker(f"test-{uuid.uuid4().hex[:12]}", redis.Redis.from_url(redis_url), clock=clock)
    try:
        tracker.start(rows)
        backfill = Backfill(tracker, clock, batch_size=batch_size, max_split_depth=depth)
        backfill.until_settled(poison, cycles=80)
        quarantined = {q.key for q in backfill.quarantine.quarantined()}
        failed = tracker.failed_ranges()
        in_failed = [i for f in failed for i in range(f.begin_id, f.end_id + 1)]
        assert set(backfill.done.values()) <= {1}, "a row was done twice"
        assert sorted([*backfill.done, *quarantined, *in_failed]) == list(range(1, rows + 1))
        assert quarantined <= poison and not set(backfill.done) & poison
        assert all(any(f.begin_id <= k <= f.end_id for k in poison) for f in failed)
        assert tracker.in_flight_count() == 0 and backfill.quarantine.families() == []
        progress = tracker.progress()
        assert (progress.ids_done, progress.keys_quarantined, progress.ids_failed) == (
            len(backfill.done), len(quarantined), len(in_failed))
        for batch in carve_ranges(rows, batch_size, rows):  # a batch where every row fails: one failed range
            if set(range(batch.begin_id, batch.end_id + 1)) <= poison and (batch.size > 1 or depth == 0):
                assert batch in [IdRange(f.begin_id, f.end_id) for f in failed]
        if depth == 0:
            assert quarantined == set() and backfill.batches_run == -(-rows // batch_size)
    finally:
        tracker.reset()
        tracker.redis.close()
