"""The tracker at the edges (issue 13): wide and negative keys, the low-water read, fencing, lost attempts."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import Any

import pytest
import redis

from airflow_spreader.core.planner import IdRange
from airflow_spreader.state.keys import validate_name
from airflow_spreader.state.records import BeginState, ClaimedBatch
from airflow_spreader.state.tracker import Tracker
from tests.conftest import ManualClock

T = datetime.fromtimestamp(1_800_000_000, tz=timezone.utc)


def claim(tracker: Tracker, *, batch_size: int, slots: int = 4, lease: float = 600) -> list[ClaimedBatch]:
    return tracker.claim_cycle(batch_size=batch_size, per_second=1, duration=slots, begin_at=T,
                               lease_seconds=lease).batches


def run_all(tracker: Tracker, batch_size: int, slots: int = 4) -> Counter[int]:
    """Claim and complete until nothing is left; count how often each id ran."""
    seen: Counter[int] = Counter()
    while batches := claim(tracker, batch_size=batch_size, slots=slots):
        for batch in batches:
            assert tracker.begin(batch) == "run"
            seen.update(range(batch.begin_id, batch.end_id + 1))
            assert tracker.complete(batch, rows=batch.size) == "done"
    return seen


def test_a_name_ending_in_a_newline_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid backfill name 'orders\\\\n'"):
        validate_name("orders\n")
    assert validate_name("orders") == "orders"


@pytest.mark.parametrize(("text", "expected"), [
    ("-149--50", IdRange(-149, -50)), ("-5-7", IdRange(-5, 7)), ("1-100", IdRange(1, 100)),
    (str(IdRange(-2**63, 2**63 - 1)), IdRange(-2**63, 2**63 - 1)),
])
def test_id_ranges_with_negative_ends_read_back(text: str, expected: IdRange) -> None:
    assert IdRange.parse(text) == expected
    assert IdRange.parse(str(expected)) == expected


@pytest.mark.parametrize("text", ["", "5", "1--", "a-b", "1-2-3", "--1-2"])
def test_a_bad_range_text_is_named(text: str) -> None:
    with pytest.raises(ValueError, match="not an id range"):
        IdRange.parse(text)


def test_negative_ids_are_backfilled_exactly_once(tracker: Tracker) -> None:
    tracker.start(max_id=20, min_id=-149)
    first = claim(tracker, batch_size=30, slots=8)
    held = first[-1]
    assert held.begin_id < 0 and held.end_id < 0
    assert IdRange(held.begin_id, held.end_id) in tracker.in_flight()
    assert tracker.low_water_mark() == first[0].end_id
    assert tracker.begin(held) == "run"
    assert tracker.fail(held, "boom", final=True) == "failed"
    assert [(r.begin_id, r.end_id) for r in tracker.failed_ranges()] == [(held.begin_id, held.end_id)]
    seen: Counter[int] = Counter()
    for batch in first[:-1]:
        assert tracker.begin(batch) == "run"
        seen.update(range(batch.begin_id, batch.end_id + 1))
        tracker.complete(batch)
    assert tracker.low_water_mark() == held.end_id
    assert tracker.retry_failed() == 1
    seen += run_all(tracker, batch_size=30, slots=8)
    assert seen == Counter(range(-149, 21))
    progress = tracker.progress()
    assert progress.finished and progress.total_ids == progress.ids_done == 170


def test_a_snowflake_span_is_counted_exactly(tracker: Tracker) -> None:
    top = 1_700_000_000_000_000_000
    tracker.start(max_id=top + 10**17 - 1, min_id=top)
    assert tracker.progress().total_ids == 10**17
    batches = claim(tracker, batch_size=10**15 + 1)
    for batch in batches:
        assert tracker.begin(batch) == "run"
        tracker.complete(batch, rows=3)
    progress = tracker.progress()
    assert (progress.ids_planned, progress.ids_done) == (4 * (10**15 + 1), 4 * (10**15 + 1))
    assert progress.to_dict()["total_ids"] == 10**17


def test_a_span_near_2_to_62_is_stored_exactly(tracker: Tracker) -> None:
    tracker.start(max_id=2**62 + 12_345, min_id=2**62)
    assert tracker.progress().total_ids == 12_346
    assert run_all(tracker, batch_size=1_000, slots=13) == Counter(range(2**62, 2**62 + 12_346))
    assert tracker.progress().ids_done == 12_346


@pytest.mark.parametrize(("low", "high"), [(-2**63, -2**63 + 99), (2**63 - 100, 2**63 - 1)])
def test_extreme_64_bit_keys_run_exactly_once(tracker: Tracker, low: int, high: int) -> None:
    tracker.start(max_id=high, min_id=low)
    assert run_all(tracker, batch_size=7) == Counter(range(low, high + 1))
    progress = tracker.progress()
    assert progress.finished and (progress.total_ids, progress.ids_done) == (100, 100)


class _RetryBetweenReads(redis.Redis):
    """Runs ``hook`` once, just before the client's first HKEYS of ``key``: a deterministic interleaving."""

    hook: Any = None
    key = ""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        if self.hook is not None and args[:2] == ("HKEYS", self.key):
            hook, self.hook = self.hook, None
            hook()
        return super().execute_command(*args, **options)


def test_the_low_water_mark_is_read_in_one_transaction(tracker: Tracker, redis_url: str,
                                                       clock: ManualClock) -> None:
    tracker.start(max_id=20)
    batches = claim(tracker, batch_size=5)
    top = batches[0]
    assert tracker.begin(top) == "run" and tracker.fail(top, "boom", final=True) == "failed"
    for batch in batches[1:]:
        tracker.begin(batch)
        tracker.complete(batch)
    assert tracker.low_water_mark() == 20
    hooked = _RetryBetweenReads.from_url(redis_url)
    hooked.key = tracker.keys.failed
    hooked.hook = tracker.retry_failed  # moves 16-20 from failed to in flight, between the two reads
    try:
        # the old three-step read saw 16-20 in neither hash and answered the cursor (0): a checkpoint
        # of that mark would lose 16-20 on a restore
        assert Tracker(tracker.name, hooked, clock=clock).low_water_mark() == 20
    finally:
        hooked.close()


def test_tokens_never_repeat_after_a_reset_or_a_loss(tracker: Tracker, clock: ManualClock) -> None:
    tracker.start(max_id=20)
    before = claim(tracker, batch_size=5)
    stale = before[0]
    assert tracker.begin(stale) == "run"
    tracker.redis.delete(*tracker.keys.all())  # Redis lost the backfill's data, token sequence included
    clock.advance(1)
    tracker.start(max_id=20)  # a restore of the same bounds
    after = claim(tracker, batch_size=5)
    assert (after[0].begin_id, after[0].end_id) == (stale.begin_id, stale.end_id)
    assert max(b.token for b in before) < min(b.token for b in after)
    assert tracker.begin(stale) == BeginState.SUPERSEDED  # the stale holder is fenced off
    tracker.reset()
    clock.advance(1)
    tracker.start(max_id=20)
    assert max(b.token for b in after) < min(b.token for b in claim(tracker, batch_size=5))


def test_begin_answers_a_typed_state_that_still_equals_its_string(tracker: Tracker) -> None:
    tracker.start(max_id=10)
    batch = claim(tracker, batch_size=5)[0]
    state = tracker.begin(batch)
    assert state is BeginState.RUN and state == "run" and str(state) == "run"
    tracker.complete(batch)
    assert tracker.begin(batch) is BeginState.GONE


def test_a_lease_that_runs_out_counts_a_lost_attempt(tracker: Tracker, clock: ManualClock) -> None:
    tracker.start(max_id=10)
    handed_back, killed = claim(tracker, batch_size=5, lease=10)
    assert tracker.release(handed_back) == "released"
    assert tracker.begin(killed) == "run"  # then its task process is killed: no complete, no fail
    clock.advance(11)
    again = claim(tracker, batch_size=5, lease=10)
    assert sorted((b.begin_id, b.replanned) for b in again) == [(1, True), (6, True)]
    progress = tracker.progress()
    assert (progress.attempts_lost, progress.errors) == (1, 0)
    assert progress.to_dict()["attempts_lost"] == 1
