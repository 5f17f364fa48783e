"""Waiting in the triggerer on a backfill's clock and its stop flag."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any, Literal

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_spreader.hooks.spreader import SpreaderHook
from airflow_spreader.state.governor import GovernorState

WaitFor = Literal["due_or_stopped", "resumed", "settled", "healthy"]


class BackfillWaitTrigger(BaseTrigger):
    """Fire at ``moment``, or at once when the backfill is stopped (``due_or_stopped``, for batches),
    or when its stop flag is cleared (``resumed``, for the chain of cycles), or, with ``settled``, at
    ``moment``, on a stop, or as soon as no range is in flight (the chain's wait at the end of a backfill),
    or, with ``healthy``, when the governor no longer holds the backfill, a new check of its signals is due,
    or on a stop (a batch task waiting out a hold; it reads only Redis, never a Variable), not before
    ``moment`` if given, except on a stop.

    Unlike the standard DateTimeTrigger, which wakes on whole-second polls, it sleeps exactly until
    the moment when that is nearer than the next stop-flag check, so batches start on time; and a
    stop reaches deferred batches within ``poll_interval`` instead of at their scheduled time.
    """

    def __init__(self, backfill: str, redis_conn_id: str = "redis_default", moment: datetime | str | None = None,
                 wait_for: WaitFor = "due_or_stopped", poll_interval: float = 1.0) -> None:
        super().__init__()
        if isinstance(moment, str):
            moment = datetime.fromisoformat(moment)
        if moment is not None and moment.tzinfo is None:
            raise ValueError(f"moment must be timezone-aware, got naive {moment.isoformat()}")
        if wait_for in ("due_or_stopped", "settled") and moment is None:
            raise ValueError(f"a moment is needed to wait with {wait_for!r}")
        self.backfill = backfill
        self.redis_conn_id = redis_conn_id
        self.moment = moment
        self.wait_for: WaitFor = wait_for
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "backfill": self.backfill, "redis_conn_id": self.redis_conn_id,
            "moment": self.moment.isoformat() if self.moment else None, "wait_for": self.wait_for,
            "poll_interval": self.poll_interval,
        })

    async def run(self) -> AsyncIterator[TriggerEvent]:
        tracker = await asyncio.to_thread(SpreaderHook(self.redis_conn_id).tracker, self.backfill)
        while True:
            stopped = await asyncio.to_thread(tracker.is_stopped)
            if self.wait_for == "resumed":
                if not stopped:
                    yield TriggerEvent({"status": "resumed"})
                    return
                await asyncio.sleep(self.poll_interval)
                continue
            if stopped:
                yield TriggerEvent({"status": "stopped"})
                return
            if self.wait_for == "healthy":
                not_before = (self.moment - datetime.now(timezone.utc)).total_seconds() if self.moment else 0.0
                if not_before > 0:  # the hold's minimum deferral (a stop above still fires at once)
                    await asyncio.sleep(min(not_before, self.poll_interval))
                    continue
                decision, due = await asyncio.to_thread(GovernorState(tracker.redis, self.backfill).waiting_state)
                if decision != "hold" or due:
                    yield TriggerEvent({"status": "recheck" if decision == "hold" else "healthy"})
                    return
                await asyncio.sleep(self.poll_interval)
                continue
            if self.wait_for == "settled" and await asyncio.to_thread(tracker.in_flight_count) == 0:
                yield TriggerEvent({"status": "settled"})
                return
            assert self.moment is not None
            remaining = (self.moment - datetime.now(timezone.utc)).total_seconds()
            if remaining <= 0:
                yield TriggerEvent({"status": "due"})
                return
            await asyncio.sleep(min(remaining, self.poll_interval))
