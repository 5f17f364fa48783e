"""The Airflow side of core.timing: defer to the triggerer, or sleep, for the three timed tasks."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone

from airflow.sdk import BaseOperator
from airflow.triggers.base import BaseTrigger

from airflow_spreader.core import timing


class TimedWaits(BaseOperator):
    """Base of the tasks that wait for moments: ``wait_for(moment, trigger)`` defers or sleeps."""

    #: Waits longer than this many seconds are deferred to the triggerer; shorter ones sleep in the worker.
    defer_threshold: float = timing.DEFER_THRESHOLD
    #: The triggerer wakes the task this many seconds early, to absorb the task's restart; it then sleeps
    #: until the exact moment. At most ``defer_threshold``.
    wake_margin: float = timing.WAKE_MARGIN

    def wait_step(self, moment: datetime) -> timing.WaitStep:
        return timing.wait_step(moment, datetime.now(timezone.utc), defer_threshold=self.defer_threshold,
                                wake_margin=self.wake_margin)

    def defer_if_far(self, moment: datetime, trigger: Callable[[datetime], BaseTrigger],
                     before: Callable[[], None] | None = None) -> float:
        """Defer (to ``resume``) with ``trigger(wake_at)`` when ``moment`` is far, calling ``before`` first;
        else the seconds left until it (<= 0: due)."""
        step = self.wait_step(moment)
        if step.defer_until is not None:
            if before is not None:
                before()
            self.defer(trigger=trigger(step.defer_until), method_name="resume")
        return step.seconds

    def wait_for(self, moment: datetime, trigger: Callable[[datetime], BaseTrigger],
                 before: Callable[[], None] | None = None) -> None:
        """Defer a long wait for ``moment``, then sleep the rest (or all of a short one)."""
        self.defer_if_far(moment, trigger, before)
        self.sleep_until(moment)

    @staticmethod
    def sleep_until(moment: datetime) -> None:
        """Sleep in the worker until ``moment`` (at once when it has passed)."""
        left = (moment - datetime.now(timezone.utc)).total_seconds()
        if left > 0:
            time.sleep(left)
