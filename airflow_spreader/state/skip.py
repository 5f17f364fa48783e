"""Skip a key range by hand, counted as skipped, so that progress, state and the ETA stay consistent.

``Tracker.set_cursor`` moves the position and nothing else: the ids passed over are then neither done
nor remaining, and ``status`` shows ``done`` next to a fraction far below 100%. A skip moves the cursor
atomically (the Lua script ``skip`` checks it is still as read, as a claim does) and adds the ids to
``ids_skipped``, which the progress counts with the ids done. Only ids not yet planned can be skipped:
the range must reach the cursor (the highest id not yet planned), so no hole is left behind it.
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_spreader.core.keys import is_text_image, is_uuid_image
from airflow_spreader.core.planner import IdRange
from airflow_spreader.state import scripts
from airflow_spreader.state.tracker import Tracker, TrackerError

MAX_ATTEMPTS = 20


class SkipError(TrackerError, ValueError):
    """The range cannot be skipped as asked; the message says which values are allowed."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """What a skip did: the ids passed over (``span`` is None when there was nothing left to skip)."""

    span: IdRange | None
    cursor_before: int
    cursor_after: int


def skip_range(tracker: Tracker, begin_id: int, end_id: int | None = None) -> Skipped:
    """Skip the ids ``begin_id..end_id`` (default: up to the cursor) that are not yet planned.

    ``end_id`` must be at least the cursor: ids above it are already planned (done or in flight) and are
    left alone, so the ids skipped are ``begin_id..cursor``. ``begin_id`` below the table's captured
    lowest id skips down to it (the backfill then finishes once its ranges in flight are done).
    """
    for _ in range(MAX_ATTEMPTS):
        cursor, min_id = tracker.redis.hmget(tracker.keys.meta, ["cursor", "min_id"])
        if cursor is None or min_id is None:
            raise TrackerError(f"backfill {tracker.name!r} has not started: nothing to skip")
        cursor_now, low = int(cursor), int(min_id)
        if is_uuid_image(cursor_now):  # its ranges count no ids (core/keys.py): a skip could not be counted
            kind = "text" if is_text_image(cursor_now) else "UUIDs"
            raise SkipError(f"cannot skip in {tracker.name!r}: its key holds {kind}, whose ranges are not counted in "
                            "ids; skipping is only for integer keys")
        if cursor_now < low:
            return Skipped(None, cursor_now, cursor_now)
        if end_id is not None and end_id < cursor_now:
            raise SkipError(f"cannot skip {begin_id}..{end_id} of {tracker.name!r}: only ids not yet planned can be "
                            f"skipped, from the cursor {cursor_now} down; give --to {cursor_now} or more "
                            f"(or leave it out)")
        if begin_id > cursor_now:
            raise SkipError(f"cannot skip from {begin_id}: above the cursor {cursor_now} every id is already "
                            f"planned; give --from at most {cursor_now}")
        span = IdRange(max(begin_id, low), cursor_now)
        new_cursor = span.begin_id - 1
        if tracker.redis.register_script(scripts.source("skip"))(
                keys=[tracker.keys.meta, tracker.keys.stats],
                args=[str(cursor_now), str(new_cursor), str(span.counted), tracker.clock()]):
            return Skipped(span, cursor_now, new_cursor)
    raise TrackerError(f"backfill {tracker.name!r}: the cursor kept moving; try the skip again")
