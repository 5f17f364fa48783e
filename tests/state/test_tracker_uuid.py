"""The tracker on a UUID key's images (core/keys.py): Redis and the checkpoint keep them exactly."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

from airflow_spreader.core.carving import ranges_from_tops
from airflow_spreader.core.keys import from_key, to_key
from airflow_spreader.core.planner import IdRange
from airflow_spreader.state.checkpoint import Checkpoint
from airflow_spreader.state.skip import SkipError, skip_range
from airflow_spreader.state.tracker import Tracker

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
KEYS = sorted(from_key(uuid.UUID(int=(i * 0x9E3779B97F4A7C15_F39CC0605CEDC834) % 2**128).bytes) for i in range(1, 41))


def carve(cursor: int, min_id: int, count: int) -> list[IdRange]:
    """The rows carve of sql/boundaries.py over KEYS, without a database: 4 rows a range."""
    below = sorted((k for k in KEYS if min_id <= k <= cursor), reverse=True)[:count * 4 + 1]
    return ranges_from_tops(cursor, min_id, below[::4], count)


def test_uuid_ranges_are_claimed_done_failed_and_replayed_exactly(tracker: Tracker) -> None:
    tracker.start(max_id=KEYS[-1], min_id=KEYS[0])
    claim = tracker.claim_cycle(batch_size=4, per_second=3, duration=2, begin_at=NOW, lease_seconds=600,
                                carve=carve)
    assert len(claim.batches) == 6 and claim.batches[0].end_id == KEYS[-1]
    *good, bad = claim.batches
    for batch in good:
        assert tracker.complete(batch, rows=4) == "done"
    assert tracker.fail(bad, "boom", final=True) == "failed"
    [failed] = tracker.failed_ranges()
    assert (failed.begin_id, failed.end_id) == (bad.begin_id, bad.end_id)
    assert isinstance(to_key(failed.end_id), bytes)
    progress = tracker.progress()
    assert (progress.rows_done, progress.ids_done, progress.ids_failed, progress.total_ids) == (20, 0, 0, 0)
    assert tracker.retry_failed() == 1
    replay = tracker.claim_cycle(batch_size=4, per_second=3, duration=2, begin_at=NOW, lease_seconds=600,
                                 carve=carve)
    assert replay.batches[0].id_range == bad.id_range and replay.batches[0].replanned


def test_a_checkpoint_of_a_uuid_key_restores_the_same_images(tracker: Tracker) -> None:
    tracker.start(max_id=KEYS[-1], min_id=KEYS[0])
    claim = tracker.claim_cycle(batch_size=4, per_second=2, duration=2, begin_at=NOW, lease_seconds=600,
                                carve=carve)
    tracker.complete(claim.batches[0], rows=4)
    saved = Checkpoint.of(tracker, NOW)
    assert saved is not None and saved.low_water == claim.batches[1].end_id
    back = Checkpoint.from_json(saved.to_json())
    assert back == saved
    tracker.reset()
    back.restore(tracker)
    progress = tracker.progress()
    assert (progress.cursor, progress.min_id, progress.max_id) == (saved.low_water, KEYS[0], saved.low_water)
    with pytest.raises(SkipError, match="its key holds UUIDs"):
        skip_range(tracker, KEYS[0])
