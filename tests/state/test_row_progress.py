"""Progress in rows for "rows" batching: an estimated total, corrected as batches finish, exact at the end."""

from __future__ import annotations

from datetime import datetime, timezone

from airflow_spreader.core.carving import ranges_from_tops
from airflow_spreader.core.config import SpreadConfig
from airflow_spreader.core.eta import observe
from airflow_spreader.state.row_progress import record_batching
from airflow_spreader.state.tracker import Tracker
from airflow_spreader.tools.cli_status import render
from airflow_spreader.tools.readmodel.sources import Lookup
from airflow_spreader.tools.readmodel.status import BackfillStatus

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
KEYS = [k * 10**9 for k in range(1, 251)]  # 250 rows over 2.5 x 10^11 ids
CONFIG = SpreadConfig.from_dict({"batch_size": 10, "duration": 5, "per_second_on_peak": 2, "per_second_off_peak": 2,
                                 "batching": "rows"})


def carve(cursor: int, min_id: int, count: int) -> list:
    below = sorted((k for k in KEYS if min_id <= k <= cursor), reverse=True)[:count * 10 + 1]
    return ranges_from_tops(cursor, min_id, below[::10], count)


def status_of(tracker: Tracker) -> BackfillStatus:
    progress = tracker.progress()
    return BackfillStatus(dag_id=tracker.name, now=NOW, progress=progress, failed=[],
                          observed=observe({}, NOW, started_at=progress.started_at), config=Lookup(CONFIG),
                          paused=Lookup(False))


def run_cycle(tracker: Tracker) -> None:
    claim = tracker.claim_cycle(batch_size=10, per_second=2, duration=5, begin_at=NOW, lease_seconds=60, carve=carve)
    for batch in claim.batches:
        rows = sum(1 for k in KEYS if batch.begin_id <= k <= batch.end_id)
        tracker.complete(batch, rows=rows)


def test_rows_progress_counts_rows_against_an_estimate_until_the_walk_reaches_the_bottom(tracker: Tracker) -> None:
    tracker.start(max_id=KEYS[-1], min_id=KEYS[0])
    record_batching(tracker, "rows", lambda: 200)  # the statistics say 200: too low
    record_batching(tracker, "rows", lambda: 10**6)  # read once: a later cycle does not estimate again
    run_cycle(tracker)
    progress = tracker.progress()
    assert (progress.rows_done, progress.rows_total, progress.rows_total_is_estimate) == (100, 200, True)
    assert progress.fraction_done == 0.5  # rows, not ids (the ids covered say 40%)
    text = render(status_of(tracker))
    assert "100 of ~200 rows (an estimate from the table's statistics until the walk reaches the bottom)" in text
    assert "2 batches/s x 10 rows = 20.0 rows/s" in text
    eta = status_of(tracker).eta
    assert eta.state == "estimated" and eta.reason.endswith("for about 100 rows left of an estimated 200")
    assert eta.seconds_left(NOW) == 5.0  # 100 rows at 2 batches/s of 10
    run_cycle(tracker)
    run_cycle(tracker)
    progress = tracker.progress()
    assert progress.rows_done == 250 and progress.rows_total == 250  # corrected: more rows than estimated
    assert progress.finished and not progress.rows_total_is_estimate and progress.fraction_done == 1.0
    assert progress.to_dict()["unit"] == "rows" and progress.to_dict()["rows_total"] == 250
    assert "250 of 250 rows;" in render(status_of(tracker)) and status_of(tracker).eta.state == "done"


def test_ids_batching_keeps_counting_ids(tracker: Tracker) -> None:
    tracker.start(max_id=1000)
    record_batching(tracker, "ids", lambda: 1 / 0)  # never estimated in "ids"
    progress = tracker.progress()
    assert (progress.counts_rows, progress.rows_estimate, progress.to_dict()["unit"]) == (False, None, "ids")
