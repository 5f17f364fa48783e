"""The pace of the next cycle: the configured rate times the governor's factor, and the batch size.

Picked once per cycle by the plan (core/adapt.py decides; state/adapt.py keeps it). With neither
``adaptive_rate`` nor ``target_batch_seconds``, the pace is the configuration's. A retried plan task of the
same DAG run (same ``claim_id``) gets the pace its first try chose, so a retry changes nothing twice.
Each change is logged with the governor's decisions (what, from, to, why).
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow_spreader.core.adapt import Pace, batch_bounds, next_batch_size, next_factor, smooth
from airflow_spreader.core.config import SpreadConfig
from airflow_spreader.core.governor import number_text
from airflow_spreader.state.adapt import AdaptRecord, AdaptState, BatchTimes, Unit
from airflow_spreader.state.governor import GovernorState, LoggedDecision
from airflow_spreader.state.tracker import Tracker


def factor_text(factor: float) -> str:
    return f"x{factor:.3g}"


def _rate_change(old: float, new: float, holds: int, now: datetime) -> LoggedDecision | None:
    if new == old:
        return None
    why = (f"{holds} hold{'s' if holds > 1 else ''} since the last cycle: x{0.5 ** holds:g}" if holds else
           f"healthy since the last cycle: +{round(new - old, 6):g}")
    return LoggedDecision(now, factor_text(old), factor_text(new), f"rate factor: {why}", "rate_factor")


def _size_change(old: int, new: int, spu: float | None, target: float, unit: str, times: BatchTimes,
                 now: datetime) -> LoggedDecision | None:
    if new == old:
        return None
    per = "no measure" if spu is None else f"{number_text(spu * 1000)} ms per {unit[:-1]} (smoothed)"
    why = f"batch size: {per} over {times.batches} batches, target {number_text(target)} s a batch"
    return LoggedDecision(now, str(old), str(new), why, "batch_size")


def pace_for_cycle(tracker: Tracker, config: SpreadConfig, claim_id: str | None,
                   now: datetime | None = None) -> Pace:
    """The pace of the cycle the plan ``claim_id`` claims; updates and logs the adaptation's state."""
    now = now or datetime.now(timezone.utc)
    state = AdaptState(tracker.redis, tracker.name)
    governor = config.governor
    if governor is None or not governor.adapts:
        state.clear()
        return Pace(1.0, config.batch_size)
    record = state.load()
    if record is not None and claim_id is not None and record.planned_for == claim_id:
        return Pace(record.factor, record.batch_size)
    decisions = GovernorState(tracker.redis, tracker.name)
    holds_total = decisions.holds()
    factor, changes = 1.0, []
    if governor.adaptive_rate:
        old = 1.0 if record is None else record.factor
        holds = 0 if record is None else max(0, holds_total - record.holds_seen)
        current = decisions.current()
        factor = next_factor(old, holds, healthy=current is not None and current.verdict.decision == "ok")
        changes.append(_rate_change(old, factor, holds, now))
    times = state.take_times()
    spu, size = None, config.batch_size
    if governor.target_batch_seconds is not None:
        unit: Unit = "rows" if config.batching == "rows" else "ids"
        spu = smooth(None if record is None else record.seconds_per_unit, times.seconds_per(unit))
        low, high = batch_bounds(config.batch_size, governor.min_batch_size, governor.max_batch_size)
        old_size = config.batch_size if record is None else record.batch_size
        size = next_batch_size(old_size, spu, governor.target_batch_seconds, low, high)
        changes.append(_size_change(old_size, size, spu, governor.target_batch_seconds, unit, times, now))
    state.save(AdaptRecord(factor, size, spu, holds_total, claim_id))
    decisions.log([change for change in changes if change is not None])
    return Pace(factor, size)


def current_pace(tracker: Tracker, config: SpreadConfig | None) -> Pace | None:
    """What the last plan chose, for status and the ETA (None: no adaptation on)."""
    governor = None if config is None else config.governor
    if governor is None or not governor.adapts:
        return None
    record = AdaptState(tracker.redis, tracker.name).load()
    return None if record is None else Pace(record.factor, record.batch_size)
