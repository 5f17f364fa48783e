"""The trigger a held batch task waits on: it reads only Redis, and fires when the hold ends, when a new
check of the signals is due (the lease expired), or on a stop."""

from __future__ import annotations

import asyncio

import pytest

from airflow_spreader.core.governor import Verdict
from airflow_spreader.state.governor import GovernorState
from airflow_spreader.state.tracker import Tracker
from airflow_spreader.triggers.backfill_wait import BackfillWaitTrigger
from tests.airflow.conftest import redis_connection

HOLD = Verdict("hold", "replica lag", "replica_lag", 4.2, 2.0)


async def first_event(trigger: BackfillWaitTrigger, within: float) -> str | None:
    async def first() -> str:
        async for event in trigger.run():
            return str(event.payload["status"])
        raise AssertionError("the trigger ended without an event")

    try:
        return await asyncio.wait_for(first(), within)
    except asyncio.TimeoutError:
        return None


@pytest.fixture
def held(tracker: Tracker, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> GovernorState:
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_DEFAULT", redis_connection(redis_url))
    state = GovernorState(tracker.redis, tracker.name)
    state.take_turn(60)
    state.record(HOLD, [])
    return state


def trigger_of(tracker: Tracker) -> BackfillWaitTrigger:
    trigger = BackfillWaitTrigger(tracker.name, "redis_default", None, wait_for="healthy", poll_interval=0.05)
    path, kwargs = trigger.serialize()
    assert path == "airflow_spreader.triggers.backfill_wait.BackfillWaitTrigger"
    return BackfillWaitTrigger(**kwargs)  # as the triggerer builds it


def test_it_waits_while_held_and_fires_when_a_check_is_due(tracker: Tracker, held: GovernorState) -> None:
    assert asyncio.run(first_event(trigger_of(tracker), 0.5)) is None
    tracker.redis.delete(tracker.keys.governor_lease)
    assert asyncio.run(first_event(trigger_of(tracker), 2)) == "recheck"
    assert asyncio.run(first_event(trigger_of(tracker), 0.5)) is None  # one waiter woke for the check: not two


def test_it_fires_when_the_hold_ends_or_on_a_stop(tracker: Tracker, held: GovernorState) -> None:
    held.record(Verdict("ok"), [])
    assert asyncio.run(first_event(trigger_of(tracker), 2)) == "healthy"
    held.record(HOLD, [])
    tracker.stop()
    assert asyncio.run(first_event(trigger_of(tracker), 2)) == "stopped"
