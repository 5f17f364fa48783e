"""The shared wait decision of the timed tasks: defer a long wait (waking early), sleep a short one."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_spreader.core.timing import call_work, check_timing, missing_work, wait_step

NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)


def test_a_long_wait_is_deferred_until_the_margin_before_and_a_short_one_slept() -> None:
    far = wait_step(NOW + timedelta(seconds=60), NOW, defer_threshold=10, wake_margin=3)
    assert far.defer_until == NOW + timedelta(seconds=57) and far.seconds == 60 and not far.due
    near = wait_step(NOW + timedelta(seconds=10), NOW, defer_threshold=10, wake_margin=3)
    assert near.defer_until is None and near.seconds == 10
    assert wait_step(NOW - timedelta(seconds=1), NOW).due


def test_timing_options_and_missing_work_are_refused_by_name() -> None:
    check_timing(10, 3)
    with pytest.raises(ValueError, match=r"need 0 <= wake_margin \(11\) <= defer_threshold \(10\)"):
        check_timing(10, 11)
    assert str(missing_work("backfill_dag('x')", "a batch_operator subclass")) == (
        "backfill_dag('x'): give work=callable or a batch_operator subclass")


def test_work_gets_the_context_only_when_it_asks_for_it() -> None:
    def plain(a: int) -> int:
        return a

    def with_context(a: int, context: Any) -> tuple[int, Any]:
        return a, context

    assert call_work(plain, 1, context="ctx") == 1
    assert call_work(with_context, 1, context="ctx") == (1, "ctx")
