"""Progress counted in rows for ``"rows"`` batching: the mode in force and the starting estimate of rows.

In ``"rows"`` batching an id range is a stretch of a sparse key, so ids say little about how far the walk
is; rows do. The plan records the mode at every cycle, and once the estimated total of rows (from the
database's statistics, sql/row_estimate.py), so that ``status`` (Redis alone is enough) counts rows done
against it. Kept in the tracker's meta hash beside the bounds.
"""

from __future__ import annotations

from collections.abc import Callable

from airflow_spreader.state.tracker import Tracker


def record_batching(tracker: Tracker, batching: str, estimate: Callable[[], int]) -> None:
    """Note the mode of this cycle; in ``"rows"`` mode, estimate the table's rows once (the first time)."""
    tracker.redis.hset(tracker.keys.meta, "batching", batching)
    if batching == "rows" and not tracker.redis.hexists(tracker.keys.meta, "rows_estimate"):
        tracker.redis.hsetnx(tracker.keys.meta, "rows_estimate", estimate())
