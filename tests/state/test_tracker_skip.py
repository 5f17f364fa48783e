"""Skipping a key range by hand: counted as skipped, so progress and state agree (not `done` at 22.5%)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from airflow_spreader.core.planner import IdRange
from airflow_spreader.state.skip import SkipError, skip_range
from airflow_spreader.state.tracker import Tracker, TrackerError
from airflow_spreader.tools.readmodel.status import state_of

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def claim_all(tracker: Tracker) -> list[IdRange]:
    claims = []
    while not tracker.progress().exhausted:
        claim = tracker.claim_cycle(batch_size=100, per_second=5, duration=2, begin_at=NOW, lease_seconds=600)
        for batch in claim.batches:
            assert tracker.complete(batch, rows=batch.size) == "done"
        claims += [b.id_range for b in claim.batches]
    return claims


def test_a_skipped_range_is_never_planned_and_counts_toward_the_progress(tracker: Tracker) -> None:
    tracker.start(max_id=4000)
    first = tracker.claim_cycle(batch_size=100, per_second=5, duration=2, begin_at=NOW, lease_seconds=600)
    for batch in first.batches:
        tracker.complete(batch, rows=batch.size)
    assert tracker.progress().cursor == 3000
    skipped = skip_range(tracker, 901)  # up to the cursor: 901..3000
    assert (skipped.span, skipped.cursor_before, skipped.cursor_after) == (IdRange(901, 3000), 3000, 900)
    rest = claim_all(tracker)
    assert rest[0].end_id == 900 and rest[-1].begin_id == 1
    progress = tracker.progress()
    assert (progress.ids_done, progress.ids_skipped, progress.total_ids) == (1000 + 900, 2100, 4000)
    assert progress.finished and progress.fraction_done == 1.0
    assert state_of(progress, paused=False) == "done"
    assert progress.counters["ranges_skipped"] == 1


def test_only_ids_not_yet_planned_can_be_skipped_and_the_message_says_what_is_allowed(tracker: Tracker) -> None:
    with pytest.raises(TrackerError, match="has not started"):
        skip_range(tracker, 1)
    tracker.start(max_id=1000)
    tracker.claim_cycle(batch_size=100, per_second=1, duration=2, begin_at=NOW, lease_seconds=600)  # 801..1000
    with pytest.raises(SkipError, match="from the cursor 800 down; give --to 800 or more"):
        skip_range(tracker, 100, 500)
    with pytest.raises(SkipError, match="give --from at most 800"):
        skip_range(tracker, 900, 1000)
    assert tracker.progress().cursor == 800 and tracker.progress().ids_skipped == 0
    assert skip_range(tracker, -50, 1000).span == IdRange(1, 800)  # clamped to what is left: 1..cursor
    assert skip_range(tracker, 1).span is None  # nothing left
    assert tracker.progress().ids_skipped == 800
