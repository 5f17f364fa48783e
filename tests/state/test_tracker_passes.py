"""Passes over the key (follow_new_rows): the state change at the bottom of a pass, on a real Redis."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timezone

import pytest
import redis

from airflow_spreader.state.passes import LookOutcome, Passes
from airflow_spreader.state.records import ClaimedBatch
from airflow_spreader.state.tracker import Tracker, TrackerError
from tests.conftest import ManualClock

BEGIN = datetime(2027, 1, 15, 8, tzinfo=timezone.utc)


def claim(tracker: Tracker, slots: int = 10, batch_size: int = 10) -> list[ClaimedBatch]:
    return tracker.claim_cycle(batch_size=batch_size, per_second=slots, duration=1, begin_at=BEGIN,
                               lease_seconds=3600).batches


def spans(batches: list[ClaimedBatch]) -> list[tuple[int, int]]:
    return [(b.begin_id, b.end_id) for b in batches]


def done(tracker: Tracker, batches: list[ClaimedBatch]) -> None:
    for batch in batches:
        tracker.begin(batch)
        tracker.complete(batch, rows=batch.size)


def never(reason: str) -> Callable[[], int | None]:
    def read() -> int | None:
        raise AssertionError(f"MAX read {reason}")
    return read


def test_new_rows_above_the_top_start_a_pass_over_exactly_them(tracker: Tracker) -> None:
    tracker.start(max_id=100)
    done(tracker, claim(tracker))
    assert tracker.progress().exhausted
    assert Passes(tracker).look(lambda: 130, max_passes=10) is LookOutcome.EXTENDED
    progress = tracker.progress()
    assert (progress.passes, progress.floor, progress.max_id, progress.cursor, progress.total_ids) == \
        (2, 101, 130, 130, 130)
    assert not progress.exhausted and not progress.finished
    assert spans(claim(tracker)) == [(121, 130), (111, 120), (101, 110)]  # clamped at the pass's floor
    assert claim(tracker) == []
    assert tracker.progress().exhausted


def test_a_look_with_nothing_new_ends_the_passes_and_changes_nothing_else(tracker: Tracker) -> None:
    tracker.start(max_id=50)
    done(tracker, claim(tracker))
    before = tracker.progress()
    assert Passes(tracker).look(lambda: 50, max_passes=10) is LookOutcome.CAUGHT_UP
    after = tracker.progress()
    assert after.looked_for_new_rows and after.passes == 1 and after.ids_left_above == 0
    assert (after.cursor, after.max_id, after.total_ids, after.finished) == (before.cursor, 50, 50, True)
    # Rows deleted at the top (MAX below it), or an emptied table, end the passes too.
    assert Passes(tracker).look(lambda: 40, max_passes=10) is LookOutcome.CAUGHT_UP
    assert Passes(tracker).look(lambda: None, max_passes=10) is LookOutcome.CAUGHT_UP
    assert tracker.progress().max_id == 50


def test_away_from_the_bottom_nothing_is_read(tracker: Tracker) -> None:
    tracker.start(max_id=1000)
    claim(tracker)
    assert Passes(tracker).look(never("before the bottom"), max_passes=10) is LookOutcome.NOT_AT_BOTTOM
    assert tracker.progress().passes == 1


def test_a_look_after_the_end_catches_up_again(tracker: Tracker) -> None:
    """A backfill triggered again after it ended looks again: new rows start one more pass."""
    tracker.start(max_id=20)
    done(tracker, claim(tracker))
    passes = Passes(tracker)
    assert passes.look(lambda: 20, max_passes=10) is LookOutcome.CAUGHT_UP
    assert passes.look(lambda: 25, max_passes=10) is LookOutcome.EXTENDED
    progress = tracker.progress()
    assert (progress.passes, progress.floor, progress.max_id, progress.looked_for_new_rows) == (2, 21, 25, False)
    assert spans(claim(tracker)) == [(21, 25)]


def test_the_pass_bound_ends_the_passes_and_reports_the_ids_left(tracker: Tracker) -> None:
    tracker.start(max_id=10)
    done(tracker, claim(tracker))
    passes = Passes(tracker)
    assert passes.look(lambda: 20, max_passes=2) is LookOutcome.EXTENDED
    done(tracker, claim(tracker))
    assert passes.look(lambda: 35, max_passes=2) is LookOutcome.BOUND
    progress = tracker.progress()
    assert (progress.passes, progress.max_id, progress.seen_max, progress.ids_left_above) == (2, 20, 35, 15)
    assert progress.finished and progress.looked_for_new_rows
    assert claim(tracker) == []


def test_a_stopped_backfill_looks_at_nothing(tracker: Tracker) -> None:
    tracker.start(max_id=10)
    done(tracker, claim(tracker))
    tracker.stop()
    assert Passes(tracker).look(never("while stopped"), max_passes=10) is LookOutcome.STOPPED
    assert tracker.progress().passes == 1


def test_a_look_before_the_start_is_refused(tracker: Tracker) -> None:
    with pytest.raises(TrackerError, match="has not started"):
        Passes(tracker).look(lambda: 5, max_passes=10)


def test_64_bit_tops_and_spans_stay_exact(tracker: Tracker) -> None:
    top = 2**62
    tracker.start(max_id=top, min_id=top - 9)
    done(tracker, claim(tracker, slots=1))
    assert Passes(tracker).look(lambda: 2**63 - 1, max_passes=10) is LookOutcome.EXTENDED
    progress = tracker.progress()
    assert (progress.floor, progress.max_id, progress.cursor) == (top + 1, 2**63 - 1, 2**63 - 1)
    assert progress.total_ids == 10 + (2**63 - 1 - top)
    assert spans(claim(tracker, slots=1, batch_size=3)) == [(2**63 - 3, 2**63 - 1)]


def test_a_completion_after_the_look_is_seen(tracker: Tracker, clock: ManualClock) -> None:
    """The chain ends only at a look made after the last batch: a later completion makes the look old."""
    tracker.start(max_id=20)
    first, second = claim(tracker)
    done(tracker, [first])
    clock.advance(1)
    assert Passes(tracker).look(lambda: 20, max_passes=10) is LookOutcome.CAUGHT_UP
    assert tracker.progress().looked_after_last_batch
    clock.advance(1)
    done(tracker, [second])
    assert not tracker.progress().looked_after_last_batch


@pytest.mark.parametrize("maxima", [(150, 150), (150, 160)])
def test_two_plans_racing_at_the_bottom_start_one_pass_and_plan_each_new_id_once(
        redis_url: str, backfill_name: str, maxima: tuple[int, int]) -> None:
    """Both read the walk at the bottom and MAX (held at a barrier inside the read, so that both commit
    after both read); one starts the pass, the other is refused, reads again and is no longer at the
    bottom. Then both claim until nothing is left: every new id exactly once."""
    Tracker(backfill_name, redis.Redis.from_url(redis_url)).start(max_id=100)
    setup = Tracker(backfill_name, redis.Redis.from_url(redis_url))
    done(setup, claim(setup))
    barrier = threading.Barrier(2, timeout=10)
    outcomes: list[LookOutcome] = []
    claimed: list[tuple[int, int]] = []
    lock = threading.Lock()

    def plan(newest: int) -> None:
        tracker = Tracker(backfill_name, redis.Redis.from_url(redis_url))

        def read() -> int:
            barrier.wait()
            return newest

        outcome = Passes(tracker).look(read, max_passes=10)
        mine: list[tuple[int, int]] = []
        while batches := claim(tracker, slots=2, batch_size=3):
            mine += spans(batches)
        with lock:
            outcomes.append(outcome)
            claimed.extend(mine)

    try:
        threads = [threading.Thread(target=plan, args=(newest,)) for newest in maxima]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        progress = setup.progress()
        assert sorted(outcomes) == sorted([LookOutcome.EXTENDED, LookOutcome.NOT_AT_BOTTOM])
        assert progress.passes == 2 and progress.max_id in maxima and progress.floor == 101
        ids = sorted(i for begin, end in claimed for i in range(begin, end + 1))
        assert ids == list(range(101, progress.max_id + 1))
        # The loser's higher MAX is not lost: the next look at the bottom starts a third pass for it.
        if progress.max_id < max(maxima):
            assert Passes(setup).look(lambda: max(maxima), max_passes=10) is LookOutcome.EXTENDED
            assert spans(claim(setup, slots=10)) == [(151, 160)]
    finally:
        setup.reset()
