"""The governor adapts under dag.test() (SQLite source, real Redis): a hold halves the rate factor and the
next cycle plans at the reduced rate, healthy cycles grow it back, never above the calendar's rate; with
target_batch_seconds, the batch size moves towards the target within its bounds. Every row once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from itertools import pairwise

import pytest
import redis
import sqlalchemy as sa

from airflow_spreader.compat import TaskDeferred
from airflow_spreader.state.adapt import AdaptState
from airflow_spreader.state.governor import GovernorState
from airflow_spreader.state.idle import IdleLog
from airflow_spreader.state.tracker import Tracker
from tests.airflow import governor_knob
from tests.airflow.conftest import SOURCE_URLS, Source, forget, redis_connection, source_connection
from tests.conftest import TESTS, load_dag_file

pytestmark = [pytest.mark.airflow]

DAG_ID = "spreader_test_adapt"
KNOB = {"kind": "callable", "callable": "tests.airflow.governor_knob:knob", "name": "knob", "hold_above": 1}
RATE = {"per_second_on_peak": 2, "per_second_off_peak": 2}


@pytest.fixture
def adapted(airflow_db: None, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Source]:
    url = sa.make_url(SOURCE_URLS["sqlite"].replace("source.db", "adapt.db"))
    monkeypatch.setenv(f"AIRFLOW_CONN_{DAG_ID.upper()}", source_connection(url))
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_DEFAULT", redis_connection(redis_url))
    engine = sa.create_engine(url)
    tracker = Tracker(DAG_ID, redis.Redis.from_url(redis_url))
    forget(DAG_ID, tracker)
    governor_knob.turn(None)
    yield Source(DAG_ID, engine, tracker)
    governor_knob.turn(None)
    forget(DAG_ID, tracker)
    engine.dispose()


def run_cycle() -> tuple[float, float]:
    """One DAG run; when it began and ended."""
    began = time.time()
    dag = load_dag_file(TESTS / "airflow" / "dags" / "spreader_test_adapt.py").adapted_backfill
    assert str(dag.test().state) == "success"
    return began, time.time()


def batches_between(source: Source, window: tuple[float, float], batch_size: int) -> int:
    """How many batches (of ``batch_size`` ids, aligned from id 1) ran in the window."""
    return len({(row_id - 1) // batch_size for row_id, at in source.processed_at().items()
                if window[0] <= at <= window[1]})


def test_a_hold_halves_the_rate_factor_and_healthy_cycles_grow_it_back(adapted: Source) -> None:
    adapted.create(80)
    adapted.set_config(batch_size=5, duration=2, max_tasks_per_cycle=1, **RATE, governor={
        "health_interval": 0.3, "adaptive_rate": True, "signals": [KNOB]})
    state, pace = GovernorState(adapted.tracker.redis, DAG_ID), AdaptState(adapted.tracker.redis, DAG_ID)

    def hold_for_a_second() -> None:
        governor_knob.turn(5)
        deadline = time.monotonic() + 30
        while (record := state.current()) is None or record.verdict.decision != "hold":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)
        governor_knob.turn(0)

    first = run_cycle()  # healthy: 2/s for 2 s, 4 batches
    assert batches_between(adapted, first, 5) == 4
    assert not adapted.tracker.redis.exists(adapted.tracker.keys.batch_times)  # no target: no time recorded
    driver = threading.Thread(target=hold_for_a_second, daemon=True)
    driver.start()
    run_cycle()  # held a second in the middle: the batches due then are handed back
    driver.join(timeout=30)
    factors: list[float] = []
    windows: list[tuple[float, float]] = []
    for _ in range(3):
        windows.append(run_cycle())
        record = pace.load()
        assert record is not None
        factors.append(record.factor)
    assert factors == [0.5, 0.6, 0.7]  # one hold: x0.5; then +0.1 per healthy cycle
    assert batches_between(adapted, windows[0], 5) == 2  # 2/s x 0.5 for 2 s
    assert batches_between(adapted, windows[2], 5) == 3  # 2/s x 0.7 = 1.4/s: ceil(2.8)
    rate_changes = [(e.previous, e.decision) for e in reversed(state.history()) if e.what == "rate_factor"]
    assert rate_changes == [("x1", "x0.5"), ("x0.5", "x0.6"), ("x0.6", "x0.7")]
    decisions = [(e.previous, e.decision) for e in reversed(state.history()) if e.what == "decision"]
    assert ("ok", "hold") in decisions and ("hold", "ok") in decisions
    while not adapted.tracker.progress().finished:
        run_cycle()
        record = pace.load()
        assert record is not None and record.factor <= 1.0
    assert set(adapted.counters().values()) == {1}


def test_the_batch_size_moves_towards_target_batch_seconds_within_its_bounds(adapted: Source) -> None:
    adapted.create(400)
    adapted.set_config(batch_size=10, duration=1, max_tasks_per_cycle=1, per_second_on_peak=4, per_second_off_peak=4,
                       governor={
        "signals": [], "target_batch_seconds": 0.4, "min_batch_size": 5, "max_batch_size": 200})
    pace = AdaptState(adapted.tracker.redis, DAG_ID)
    sizes: list[int] = []
    while not adapted.tracker.progress().finished:
        run_cycle()
        if not sizes:  # the first cycle's batches recorded their times for the next plan
            assert adapted.tracker.redis.hget(adapted.tracker.keys.batch_times, "batches") is not None
        record = pace.load()
        assert record is not None
        sizes.append(record.batch_size)
    # 4 ms an id (plus the batch's overhead): 0.4 s is a little under 100 ids; from 10, at most x2 a cycle,
    # the measure smoothed over the cycles (the first ones, small, weigh their overhead more). The first step
    # is x2 unless a batch of 10 carries 0.16 s of overhead: far from it even on a loaded machine.
    assert sizes[:2] == [10, 20] and len(sizes) >= 4, sizes
    assert all(a <= b <= 2 * a for a, b in pairwise(sizes)), sizes
    assert all(5 <= size <= 200 for size in sizes)
    assert 55 <= sizes[-1] <= 105, sizes
    assert set(adapted.counters().values()) == {1}
    stamps = adapted.processed_at()
    largest = max(sum(1 for t in stamps.values() if abs(t - at) < 0.01) for at in stamps.values())
    assert largest <= 200




def test_waiting_out_a_pause_opens_an_idle_span_the_eta_sets_apart(redis_url: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_spreader.operators.batch import SpreadBatchOperator

    monkeypatch.setenv("AIRFLOW_CONN_REDIS_DEFAULT", redis_connection(redis_url))
    tracker = Tracker(DAG_ID, redis.Redis.from_url(redis_url))
    tracker.reset()
    operator = SpreadBatchOperator(task_id="batches", batches=[], backfill=DAG_ID, source_conn_id=DAG_ID,
                                   work=lambda *_: 0)
    with pytest.raises(TaskDeferred):
        operator.wait_out_pause()
    with pytest.raises(TaskDeferred):
        operator.wait_out_pause()  # a second waiter keeps the first start
    spans = IdleLog(tracker.redis, DAG_ID).spans()
    assert [span.kind for span in spans] == ["paused"]
    assert IdleLog(tracker.redis, DAG_ID).close("paused")
    tracker.reset()
