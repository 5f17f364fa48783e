"""The governor's adaptation: the rate factor (AIMD on holds) and the batch size (towards a target time).

Pure functions, applied by the plan once per cycle (cycle/pace.py):

- Rate: the rate in force is the calendar's on/off-peak rate times a factor in (0, 1]. Each hold since
  the last plan halves it (multiplicative decrease, floor ``RATE_FLOOR``); a cycle planned with no hold
  since the last one, and the governor not holding, adds ``RATE_INCREASE`` or the factor itself,
  whichever is less (capped at 1): below 0.1 the factor doubles per healthy cycle (TCP's slow start),
  above it grows by 0.1 (additive increase). AIMD, as TCP: a backfill settles just under the rate at
  which the database starts to hold it, and the calendar's rate stays the ceiling since the factor never
  exceeds 1. The step is bounded by the factor so that a ceiling far above what the database takes
  (a factor settling at 0.02, say) is not overshot five-fold by one step of 0.1.
- Batch size: with ``target_batch_seconds``, the size follows ``target / seconds per unit`` (an id, or
  a row in "rows" batching), the seconds per unit smoothed over cycles (EWMA), within
  ``min_batch_size..max_batch_size`` and at most x``BATCH_STEP`` or /``BATCH_STEP`` per cycle.
  With a fixed cost per batch (t = a + b x n) the fixed point is a batch of exactly the target time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from airflow_spreader.core.rules import MAX_BATCH_SIZE

#: Each hold multiplies the factor by this.
RATE_DECREASE = 0.5
#: The factor never goes below this (a backfill is slowed, never stalled, by the factor): 1% of the ceiling.
RATE_FLOOR = 0.01
#: A healthy cycle adds this to the factor, or the factor itself when smaller (up to 1).
RATE_INCREASE = 0.1
#: A batch size moves by at most this ratio per cycle, up or down.
BATCH_STEP = 2.0
#: Weight of the newest cycle's measure in the smoothed seconds per unit.
SMOOTHING = 0.5


@dataclass(frozen=True, slots=True)
class Pace:
    """A cycle's pace: the factor on the calendar's rate (in (0, 1]) and the batch size (None: the
    configured one)."""

    factor: float = 1.0
    batch_size: int | None = None

    def rate(self, per_second: Callable[[datetime], float]) -> Callable[[datetime], float]:
        """The rate in force at a moment: the calendar's (the ceiling) times the factor."""
        if self.factor >= 1.0:
            return per_second
        return lambda at: scaled_rate(per_second(at), self.factor)


def next_factor(factor: float, holds: int, healthy: bool) -> float:
    """The factor for the next cycle: halved per hold since the last plan; after a healthy cycle, +0.1 or
    doubled, whichever is less."""
    factor = min(1.0, max(RATE_FLOOR, factor)) if math.isfinite(factor) else 1.0
    if holds > 0:
        return max(RATE_FLOOR, factor * RATE_DECREASE ** min(holds, 64))
    if healthy:
        return min(1.0, round(factor + min(RATE_INCREASE, factor), 6))
    return factor


def scaled_rate(per_second: float, factor: float) -> float:
    """The calendar's rate times the factor, to 6 significant digits (the planner reads it exactly); the
    rounding never lifts it above the calendar's rate."""
    return per_second if factor >= 1.0 else min(per_second, float(f"{per_second * factor:.6g}"))


def smooth(previous: float | None, sample: float | None) -> float | None:
    """EWMA of the seconds per unit; a cycle with no measure keeps the previous value."""
    if sample is None or not math.isfinite(sample) or sample <= 0:
        return previous
    if previous is None:
        return sample
    return SMOOTHING * sample + (1 - SMOOTHING) * previous


def batch_bounds(batch_size: int, min_batch_size: int | None, max_batch_size: int | None) -> tuple[int, int]:
    """The sizes allowed: the configured bounds, else batch_size / 10 .. batch_size x 10 (at least 1, at
    most MAX_BATCH_SIZE); one bound given moves the default other one so that low <= high."""
    low = max(1, batch_size // 10) if min_batch_size is None else min_batch_size
    high = min(MAX_BATCH_SIZE, batch_size * 10) if max_batch_size is None else max_batch_size
    if min_batch_size is None:
        low = min(low, high)
    high = max(high, low)
    return max(1, low), max(1, high)


def next_batch_size(current: int, seconds_per_unit: float | None, target: float, low: int, high: int) -> int:
    """The size whose batch takes about ``target`` seconds, at most a step of x2 from ``current``, in bounds.

    The bounds win over the step (a ``current`` outside them, after a change of the bounds, is clamped).
    """
    if seconds_per_unit is None or not math.isfinite(seconds_per_unit) or seconds_per_unit <= 0:
        wanted = float(current)
    else:
        wanted = min(current * BATCH_STEP, max(current / BATCH_STEP, target / seconds_per_unit))
    rounded = math.ceil(wanted) if wanted < current else math.floor(wanted)  # towards current: the step holds
    return int(min(high, max(low, rounded)))
