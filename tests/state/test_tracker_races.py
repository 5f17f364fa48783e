"""Racing planners and random histories: no id is ever planned twice or lost."""

from __future__ import annotations

import multiprocessing
import uuid
from datetime import datetime, timezone

import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from airflow_spreader.state.records import ClaimedBatch
from airflow_spreader.state.tracker import Tracker
from tests.conftest import ManualClock

BEGIN = datetime(2027, 1, 15, 8, tzinfo=timezone.utc)


def claim_until_exhausted(url: str, name: str, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    tracker = Tracker(name, redis.Redis.from_url(url))
    spans: list[tuple[int, int]] = []
    windows: list[float] = []
    while True:
        claim = tracker.claim_cycle(batch_size=7, per_second=5, duration=2, begin_at=BEGIN,
                                    lease_seconds=86_400 * 365 * 100, after_previous=True)
        if not claim.batches:
            break
        assert claim.begin_at is not None
        windows.append(claim.begin_at.timestamp())
        spans.extend((b.begin_id, b.end_id) for b in claim.batches)
        for batch in claim.batches[::3]:  # completions race the planners too
            tracker.begin(batch)
            tracker.complete(batch)
    results.put((spans, windows))


def test_planners_in_several_processes_never_receive_overlapping_ranges_or_times(redis_url: str) -> None:
    name = f"race-{uuid.uuid4().hex[:10]}"
    tracker = Tracker(name, redis.Redis.from_url(redis_url))
    tracker.start(max_id=20_000)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=claim_until_exhausted, args=(redis_url, name, results))
               for _ in range(4)]
    try:
        for worker in workers:
            worker.start()
        per_worker = [results.get(timeout=120) for _ in workers]
        for worker in workers:
            worker.join(30)
    finally:
        tracker.reset()
    assert all(spans for spans, _ in per_worker), "every planner should have won some cycles"
    ids = sorted(i for spans, _ in per_worker for begin, end in spans for i in range(begin, end + 1))
    assert ids == list(range(1, 20_001))
    # Every planner asked to begin at BEGIN; each cycle begins where the previous claimed one ends, so the
    # 2-s cycles tile the time line whoever won each race: the rate is never doubled.
    begins = sorted(begin for _, windows in per_worker for begin in windows)
    assert begins == [BEGIN.timestamp() + 2 * k for k in range(len(begins))]


class TrackerHistory(RuleBasedStateMachine):
    """Any interleaving of claims, completions, stops, failures and expired leases keeps
    every id of the table in exactly one place: done, in flight, failed, or not yet planned."""

    redis_url = ""

    @initialize(max_id=st.integers(0, 300), min_id=st.integers(1, 20))
    def start(self, max_id: int, min_id: int) -> None:
        self.clock = ManualClock(BEGIN.timestamp())
        self.tracker = Tracker(f"hist-{uuid.uuid4().hex[:10]}", redis.Redis.from_url(self.redis_url),
                               clock=self.clock)
        self.tracker.start(max_id=max_id, min_id=min_id)
        self.min_id, self.max_id = min_id, max_id
        self.held: list[ClaimedBatch] = []
        self.done: list[int] = []

    def teardown(self) -> None:
        if hasattr(self, "tracker"):
            self.tracker.reset()

    @rule(batch_size=st.integers(1, 40), per_second=st.sampled_from([0.5, 1, 2.5, 3, 7.5]),
          duration=st.sampled_from([1, 2, 4.5]))
    def claim(self, batch_size: int, per_second: float, duration: float) -> None:
        begin_at = datetime.fromtimestamp(self.clock(), tz=timezone.utc)
        claim = self.tracker.claim_cycle(batch_size=batch_size, per_second=per_second, duration=duration,
                                         begin_at=begin_at, lease_seconds=60)
        self.held.extend(claim.batches)

    @precondition(lambda self: self.held)
    @rule(index=st.integers(0, 10_000))
    def run_batch(self, index: int) -> None:
        batch = self.held.pop(index % len(self.held))
        if self.tracker.begin(batch) == "run":
            assert self.tracker.complete(batch) in {"done", "done-superseded"}
            self.done.extend(range(batch.begin_id, batch.end_id + 1))

    @precondition(lambda self: self.held)
    @rule(index=st.integers(0, 10_000))
    def fail_batch(self, index: int) -> None:
        batch = self.held.pop(index % len(self.held))
        if self.tracker.begin(batch) == "run":
            self.tracker.fail(batch, "boom", final=True)

    @rule()
    def stop_then_go(self) -> None:
        self.tracker.stop()
        for batch in self.held:
            self.tracker.begin(batch)
        self.held.clear()
        self.tracker.go()

    @rule(seconds=st.sampled_from([1, 30, 120]))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @rule()
    def retry_failed(self) -> None:
        self.tracker.retry_failed()

    @invariant()
    def every_id_is_in_exactly_one_place(self) -> None:
        if not hasattr(self, "tracker"):
            return
        progress = self.tracker.progress()
        assert progress.cursor is not None
        places = list(self.done)
        places += [i for r in self.tracker.in_flight() for i in range(r.begin_id, r.end_id + 1)]
        places += [i for r in self.tracker.failed_ranges() for i in range(r.begin_id, r.end_id + 1)]
        places += range(self.min_id, progress.cursor + 1)
        assert sorted(places) == list(range(self.min_id, self.max_id + 1))
        assert progress.ids_done == len(self.done)


def test_random_histories_keep_every_id_in_exactly_one_place(redis_url: str) -> None:
    TrackerHistory.redis_url = redis_url
    runner = TrackerHistory.TestCase
    runner.settings = settings(max_examples=60, stateful_step_count=30, deadline=None,
                               suppress_health_check=[HealthCheck.too_slow])
    runner().runTest()
