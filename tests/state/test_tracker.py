"""The tracker against a real Redis: claiming, checkpointing on completion, stop/go, leases."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import redis

from airflow_spreader.core.planner import IdRange, plan_cycle
from airflow_spreader.state.records import ClaimedBatch
from airflow_spreader.state.tracker import Tracker, TrackerError

T = datetime.fromtimestamp(1_800_000_000, tz=timezone.utc)  # the ManualClock start


def claim(tracker: Tracker, *, batch_size: int = 5, per_second: float = 1, duration: float = 4,
          lease: float = 600, at: datetime = T) -> list[ClaimedBatch]:
    return tracker.claim_cycle(batch_size=batch_size, per_second=per_second, duration=duration,
                               begin_at=at, lease_seconds=lease).batches


def spans(batches: list[ClaimedBatch]) -> list[tuple[int, int]]:
    return [(b.begin_id, b.end_id) for b in batches]


def test_first_cycle_is_the_planners_cycle(tracker: Tracker) -> None:
    tracker.start(max_id=22)
    batches = tracker.claim_cycle(batch_size=5, per_second=1, duration=30, begin_at=T,
                                  lease_seconds=600).batches
    assert [b.as_batch() for b in batches] == plan_cycle(22, 5, 1, 30, T)
    assert len({b.token for b in batches}) == len(batches)


def test_bounds_are_captured_once(tracker: Tracker) -> None:
    assert tracker.start(max_id=100, min_id=3) is True
    assert tracker.start(max_id=999, min_id=1) is False
    progress = tracker.progress()
    assert (progress.cursor, progress.min_id, progress.max_id, progress.total_ids) == (100, 3, 100, 98)
    assert tracker.name in Tracker.names(tracker.redis)


def test_claiming_before_start_is_refused(tracker: Tracker) -> None:
    with pytest.raises(TrackerError, match="has not started"):
        claim(tracker)


def test_cycles_walk_down_to_min_id_then_plan_nothing(tracker: Tracker) -> None:
    tracker.start(max_id=23, min_id=4)
    first, second = claim(tracker), claim(tracker)
    assert spans(first) == [(19, 23), (14, 18), (9, 13), (4, 8)]
    assert second == []
    assert tracker.progress().exhausted and not tracker.progress().finished
    for batch in first:
        assert tracker.begin(batch) == "run"
        assert tracker.complete(batch, rows=batch.size) == "done"
    progress = tracker.progress()
    assert progress.finished
    assert (progress.ids_done, progress.batches_done, progress.rows_done, progress.in_flight) == (20, 4, 20, 0)


def test_completion_marks_survive_a_new_tracker_object(tracker: Tracker, redis_url: str) -> None:
    tracker.start(max_id=40)
    batches = claim(tracker)
    for batch in batches[:2]:
        tracker.begin(batch)
        tracker.complete(batch)
    other = Tracker(tracker.name, redis.Redis.from_url(redis_url))
    assert other.progress().batches_done == 2
    assert other.begin(batches[0]) == "gone"
    assert other.begin(batches[2]) == "run"
    assert set(other.in_flight()) == {b.id_range for b in batches[2:]}


def test_stop_mid_cycle_then_go_replans_exactly_the_unfinished_ranges(tracker: Tracker) -> None:
    tracker.start(max_id=1000)
    batches = claim(tracker, batch_size=10, per_second=2, duration=5)
    assert len(batches) == 10
    for batch in batches[:4]:
        tracker.begin(batch)
        tracker.complete(batch)
    tracker.stop()
    assert [tracker.begin(b) for b in batches[4:]] == ["stopped"] * 6
    stopped_claim = tracker.claim_cycle(batch_size=10, per_second=2, duration=5, begin_at=T, lease_seconds=600)
    assert stopped_claim.stopped and stopped_claim.batches == []
    tracker.go()
    resumed = claim(tracker, batch_size=10, per_second=2, duration=5)
    assert spans(resumed[:6]) == spans(batches[4:])
    assert all(b.replanned for b in resumed[:6]) and not any(b.replanned for b in resumed[6:])
    assert spans(resumed[6:]) == [(891, 900), (881, 890), (871, 880), (861, 870)]
    assert [tracker.begin(b) for b in batches[4:]] == ["superseded"] * 6


def test_unfinished_ranges_are_replanned_once_their_lease_expires(tracker: Tracker, clock) -> None:
    tracker.start(max_id=100)
    lost = claim(tracker, lease=60)
    assert tracker.begin(lost[0]) == "run"  # started, then the worker died
    clock.advance(30)
    assert all(not b.replanned for b in claim(tracker, lease=60, at=T + timedelta(seconds=30)))
    clock.advance(31 + 60)  # past run_at + lease for the never-started ones and start + lease for lost[0]
    again = claim(tracker, lease=60, at=T + timedelta(seconds=200), duration=10)
    assert {b.id_range for b in again if b.replanned} >= {b.id_range for b in lost}
    assert tracker.begin(lost[1]) == "superseded"


def test_a_started_batch_keeps_its_range_while_its_lease_runs(tracker: Tracker, clock) -> None:
    tracker.start(max_id=100)
    batch = claim(tracker, lease=60, duration=1)[0]
    clock.advance(50)
    assert tracker.begin(batch) == "run"  # the lease now runs from the start
    clock.advance(30)
    assert not any(b.replanned for b in claim(tracker, lease=60, duration=1, at=T + timedelta(seconds=80)))


def test_failures_are_retried_then_kept_with_their_error(tracker: Tracker) -> None:
    tracker.start(max_id=30)
    batch, other = claim(tracker, batch_size=10, duration=2)
    tracker.begin(batch)
    assert tracker.fail(batch, "boom 1", final=False) == "retry"
    assert tracker.fail(batch, "boom 2", final=True) == "failed"
    tracker.begin(other)
    tracker.complete(other)
    [failed] = tracker.failed_ranges()
    assert (failed.begin_id, failed.end_id, failed.error, failed.attempts) == (21, 30, "boom 2", 2)
    progress = tracker.progress()
    assert (progress.batches_failed, progress.ids_failed, progress.errors) == (1, 10, 2)
    assert tracker.begin(batch) == "gone"

    assert tracker.retry_failed() == 1
    assert tracker.failed_ranges() == []
    rerun = claim(tracker, batch_size=10, duration=2)
    assert spans(rerun) == [(21, 30), (1, 10)]
    assert rerun[0].replanned and tracker.in_flight()[IdRange(21, 30)]["attempts"] == 2


def test_memory_stays_bounded_by_work_in_flight(tracker: Tracker) -> None:
    tracker.start(max_id=100_000)
    for _ in range(20):
        for batch in claim(tracker, batch_size=100, per_second=10, duration=5):
            tracker.begin(batch)
            tracker.complete(batch)
    assert tracker.progress().batches_done == 1000
    keys = list(tracker.redis.scan_iter(match=f"spreader:{{{tracker.name}}}:*"))
    assert len(keys) <= len(tracker.keys.all())
    assert tracker.redis.hlen(tracker.keys.inflight) == 0
    assert tracker.redis.zcard(tracker.keys.leases) == 0


def test_reset_forgets_everything(tracker: Tracker) -> None:
    tracker.start(max_id=50)
    claim(tracker)
    tracker.stop()
    tracker.reset()
    assert not tracker.is_started() and not tracker.is_stopped()
    assert list(tracker.redis.scan_iter(match=f"spreader:{{{tracker.name}}}:*")) == []
    assert tracker.name not in Tracker.names(tracker.redis)


def test_each_start_opens_a_generation_unless_it_continues_one(tracker: Tracker) -> None:
    assert tracker.generation() is None
    tracker.start(max_id=50)
    first = tracker.generation()
    assert first and len(first) == 32
    tracker.start(max_id=80)  # a later start keeps the first bounds, and the generation
    assert tracker.generation() == first
    tracker.reset()
    tracker.start(max_id=50)
    assert tracker.generation() not in (None, first), "a run after a reset must not reuse the done-ledger's marks"
    tracker.reset()
    tracker.start(max_id=30, generation=first)  # a restore from the checkpoint continues the run
    assert tracker.generation() == first


def test_empty_table_is_finished_at_once(tracker: Tracker) -> None:
    tracker.start(max_id=0, min_id=1)
    assert claim(tracker) == []
    assert tracker.progress().finished


def test_set_cursor_limits_the_walk(tracker: Tracker) -> None:
    tracker.start(max_id=1000)
    tracker.set_cursor(12)
    assert spans(claim(tracker, batch_size=5, duration=10)) == [(8, 12), (3, 7), (1, 2)]


@pytest.mark.parametrize("name", ["", "a b", "x:{y}", "-lead", "é"])
def test_names_are_restricted_to_a_safe_alphabet(name: str, redis_client: redis.Redis) -> None:
    with pytest.raises(ValueError, match="invalid backfill name"):
        Tracker(name, redis_client)


def test_a_preview_plans_what_a_claim_would_and_claims_nothing(tracker: Tracker) -> None:
    tracker.start(max_id=100)
    preview = tracker.preview_cycle(batch_size=10, per_second=1, duration=3, begin_at=T)
    assert spans(preview.batches) == [(91, 100), (81, 90), (71, 80)] and preview.cursor_after == 70
    assert tracker.progress().cursor == 100 and tracker.in_flight() == {}
    assert spans(claim(tracker, batch_size=10, duration=3)) == spans(preview.batches)


def test_a_batch_that_failed_in_this_attempt_waits_for_the_retry(tracker: Tracker) -> None:
    tracker.start(max_id=10)
    [batch] = claim(tracker, batch_size=10, duration=1)
    assert tracker.begin(batch, attempt="run/0/1") == "run"
    assert tracker.fail(batch, "boom", final=False, attempt="run/0/1") == "retry"
    assert tracker.begin(batch, attempt="run/0/1") == "failed-this-try"
    assert tracker.begin(batch, attempt="run/0/2") == "run"


def tiled(tracker: Tracker, at: datetime, duration: float = 10) -> tuple[datetime | None, list[ClaimedBatch]]:
    claimed = tracker.claim_cycle(batch_size=5, per_second=1, duration=duration, begin_at=at, lease_seconds=600,
                                  after_previous=True)
    return claimed.begin_at, claimed.batches


def test_a_cycle_planned_early_begins_where_the_previous_one_ends(tracker: Tracker) -> None:
    tracker.start(max_id=1000)
    begin, first = tiled(tracker, T)
    assert begin == T and first[0].run_at == T
    assert tracker.planned_until() == (T + timedelta(seconds=10)).timestamp()
    begin, second = tiled(tracker, T + timedelta(seconds=4))  # the next run was started 6 s early
    assert begin == T + timedelta(seconds=10)
    assert [b.run_at for b in second] == [T + timedelta(seconds=10 + k) for k in range(10)]
    assert first[-1].run_at < second[0].run_at, "two cycles overlap in time: the rate would double"
    begin, third = tiled(tracker, T + timedelta(seconds=60))  # after a pause: no waiting for the past
    assert begin == T + timedelta(seconds=60) and third[0].run_at == begin


def test_without_after_previous_a_cycle_begins_when_asked(tracker: Tracker) -> None:
    tracker.start(max_id=1000)
    tiled(tracker, T)
    claimed = tracker.claim_cycle(batch_size=5, per_second=1, duration=10, begin_at=T + timedelta(seconds=4),
                                  lease_seconds=600)
    assert claimed.begin_at == T + timedelta(seconds=4) == claimed.batches[0].run_at


def test_a_preview_shows_the_tiled_begin_and_claims_nothing(tracker: Tracker) -> None:
    tracker.start(max_id=1000)
    tiled(tracker, T)
    preview = tracker.preview_cycle(batch_size=5, per_second=1, duration=10, begin_at=T, after_previous=True)
    assert preview.begin_at == T + timedelta(seconds=10) == preview.batches[0].run_at
    assert tracker.planned_until() == (T + timedelta(seconds=10)).timestamp()
    assert tracker.progress().batches_planned == 10


def test_a_second_planner_asking_for_the_same_moment_gets_the_next_cycle(tracker: Tracker) -> None:
    """A double trigger: the second cycle follows the first instead of doubling the rate (the race itself:
    tests/state/test_tracker_races.py)."""
    tracker.start(max_id=1000)
    other = Tracker(tracker.name, redis.Redis(connection_pool=tracker.redis.connection_pool), clock=tracker.clock)
    begins = sorted(begin for begin, _ in (tiled(tracker, T), tiled(other, T)) if begin is not None)
    assert begins == [T, T + timedelta(seconds=10)]
