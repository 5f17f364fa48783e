"""Waiting for a moment inside a task: the one decision the batch, item and chain tasks share, no Airflow.

A long wait is deferred to the triggerer (no worker slot held), waking ``wake_margin`` seconds early to
absorb the task's restart, then slept to the exact moment; a short one is slept (a deferral costs 1-3 s).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

#: Waits longer than this many seconds are deferred to the triggerer; shorter ones sleep in the worker.
DEFER_THRESHOLD = 10.0
#: The triggerer wakes the task this many seconds early; it then sleeps until the exact moment.
WAKE_MARGIN = 3.0


@dataclass(frozen=True)
class WaitStep:
    """What to do about ``moment`` now: nothing (due), sleep ``seconds``, or defer until ``defer_until``."""

    seconds: float
    defer_until: datetime | None = None

    @property
    def due(self) -> bool:
        return self.seconds <= 0


def wait_step(moment: datetime, now: datetime, *, defer_threshold: float = DEFER_THRESHOLD,
              wake_margin: float = WAKE_MARGIN) -> WaitStep:
    """Defer a wait longer than ``defer_threshold`` (until ``wake_margin`` before ``moment``), else sleep it."""
    seconds = (moment - now).total_seconds()
    if seconds > defer_threshold:
        return WaitStep(seconds, moment - timedelta(seconds=wake_margin))
    return WaitStep(seconds)


def check_timing(defer_threshold: float, wake_margin: float) -> None:
    """A margin beyond the threshold would wake a deferred task before it could have slept instead."""
    if not 0 <= wake_margin <= defer_threshold:
        raise ValueError(f"need 0 <= wake_margin ({wake_margin}) <= defer_threshold ({defer_threshold})")


def takes_context(work: Callable[..., Any]) -> bool:
    """Does the user's work ask for the task's context (a ``context`` parameter)?"""
    return "context" in inspect.signature(work).parameters


def call_work(work: Callable[..., Any], *args: Any, context: Any) -> Any:
    """``work(*args)``, with ``context=`` when it takes one."""
    return work(*args, context=context) if takes_context(work) else work(*args)


def missing_work(who: str, alternative: str) -> TypeError:
    """The one error for a task or factory given no work."""
    return TypeError(f"{who}: give work=callable or {alternative}")
