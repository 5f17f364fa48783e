"""Passes over the key: catching up with rows inserted above the top while the backfill ran.

The first cycle captures the key's MAX (the *top*) and the walk goes down from it. With
``follow_new_rows``, when the cursor has gone below the current pass's floor (every id planned), the
plan reads MAX again: if it is above the top, a new pass walks ``(top, MAX]`` from its top down, the
same way; if not (or after ``max_passes`` passes), the look is recorded and the backfill may end.
The cursor, the top, the floor and the pass count change together in one Lua script, checked against
what was read, so two plans looking at once start one pass, and the new range lies above everything
ever planned. Rows inserted below the top, into ranges already walked, are not visited.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from enum import Enum

from airflow_spreader.state import scripts
from airflow_spreader.state.tracker import Tracker, TrackerError, text

MAX_LOOK_RETRIES = 50


class LookOutcome(str, Enum):
    """What a look at the key's MAX did."""

    NOT_AT_BOTTOM = "not-at-bottom"  # ids of the current pass are still to plan: nothing to look at yet
    EXTENDED = "extended"  # a new pass over the ids added above the top
    CAUGHT_UP = "caught-up"  # nothing above the top: the passes end here
    BOUND = "bound"  # ids above the top, but max_passes is reached: the passes end here
    STOPPED = "stopped"  # the backfill is stopped: nothing changed

    def __str__(self) -> str:
        return self.value


class Passes:
    """The pass state of one backfill, in its tracker's meta hash (keys of :mod:`airflow_spreader.state.keys`)."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self._script = tracker.redis.register_script(scripts.source("follow"))

    def look(self, read_max: Callable[[], int | None], *, max_passes: int) -> LookOutcome:
        """At the bottom of the current pass, read the key's MAX (``read_max``: None for an empty table) and
        start the next pass over the ids above the top, or record that the passes end here.

        Away from the bottom it reads nothing; at the bottom it reads MAX at every call (one index lookup), so
        that a backfill triggered again after it ended catches up too. A look that raced another one (which
        started a pass, or a claim that moved the cursor) reads again.
        """
        keys = self.tracker.keys
        for attempt in range(MAX_LOOK_RETRIES):
            progress = self.tracker.progress()
            if not progress.started:
                raise TrackerError(f"backfill {self.tracker.name!r} has not started; start() it first")
            if progress.stopped:
                return LookOutcome.STOPPED
            if not progress.exhausted:
                return LookOutcome.NOT_AT_BOTTOM
            assert progress.cursor is not None and progress.max_id is not None  # started
            top, newest = progress.max_id, read_max()
            if newest is None or newest <= top:
                action = LookOutcome.CAUGHT_UP
            elif progress.passes >= max_passes:
                action = LookOutcome.BOUND
            else:
                action = LookOutcome.EXTENDED
            added = newest - top if action is LookOutcome.EXTENDED and newest is not None else 0
            answer = text(self._script(keys=[keys.meta, keys.stop], args=[
                str(progress.cursor), str(top), "extend" if action is LookOutcome.EXTENDED else action.value,
                str(progress.passes), str(newest), str(top + 1), str(added),
                "" if newest is None else str(newest), self.tracker.clock()]))
            if answer != "stale":
                return LookOutcome(answer)
            time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 20)))
        raise TrackerError(f"backfill {self.tracker.name!r}: could not look for new rows after "
                           f"{MAX_LOOK_RETRIES} attempts (too many planners racing)")
