"""Issue 13 item 3: a claim under a claim id (a DAG run) is idempotent; different ids still tile."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis

from airflow_spreader.core.planner import IdRange
from airflow_spreader.state.records import CycleClaim
from airflow_spreader.state.tracker import CLAIMS_KEPT, Tracker

T = datetime.fromtimestamp(1_800_000_000, tz=timezone.utc)  # the ManualClock start


def claim(tracker: Tracker, claim_id: str | None, *, at: datetime = T, per_second: float = 2) -> CycleClaim:
    return tracker.claim_cycle(batch_size=10, per_second=per_second, duration=3, begin_at=at, lease_seconds=600,
                               after_previous=True, claim_id=claim_id)


def state(tracker: Tracker) -> tuple[Any, ...]:
    """Everything a claim advances."""
    progress = tracker.progress()
    return (progress.cursor, progress.counters, tracker.planned_until(), tracker.in_flight(),
            tracker.redis.get(tracker.keys.token_seq))


def same_cycle(a: CycleClaim, b: CycleClaim) -> None:
    assert a.batches and a.batches == b.batches  # ranges, run_at and tokens
    assert (a.begin_at, a.end_at, a.per_second, a.cursor_before, a.cursor_after) == \
        (b.begin_at, b.end_at, b.per_second, b.cursor_before, b.cursor_after)


def test_the_same_claim_id_gets_the_same_cycle_and_advances_nothing(tracker: Tracker) -> None:
    tracker.start(max_id=1000)
    first = claim(tracker, "dag/run-1")
    before = state(tracker)
    again = claim(tracker, "dag/run-1", at=T + timedelta(seconds=30), per_second=5)  # later, other rate
    same_cycle(first, again)
    assert again.replayed and not first.replayed
    assert state(tracker) == before
    assert tracker.progress().cycles == 1
    assert all(tracker.begin(batch) == "run" for batch in again.batches)  # the tokens are the live ones


def test_different_claim_ids_still_tile(tracker: Tracker) -> None:
    tracker.start(max_id=1000)
    cycles = [claim(tracker, f"dag/run-{i}") for i in range(3)]
    spans = [(b.begin_id, b.end_id) for c in cycles for b in c.batches]
    assert spans == [(991 - 10 * k, 1000 - 10 * k) for k in range(18)]
    assert [c.begin_at for c in cycles] == [T, T + timedelta(seconds=3), T + timedelta(seconds=6)]
    assert tracker.progress().cycles == 3


def test_a_replayed_cycle_is_the_recorded_one_even_when_nothing_is_left_or_it_is_stopped(tracker: Tracker) -> None:
    tracker.start(max_id=30)
    first = claim(tracker, "dag/run-1")  # six slots: every range
    assert claim(tracker, None).batches == []  # nothing left to plan
    tracker.stop()
    same_cycle(first, claim(tracker, "dag/run-1"))  # its batches then see the stop and hand their ranges back
    assert claim(tracker, "dag/run-2").stopped


class LosesReplies(Tracker):
    """The claim script runs in Redis, then its reply is lost on the way back (a connection drop)."""

    lose: int = 0

    def _run(self, script: str, keys: Any, *args: Any) -> Any:
        answer = super()._run(script, keys, *args)
        if script == "claim" and self.lose:
            self.lose -= 1
            raise redis.ConnectionError("reply lost")
        return answer


def test_a_claim_retried_after_its_reply_was_lost_gets_the_recorded_cycle(redis_client: redis.Redis,
                                                                          backfill_name: str) -> None:
    tracker = LosesReplies(backfill_name, redis_client, clock=T.timestamp)
    try:
        tracker.start(max_id=1000)
        tracker.lose = 1
        with pytest.raises(redis.ConnectionError):
            claim(tracker, "dag/run-1")
        recorded = state(tracker)
        assert recorded[0] == 940  # the script ran: the cycle is claimed
        again = claim(tracker, "dag/run-1")
        assert again.replayed and again.batches[0].id_range == IdRange(991, 1000)
        assert {b.id_range for b in again.batches} == set(tracker.in_flight())
        assert all(tracker.in_flight()[b.id_range]["token"] == b.token for b in again.batches)
        assert state(tracker) == recorded
        assert tracker.progress().cycles == 1
    finally:
        tracker.reset()


class RetriesLostReplies(Tracker):
    """A client that resends the script when its reply is lost (what a client-side retry does): the resent
    script changes nothing, and the claim still returns the recorded cycle."""

    def _run(self, script: str, keys: Any, *args: Any) -> Any:
        answer = super()._run(script, keys, *args)
        return super()._run(script, keys, *args) if script == "claim" else answer


def test_the_script_itself_answers_a_resent_claim_with_the_recorded_cycle(redis_client: redis.Redis,
                                                                           backfill_name: str) -> None:
    tracker = RetriesLostReplies(backfill_name, redis_client, clock=T.timestamp)
    try:
        tracker.start(max_id=1000)
        resent = claim(tracker, "dag/run-1")
        assert resent.replayed
        assert tracker.progress().cycles == 1 and tracker.progress().cursor == 940
        assert all(tracker.in_flight()[b.id_range]["token"] == b.token for b in resent.batches)
        next_one = claim(tracker, "dag/run-2")
        assert next_one.batches[0].end_id == 940 and next_one.begin_at == T + timedelta(seconds=3)
    finally:
        tracker.reset()


def test_only_the_last_claims_are_remembered(tracker: Tracker) -> None:
    tracker.start(max_id=1_000_000)
    first = claim(tracker, "dag/run-0")
    for i in range(1, 3 * CLAIMS_KEPT):
        claim(tracker, f"dag/run-{i}")
    assert tracker.redis.hlen(tracker.keys.claims) == CLAIMS_KEPT
    assert tracker.redis.llen(tracker.keys.claim_order) == CLAIMS_KEPT
    newest = claim(tracker, f"dag/run-{3 * CLAIMS_KEPT - 1}")
    assert newest.replayed
    forgotten = claim(tracker, "dag/run-0")  # too old: a new cycle
    assert not forgotten.replayed and forgotten.batches[0].end_id < first.batches[-1].begin_id
    tracker.reset()
    assert not tracker.redis.exists(tracker.keys.claims, tracker.keys.claim_order)


def test_an_empty_claim_id_is_refused_and_advances_nothing(tracker: Tracker) -> None:
    tracker.start(max_id=100)
    with pytest.raises(ValueError, match="claim_id must be a non-empty string"):
        claim(tracker, "")
    assert tracker.progress().cycles == 0 and tracker.progress().cursor == 100


def test_wide_ids_and_fractional_rates_survive_the_record(tracker: Tracker) -> None:
    top = 2**63 - 1
    tracker.start(max_id=top, min_id=2**62)
    first = tracker.claim_cycle(batch_size=10**15 + 1, per_second=0.4, duration=10, begin_at=T,
                                lease_seconds=600, claim_id="dag/wide")
    same_cycle(first, tracker.claim_cycle(batch_size=7, per_second=3, duration=1, begin_at=T,
                                          lease_seconds=600, claim_id="dag/wide"))
    assert first.batches[0].end_id == top


def test_the_claim_script_refuses_a_second_claim_of_a_recorded_id_even_from_a_fresh_snapshot(
        tracker: Tracker) -> None:
    """The record's check is atomic with the claim: a same-id claim built on the current state changes nothing."""
    tracker.start(max_id=1000)
    claim(tracker, "dag/run-1")
    before = state(tracker)
    cursor = tracker.progress().cursor
    assert cursor == 940
    args = [cursor, cursor - 10, 600, T.timestamp(), 1, 10, T.timestamp() + 3, "dag/run-1", "{}", CLAIMS_KEPT,
            str(IdRange(cursor - 9, cursor)), T.timestamp(), ""]
    assert tracker._run("claim", tracker.keys.claim_script_keys, *args) == [2]
    assert state(tracker) == before
    args[7] = "dag/run-2"  # the same call under a new id claims
    assert tracker._run("claim", tracker.keys.claim_script_keys, *args)[0] == 1
    assert tracker.progress().cursor == 930
