"""The passes of follow_new_rows in the status read model: text (cli_status) and JSON (status --json, the page)."""

from __future__ import annotations

from datetime import datetime, timezone

from airflow_spreader.core.config import SpreadConfig
from airflow_spreader.core.eta import observe
from airflow_spreader.state.passes import Passes
from airflow_spreader.state.tracker import Tracker
from airflow_spreader.tools.cli_status import render
from airflow_spreader.tools.readmodel.sources import Lookup
from airflow_spreader.tools.readmodel.status import BackfillStatus

NOW = datetime.fromtimestamp(1_800_000_000.0, timezone.utc)  # the tracker fixture's manual clock
CONFIG = {"batch_size": 10, "duration": 1, "per_second_on_peak": 10, "per_second_off_peak": 10}


def status_of(tracker: Tracker, **config: object) -> BackfillStatus:
    progress = tracker.progress()
    return BackfillStatus(dag_id=tracker.name, now=NOW, progress=progress, failed=[],
                          observed=observe({}, NOW, started_at=progress.started_at),
                          config=Lookup(SpreadConfig.from_dict({**CONFIG, **config})), paused=Lookup(False))


def walk(tracker: Tracker) -> None:
    claim = tracker.claim_cycle(batch_size=10, per_second=10, duration=1, begin_at=NOW, lease_seconds=3600)
    for batch in claim.batches:
        tracker.begin(batch)
        tracker.complete(batch, rows=batch.size)


def passes_line(status: BackfillStatus) -> str:
    return next(line for line in render(status).splitlines() if line.startswith("  passes"))


def test_a_first_pass_without_follow_new_rows_shows_no_passes(tracker: Tracker) -> None:
    tracker.start(max_id=100)
    status = status_of(tracker)
    assert status.to_dict()["passes"] is None
    assert "passes" not in render(status)


def test_the_pass_count_and_range_show_in_text_and_json(tracker: Tracker) -> None:
    tracker.start(max_id=100)
    walk(tracker)
    assert passes_line(status_of(tracker, follow_new_rows=True)) == \
        "  passes    pass 1 of at most 10 (ids 1..100); follows new rows above the top"
    # Walked, but not yet looked at MAX: done only without follow_new_rows.
    assert (status_of(tracker, follow_new_rows=True).state, status_of(tracker).state) == ("running", "done")
    Passes(tracker).look(lambda: 130, max_passes=10)
    status = status_of(tracker, follow_new_rows=True)
    data = status.to_dict()
    assert data["passes"] == {"count": 2, "floor": 101, "top": 130, "follow_new_rows": True, "max_passes": 10,
                              "looked_at": None, "ids_left_above": 0}
    assert (data["progress"]["passes"], data["progress"]["total_ids"]) == (2, 130)
    assert passes_line(status) == "  passes    pass 2 of at most 10 (ids 101..130); follows new rows above the top"
    walk(tracker)
    Passes(tracker).look(lambda: 130, max_passes=10)
    status = status_of(tracker, follow_new_rows=True)
    assert status.state == "done" and status.to_dict()["passes"]["looked_at"] == NOW.isoformat()
    assert passes_line(status) == \
        "  passes    pass 2 of at most 10 (ids 101..130); no new rows above 130 at the last look"


def test_the_pass_bound_shows_the_ids_left_above_the_top(tracker: Tracker) -> None:
    tracker.start(max_id=10)
    walk(tracker)
    Passes(tracker).look(lambda: 25, max_passes=1)
    status = status_of(tracker, follow_new_rows=True, max_passes=1)
    assert status.to_dict()["passes"]["ids_left_above"] == 15
    assert passes_line(status) == \
        "  passes    pass 1 of at most 1 (ids 1..10); bound reached: 15 ids above 10 not visited"
