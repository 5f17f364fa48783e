"""The chain task's decisions without Airflow, on real tracker states."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow_spreader.cycle.chain import ChainView, Step, decide_next, final_summary
from airflow_spreader.cycle.model import CycleSummary
from airflow_spreader.state.tracker import Tracker
from tests.conftest import ManualClock

NOW = datetime.fromtimestamp(1_800_000_000.0, timezone.utc)  # the tracker fixture's manual clock


def summary(begin_at: datetime, *, duration: float = 10, lead: float = 3, batches: int = 4) -> CycleSummary:
    return CycleSummary(begin_at=begin_at, duration=duration, lead_seconds=lead, per_second=1.0, on_peak=False,
                        batches=batches, replanned=0, task_instances=1, cursor_before=None, cursor_after=None,
                        stopped=False, finished=False)


def claim(tracker: Tracker, begin_at: datetime, per_second: float = 0.4) -> CycleSummary:
    result = tracker.claim_cycle(batch_size=10, per_second=per_second, duration=10, begin_at=begin_at,
                                 lease_seconds=60, after_previous=True)
    assert result.begin_at is not None and result.end_at is not None
    return CycleSummary(begin_at=result.begin_at, duration=(result.end_at - result.begin_at).total_seconds(),
                        lead_seconds=3, per_second=per_second, on_peak=False, batches=len(result.batches),
                        replanned=0, task_instances=1, cursor_before=result.cursor_before,
                        cursor_after=result.cursor_after, stopped=False, finished=False)


def test_before_the_lead_the_chain_waits_and_then_triggers(tracker: Tracker) -> None:
    tracker.start(max_id=1000)
    cycle = claim(tracker, NOW)
    decision = decide_next(ChainView.read(tracker, cycle), NOW)
    assert (decision.step, decision.until, decision.settled) == (Step.WAIT, cycle.end_at - timedelta(seconds=3), False)
    assert decide_next(ChainView.read(tracker, cycle), cycle.end_at - timedelta(seconds=2)).step is Step.TRIGGER


def test_a_later_cycle_supersedes_this_one(tracker: Tracker) -> None:
    tracker.start(max_id=1000)
    first = claim(tracker, NOW)
    claim(tracker, NOW)  # another run planned the next cycle
    assert decide_next(ChainView.read(tracker, first), NOW).step is Step.SUPERSEDED


def test_a_stopped_backfill_waits_for_go(tracker: Tracker) -> None:
    tracker.start(max_id=1000)
    cycle = claim(tracker, NOW)
    tracker.stop()
    assert decide_next(ChainView.read(tracker, cycle), NOW).step is Step.WAIT_FOR_GO


def test_a_finished_backfill_ends_the_chain_with_its_account(tracker: Tracker, clock: ManualClock) -> None:
    tracker.start(max_id=20)
    result = tracker.claim_cycle(batch_size=10, per_second=1, duration=10, begin_at=NOW, lease_seconds=60)
    for batch in result.batches:
        tracker.begin(batch)
        tracker.complete(batch, rows=batch.size)
    view = ChainView.read(tracker, summary(NOW, batches=2))
    assert decide_next(view, NOW).step is Step.FINISHED
    clock.advance(10)
    account = final_summary(tracker.progress(), NOW + timedelta(seconds=10))
    assert (account["ids"], account["rows"], account["batches"], account["wall_seconds"]) == (20, 20, 2, 10.0)
    assert (account["batching"], account["rows_per_second"]) == ("ids", 2.0)


def test_only_failed_ranges_left_fails_the_chain(tracker: Tracker) -> None:
    tracker.start(max_id=10)
    [batch] = tracker.claim_cycle(batch_size=10, per_second=1, duration=1, begin_at=NOW, lease_seconds=60).batches
    tracker.begin(batch)
    tracker.fail(batch, "boom", final=True)
    assert decide_next(ChainView.read(tracker, summary(NOW, batches=1)), NOW).step is Step.FAILED_RANGES_REMAIN


def test_all_planned_waits_settled_until_the_planned_end(tracker: Tracker) -> None:
    tracker.start(max_id=20)
    cycle = claim(tracker, NOW, per_second=1)  # both ranges planned, in flight
    decision = decide_next(ChainView.read(tracker, cycle), NOW)
    assert (decision.step, decision.until, decision.settled) == (Step.WAIT, cycle.end_at, True), "no lead: all planned"


def test_a_cycle_that_planned_nothing_settles_on_the_lease_then_triggers_a_replan(tracker: Tracker,
                                                                                  clock: ManualClock) -> None:
    tracker.start(max_id=20)
    claim(tracker, NOW, per_second=1)
    empty = summary(NOW + timedelta(seconds=10), batches=0)
    decision = decide_next(ChainView.read(tracker, empty), NOW)
    assert (decision.step, decision.until) == (Step.SETTLE, NOW + timedelta(seconds=60))
    clock.advance(61)
    assert decide_next(ChainView.read(tracker, empty), NOW + timedelta(seconds=61)).step is Step.TRIGGER


def follow(summary: CycleSummary) -> CycleSummary:
    from dataclasses import replace

    return replace(summary, follow_new_rows=True)


def test_with_follow_new_rows_the_bottom_starts_a_cycle_that_looks_for_new_rows(tracker: Tracker,
                                                                              clock: ManualClock) -> None:
    from airflow_spreader.state.passes import LookOutcome, Passes

    tracker.start(max_id=20)
    result = tracker.claim_cycle(batch_size=10, per_second=1, duration=10, begin_at=NOW, lease_seconds=60)
    for batch in result.batches:
        tracker.begin(batch)
        tracker.complete(batch, rows=batch.size)
    cycle = follow(summary(NOW, batches=2))
    assert decide_next(ChainView.read(tracker, cycle), NOW).step is Step.FOLLOW
    assert decide_next(ChainView.read(tracker, summary(NOW, batches=2)), NOW).step is Step.FINISHED  # not following
    clock.advance(1)
    assert Passes(tracker).look(lambda: 20, max_passes=10) is LookOutcome.CAUGHT_UP  # the next plan's look
    assert decide_next(ChainView.read(tracker, follow(summary(NOW, batches=0))), NOW).step is Step.FINISHED
    assert final_summary(tracker.progress(), NOW)["passes"] == 1


def test_a_batch_done_after_the_look_makes_the_chain_look_again(tracker: Tracker, clock: ManualClock) -> None:
    from airflow_spreader.state.passes import LookOutcome, Passes

    tracker.start(max_id=20)
    result = tracker.claim_cycle(batch_size=10, per_second=1, duration=10, begin_at=NOW, lease_seconds=60)
    first, second = result.batches
    tracker.begin(first)
    tracker.complete(first)
    clock.advance(1)
    assert Passes(tracker).look(lambda: 20, max_passes=10) is LookOutcome.CAUGHT_UP  # while `second` runs
    clock.advance(1)
    tracker.begin(second)
    tracker.complete(second)
    assert decide_next(ChainView.read(tracker, follow(summary(NOW, batches=0))), NOW).step is Step.FOLLOW
