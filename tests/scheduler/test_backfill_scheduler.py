"""The backfill DAG under a real scheduler, triggerer and api-server (LocalExecutor).

Run alone: ``.venv/bin/python -m pytest -m scheduler tests/scheduler/test_backfill_scheduler.py``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
import sqlalchemy as sa

from airflow_spreader.cycle.model import CycleSummary
from airflow_spreader.state.governor import GovernorState
from airflow_spreader.state.tracker import Tracker
from devtools.stack import AirflowStack
from tests.airflow.conftest import TABLE, redis_connection
from tests.conftest import TESTS

pytestmark = pytest.mark.scheduler

DAG_ID = "spreader_test_sqlite"


@pytest.fixture(scope="session")  # session: test_backfill_scheduler_halt.py reuses this module's stack
def source_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("source") / "source.db"


@pytest.fixture(scope="module")
def stack(airflow_stack_factory, source_db: Path, redis_url: str) -> AirflowStack:  # type: ignore[no-untyped-def]
    return airflow_stack_factory(TESTS / "airflow" / "dags", parallelism=8, env={
        "AIRFLOW_CONN_SPREADER_TEST_SQLITE": json.dumps({"conn_type": "sqlite", "host": str(source_db)}),
        "AIRFLOW_CONN_REDIS_DEFAULT": redis_connection(redis_url),
        "REDIS_URL": redis_url,  # the console, run with the stack's environment (test_backfill_scheduler_halt.py)
        "PYTHONPATH": str(TESTS.parent),  # the governor test's `callable` signal: tests.airflow.governor_knob
    })


@pytest.fixture
def tracker(redis_url: str) -> Iterator[Tracker]:
    tracker = Tracker(DAG_ID, redis.Redis.from_url(redis_url))
    tracker.reset()
    yield tracker
    tracker.reset()


def make_table(path: Path, rows: int) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {TABLE}"))
        conn.execute(sa.text(f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, counter INTEGER NOT NULL, "
                             "processed_at DOUBLE PRECISION)"))
        conn.execute(sa.text(f"INSERT INTO {TABLE} (id, counter) VALUES (:id, 0)"),
                     [{"id": i} for i in range(1, rows + 1)])
    return engine


def wait_for_runs(stack: AirflowStack, timeout: float = 180, *, excluding: Collection[str] = (),
                  poll: float = 2) -> list[dict]:
    """The DAG's runs (but those ``excluding`` names) once all of them have ended."""
    deadline = time.monotonic() + timeout
    while True:
        runs = [run for run in stack.client.dag_runs(DAG_ID) if run["dag_run_id"] not in excluding]
        if all(run["state"] in {"success", "failed"} for run in runs):
            return runs
        assert time.monotonic() < deadline, f"runs still going: {[(r['dag_run_id'], r['state']) for r in runs]}"
        time.sleep(poll)


def test_a_missing_pool_fails_the_plan_with_the_command_to_create_it(
        stack: AirflowStack, tracker: Tracker, source_db: Path) -> None:
    make_table(source_db, 100)
    stack.client.wait_for_dag(DAG_ID, timeout=120)
    assert stack.client.get_pool(DAG_ID) is None
    run_id = stack.client.trigger(DAG_ID)
    assert stack.client.wait_for_run(DAG_ID, run_id, timeout=120) == "failed"
    states = {ti["task_id"]: ti["state"] for ti in stack.client.task_instances(DAG_ID, run_id)}
    assert states["plan"] == "failed" and states["report"] == "failed"
    logs = list((stack.home / "logs").glob(f"dag_id={DAG_ID}/run_id={run_id}/task_id=plan/*.log"))
    assert logs, "no log for the plan task"
    assert f"pool '{DAG_ID}' does not exist" in logs[0].read_text()
    assert f"airflow pools set {DAG_ID} " in logs[0].read_text()
    assert not tracker.is_started()


def test_a_backfill_runs_to_completion_exactly_once_under_the_scheduler(
        stack: AirflowStack, tracker: Tracker, source_db: Path) -> None:
    engine = make_table(source_db, 2000)
    stack.client.set_pool(DAG_ID, 2)
    stack.client.set_variable(f"spreader__{DAG_ID}", json.dumps({
        "batch_size": 50, "duration": 4, "per_second_on_peak": 5, "per_second_off_peak": 5,
        "max_tasks_per_cycle": 4}))
    stack.client.trigger(DAG_ID)
    deadline = time.monotonic() + 240
    while not tracker.progress().finished:
        assert time.monotonic() < deadline, f"not finished: {tracker.progress()}\n{stack.log_tails()}"
        time.sleep(1)
    runs = [run for run in wait_for_runs(stack) if run["state"] == "success"]
    with engine.connect() as conn:
        counters = dict(conn.execute(sa.text(f"SELECT counter, COUNT(*) FROM {TABLE} GROUP BY counter")).all())
    assert counters == {1: 2000}
    progress = tracker.progress()
    assert (progress.batches_done, progress.cycles, progress.batches_failed) == (40, 2, 0)
    # One DAG run per cycle, the chain ending by itself: in the last cycle's run when its batches are done by
    # its planned end, else in one more run that finds nothing left to plan and waits for them.
    assert len(runs) in (2, 3), runs
    # The finished task succeeds, emitting the backfill's Asset event, in the run that ended it; skipped before.
    finished = sorted(ti["state"] for run in runs for ti in stack.client.task_instances(DAG_ID, run["dag_run_id"])
                      if ti["task_id"] == "finished")
    assert finished == ["skipped"] * (len(runs) - 1) + ["success"], finished
    events = stack.client.get_json("/api/v2/assets/events", {"source_dag_id": DAG_ID})
    assert events["total_entries"] == 1 and events["asset_events"][0]["uri"] == f"airflow-spreader://{DAG_ID}/", events


def insert_rows(engine: sa.Engine, first: int, last: int) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {TABLE} (id, counter) VALUES (:id, 0)"),
                     [{"id": i} for i in range(first, last + 1)])


def test_rows_inserted_above_the_top_while_it_runs_are_followed_exactly_once_under_the_scheduler(
        stack: AirflowStack, tracker: Tracker, source_db: Path) -> None:
    """follow_new_rows: three bursts of 100 rows above the starting top (300), two during the first pass
    and one during the second, each inserted while the walk still has ids of its pass to plan, so before
    the look at the bottom that must find it. 50 ids a cycle of 2 s: the first pass takes 6 cycles."""
    engine = make_table(source_db, 300)
    stack.client.request("DELETE", f"/api/v2/variables/spreader__{DAG_ID}__checkpoint", ok_statuses=(404,))
    stack.client.wait_for_dag(DAG_ID, timeout=120)
    stack.client.set_pool(DAG_ID, 4)
    stack.client.set_variable(f"spreader__{DAG_ID}", json.dumps({
        "batch_size": 5, "duration": 2, "per_second_on_peak": 5, "per_second_off_peak": 5,
        "max_tasks_per_cycle": 4, "follow_new_rows": True}))
    earlier = {run["dag_run_id"] for run in stack.client.dag_runs(DAG_ID)}
    stack.client.trigger(DAG_ID)
    # (pass, cursor at most, burst): inserted once the walk is in that pass, not yet at its bottom (plans
    # may run a cycle or two ahead of the batches: the cursor, not the ids done, says where the walk is).
    bursts = [(1, 250, (301, 400)), (1, 150, (401, 500)), (2, 10**9, (501, 600))]
    inserted_in: list[int] = []
    deadline = time.monotonic() + 150
    while True:
        progress = tracker.progress()
        if progress.finished and progress.looked_for_new_rows:
            break
        assert time.monotonic() < deadline, f"not finished: {progress}\n{stack.log_tails()}"
        if bursts and progress.started and progress.passes == bursts[0][0] and not progress.exhausted \
                and progress.cursor is not None and progress.cursor <= bursts[0][1]:
            _, _, (first, last) = bursts.pop(0)
            insert_rows(engine, first, last)
            inserted_in.append(progress.passes)
        time.sleep(0.1)
    assert inserted_in == [1, 1, 2], "a burst missed its window: the test did not test what it says"
    runs = wait_for_runs(stack, 60, excluding=earlier, poll=1)  # the chain ends by itself, no run failed
    assert {run["state"] for run in runs} == {"success"}, runs
    with engine.connect() as conn:
        counters = dict(conn.execute(sa.text(f"SELECT counter, COUNT(*) FROM {TABLE} GROUP BY counter")).all())
    assert counters == {1: 600}
    progress = tracker.progress()
    assert (progress.passes, progress.max_id, progress.total_ids, progress.batches_failed) == (3, 600, 600, 0)
    assert (progress.ids_done, progress.rows_done, progress.batches_done) == (600, 600, 120)



def batch_starts(engine: sa.Engine, batch_size: int) -> list[float]:
    """When each batch ran (its rows' stamp), in order."""
    with engine.connect() as conn:
        stamps = conn.execute(sa.text(f"SELECT id, processed_at FROM {TABLE} WHERE processed_at IS NOT NULL")).all()
    by_batch: dict[int, float] = {}
    for row_id, at in stamps:
        by_batch.setdefault((row_id - 1) // batch_size, at)
    return sorted(by_batch.values())


def most_in(starts: list[float], window: float) -> int:
    return max((sum(1 for t in starts if s <= t < s + window) for s in starts), default=0)


def turn_knob(stack: AirflowStack, value: float) -> float:
    """The number the `callable` signal reads (tests/airflow/governor_knob.py, in the stack's AIRFLOW_HOME)."""
    (stack.home / "governor-knob").write_text(str(value))
    return time.time()


def planned_cycle(stack: AirflowStack, run_id: str) -> CycleSummary:
    """The cycle the run's plan pushed (XCom ``cycle``)."""
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/plan/xcomEntries/cycle"
    value = stack.client.get_json(path)["value"]
    return CycleSummary.from_xcom(json.loads(value) if isinstance(value, str) else value)


def test_a_governor_hold_and_recovery_under_the_scheduler_start_no_batch_while_held_and_no_burst_after(
        stack: AirflowStack, tracker: Tracker, source_db: Path) -> None:
    """A `callable` signal reads a knob file; raised above hold_above early in a 20 s cycle, lowered 6 s
    later. From the batches' own start stamps: none started while held (beyond
    2 x health_interval plus one batch of the raise), and from the recovery to the held cycle's end no more
    than the rate's own slot groups in any window: the batches due during the hold did not start at once."""
    rate, interval, batch_size, rows = 4, 1.0, 10, 800
    engine = make_table(source_db, rows)
    turn_knob(stack, 0)
    stack.client.request("DELETE", f"/api/v2/variables/spreader__{DAG_ID}__checkpoint", ok_statuses=(404,))
    stack.client.wait_for_dag(DAG_ID, timeout=120)
    stack.client.set_pool(DAG_ID, 2)
    stack.client.set_variable(f"spreader__{DAG_ID}", json.dumps({
        "batch_size": batch_size, "duration": 20, "per_second_on_peak": rate, "per_second_off_peak": rate,
        "max_tasks_per_cycle": 2, "governor": {"health_interval": interval, "signals": [
            {"kind": "callable", "callable": "tests.airflow.governor_knob:knob", "hold_above": 1,
             "name": "knob"}]}}))
    earlier = {run["dag_run_id"] for run in stack.client.dag_runs(DAG_ID)}
    first_run = stack.client.trigger(DAG_ID)
    deadline = time.monotonic() + 85
    while tracker.progress().batches_done < 6:
        assert time.monotonic() < deadline, f"no progress: {tracker.progress()}\n{stack.log_tails()}"
        time.sleep(0.1)
    raised = turn_knob(stack, 5)
    time.sleep(6 * interval)
    lowered = turn_knob(stack, 0)
    state = GovernorState(tracker.redis, DAG_ID)
    while not tracker.progress().finished:
        assert time.monotonic() < deadline, (
            f"not finished: {tracker.progress()}\n{state.history()}\n{stack.log_tails()}")
        time.sleep(0.25)
    with engine.connect() as conn:
        counters = dict(conn.execute(sa.text(f"SELECT counter, COUNT(*) FROM {TABLE} GROUP BY counter")).all())
    assert counters == {1: rows}  # every row exactly once
    starts = batch_starts(engine, batch_size)
    during = [round(t - raised, 2) for t in starts if raised + 2 * interval + 1 / rate < t < lowered]
    assert during == [], f"batches started while held, seconds after the raise: {during}"
    held_cycle_end = planned_cycle(stack, first_run).end_at.timestamp()
    assert lowered + 4 < held_cycle_end, "the recovery came too late in the cycle: the test tests nothing"
    after = [t for t in starts if lowered < t <= held_cycle_end]
    assert len(after) >= 8, f"too few batches after the recovery to judge the rate: {after}"
    # The plan puts `rate` batches at each whole second: a window of W seconds holds at most rate x (W + 1)
    # starts. The ~24 batches that fell due during the hold, started on the recovery, would put ~24 in one.
    for window in (1.0, 2.0, 4.0):
        assert most_in(after, window) <= rate * (window + 1), (window, [round(t - lowered, 2) for t in after])
    decisions = [(entry.previous, entry.decision) for entry in reversed(state.history())]
    assert ("ok", "hold") in decisions and ("hold", "ok") in decisions, decisions
    record = state.current()
    assert record is not None and record.held_seconds >= 3
    runs = wait_for_runs(stack, 60, excluding=earlier, poll=1)  # the chain ends by itself, no run failed
    assert {run["state"] for run in runs} == {"success"}, runs
