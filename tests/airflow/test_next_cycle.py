"""The chain task under dag.test(): it triggers the next cycle ``lead_seconds`` before the cycle's planned
end (a short wait sleeps in the task: a deferral and its resume would add 1-3 s), a stop during the wait
holds the chain, a later cycle planned by another run ends this chain, and a cycle with nothing left to
plan waits for the ranges in flight, then ends the backfill."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import redis

from airflow_spreader.operators.plan import CYCLE_XCOM_KEY
from airflow_spreader.state.tracker import Tracker
from tests.airflow.conftest import forget, redis_connection
from tests.conftest import TESTS, load_dag_file

pytestmark = pytest.mark.airflow
NAME = "spreader_test_next_cycle"
TRIGGERED = re.compile(r"^(\S+Z) \[info\s*\] Triggering the next cycle", re.MULTILINE)


@pytest.fixture
def tracker(airflow_db: None, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tracker]:
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_DEFAULT", redis_connection(redis_url))
    tracker = Tracker(NAME, redis.Redis.from_url(redis_url))
    forget(NAME, tracker)
    delete_runs()  # a queued run left by another test would be taken as the next cycle
    tracker.start(max_id=1000)  # work left, nothing done yet
    yield tracker
    forget(NAME, tracker)


def delete_runs() -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    with create_session() as session:
        session.execute(delete(DagRun).where(DagRun.dag_id == NAME))


def triggered_at(log: str) -> list[datetime]:
    """When the log says the next cycle was triggered (Python 3.10's fromisoformat does not read "Z")."""
    return [datetime.fromisoformat(stamp.replace("Z", "+00:00")) for stamp in TRIGGERED.findall(log)]


def run_chain(ends_in: float, capfd: pytest.CaptureFixture, **conf: Any) -> tuple[Any, str]:
    dag = load_dag_file(TESTS / "airflow" / "dags" / "spreader_test_next_cycle.py").dag
    dag_run = dag.test(run_conf={"ends_in": ends_in, **conf})
    output = capfd.readouterr()
    return dag_run, output.out + output.err


def planned_end(run_id: str) -> datetime | None:
    """When the stand-in plan task said the cycle ends (read server side: the test is not a task)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        value = session.scalar(select(XComModel.value).where(
            XComModel.dag_id == NAME, XComModel.run_id == run_id, XComModel.task_id == "plan",
            XComModel.key == CYCLE_XCOM_KEY).order_by(XComModel.timestamp.desc()))
    if value is None:
        return None
    cycle = json.loads(value) if isinstance(value, str) else value
    return datetime.fromisoformat(cycle["begin_at"]) + timedelta(seconds=cycle["duration"])


def latest_run_id() -> str | None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return session.scalar(select(DagRun.run_id).where(DagRun.dag_id == NAME, DagRun.state == "running")
                              .order_by(DagRun.id.desc()))


def wait_for_the_plan(timeout: float = 120) -> None:
    """Until the running DAG run's plan task has pushed its cycle: the chain task is then waiting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run_id = latest_run_id()
        if run_id and planned_end(run_id):
            return
        time.sleep(0.05)


def test_a_short_wait_sleeps_in_the_task_then_triggers_at_the_planned_end(
        tracker: Tracker, capfd: pytest.CaptureFixture) -> None:
    dag_run, log = run_chain(3.0, capfd)
    assert str(dag_run.state) == "success"
    assert "waiting in the task until then" in log
    assert "DEFERRED" not in log.upper().replace(" ", "_"), "a short wait must not defer"
    triggered = triggered_at(log)
    end = planned_end(dag_run.run_id)
    assert len(triggered) == 1 and end is not None
    assert end <= triggered[0] < end + timedelta(seconds=2)


def test_a_stop_during_the_short_wait_holds_the_chain_until_go(
        tracker: Tracker, capfd: pytest.CaptureFixture) -> None:
    went_at: list[datetime] = []

    def stop_during_the_wait_then_go() -> None:
        wait_for_the_plan()
        tracker.stop()
        time.sleep(5)
        went_at.append(datetime.now().astimezone())
        tracker.go()

    watcher = threading.Thread(target=stop_during_the_wait_then_go)
    watcher.start()
    dag_run, log = run_chain(3.0, capfd)
    watcher.join()
    assert str(dag_run.state) == "success"
    assert "is stopped: waiting (deferred) for `go`" in log
    triggered = triggered_at(log)
    assert len(triggered) == 1 and triggered[0] >= went_at[0], "triggered while the backfill was stopped"


def test_the_next_cycle_is_triggered_lead_seconds_before_the_planned_end(
        tracker: Tracker, capfd: pytest.CaptureFixture) -> None:
    dag_run, log = run_chain(7.0, capfd, lead=5)
    assert str(dag_run.state) == "success"
    triggered = triggered_at(log)
    end = planned_end(dag_run.run_id)
    assert len(triggered) == 1 and end is not None
    assert end - timedelta(seconds=5) <= triggered[0] < end - timedelta(seconds=3)


def test_a_later_cycle_planned_by_another_run_ends_this_chain(tracker: Tracker,
                                                             capfd: pytest.CaptureFixture) -> None:
    later = datetime.now().astimezone() + timedelta(seconds=60)  # another run planned until then
    tracker.claim_cycle(batch_size=10, per_second=1, duration=1, begin_at=later, lease_seconds=600)
    dag_run, log = run_chain(2.0, capfd)
    assert str(dag_run.state) == "success"
    assert "carries the chain: nothing to trigger here" in log
    assert TRIGGERED.findall(log) == []


def test_with_nothing_left_to_plan_it_waits_for_the_ranges_in_flight_then_ends_the_backfill(
        tracker: Tracker, capfd: pytest.CaptureFixture) -> None:
    tracker.reset()
    tracker.start(max_id=20)
    earlier = datetime.now().astimezone() - timedelta(seconds=30)  # the last cycle with batches
    [first, second] = tracker.claim_cycle(batch_size=10, per_second=2, duration=1, begin_at=earlier,
                                          lease_seconds=600).batches
    for batch in (first, second):
        tracker.begin(batch)
    tracker.complete(first)

    completed_at: list[float] = []

    def finish_the_last_batch_later() -> None:
        wait_for_the_plan()
        time.sleep(4)
        tracker.complete(second)
        completed_at.append(time.monotonic())

    worker = threading.Thread(target=finish_the_last_batch_later)
    worker.start()
    dag_run, log = run_chain(0.0, capfd, batches=0)
    ended_at = time.monotonic()
    worker.join()
    assert str(dag_run.state) == "success"
    assert "waiting (deferred) for the 1 batches in flight" in log
    assert "Backfill 'spreader_test_next_cycle' finished" in log
    assert TRIGGERED.findall(log) == [], "nothing was left to plan: no further cycle"
    assert completed_at and ended_at - completed_at[0] < 30, "it ended on the last completion, not at the lease"
