"""The governor under dag.test(), on a real PostgreSQL primary and its streaming replica (private ports).

Pausing replay on the replica makes its lag grow while the backfill writes to the primary: the backfill
must hold within 2 x health_interval (plus one batch) of the lag crossing hold_above, start again after
the replay resumes at no more than the configured rate, and process every row exactly once. A signal
above stop_above stops it (needs `go`); a bad governor configuration fails the plan, nothing planned.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import sqlalchemy as sa

from airflow_spreader.hooks.health import replica_lag
from airflow_spreader.state.governor import GovernorState
from airflow_spreader.state.tracker import Tracker
from devtools.replica import StreamingPair
from tests.airflow import governor_knob
from tests.airflow.conftest import Source, forget, redis_connection, source_connection
from tests.conftest import TESTS, load_dag_file

pytestmark = [pytest.mark.airflow, pytest.mark.postgres]

DAG_ID = "spreader_test_governor"
REPLICA_CONN = "spreader_test_governor_replica"
RATE = {"per_second_on_peak": 3, "per_second_off_peak": 3}
INTERVAL = 1.0


@pytest.fixture(scope="module")
def pair() -> Iterator[StreamingPair]:
    with StreamingPair() as started:
        yield started


@pytest.fixture
def governed(pair: StreamingPair, airflow_db: None, redis_url: str,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Source]:
    monkeypatch.setenv(f"AIRFLOW_CONN_{DAG_ID.upper()}", source_connection(sa.make_url(pair.primary_url)))
    monkeypatch.setenv(f"AIRFLOW_CONN_{REPLICA_CONN.upper()}", source_connection(sa.make_url(pair.replica_url)))
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_DEFAULT", redis_connection(redis_url))
    engine = sa.create_engine(pair.primary_url)
    tracker = Tracker(DAG_ID, redis.Redis.from_url(redis_url))
    forget(DAG_ID, tracker)
    governor_knob.turn(None)
    yield Source(DAG_ID, engine, tracker)
    replay(pair, "resume")
    governor_knob.turn(None)
    forget(DAG_ID, tracker)
    engine.dispose()


def replay(pair: StreamingPair, action: str) -> None:
    engine = sa.create_engine(pair.replica_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f"SELECT pg_wal_replay_{action}()"))
    engine.dispose()


def run_cycle() -> str:
    return str(load_dag_file(TESTS / "airflow" / "dags" / "spreader_test_governor.py").governed_backfill.test().state)


def run_until_finished(source: Source, cycles: int = 4) -> None:
    for _ in range(cycles):
        if source.tracker.progress().finished:
            return
        assert run_cycle() == "success"
    assert source.tracker.progress().finished


def batch_starts(source: Source, batch_size: int) -> list[float]:
    """When each batch ran (its rows' stamp), in order."""
    by_batch: dict[int, float] = {}
    for row_id, at in source.processed_at().items():
        by_batch.setdefault((row_id - 1) // batch_size, at)
    return sorted(by_batch.values())


def most_in_a_second(starts: list[float]) -> int:
    return max(sum(1 for t in starts if s <= t < s + 1.0) for s in starts)


def in_background(action: Any) -> threading.Thread:
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    return thread


def wait_until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_replica_lag_holds_the_backfill_and_it_resumes_at_the_rate(governed: Source, pair: StreamingPair) -> None:
    governed.create(300)
    governed.set_config(batch_size=10, duration=10, max_tasks_per_cycle=1, **RATE, governor={
        "health_interval": INTERVAL, "signals": [{"kind": "replica_lag", "conn_id": REPLICA_CONN, "hold_above": 2}]})
    moments: dict[str, float] = {}
    replica = sa.create_engine(pair.replica_url)

    def lag_now() -> float:
        with replica.connect() as conn:
            return replica_lag(conn)

    def drive() -> None:
        wait_until(lambda: governed.tracker.progress().batches_done >= 4)
        replay(pair, "pause")
        moments["paused"] = time.time()
        wait_until(lambda: lag_now() > 2)
        moments["above"] = time.time()
        time.sleep(3 * INTERVAL)
        replay(pair, "resume")
        moments["resumed"] = time.time()

    driver = in_background(drive)
    assert run_cycle() == "success"
    driver.join(timeout=30)
    run_until_finished(governed)
    replica.dispose()

    assert set(governed.counters().values()) == {1}  # every row exactly once
    starts = batch_starts(governed, 10)
    during = [t for t in starts if moments["above"] + 2 * INTERVAL + 0.5 < t < moments["resumed"]]
    assert during == [], f"batches started while held: {during} (moments {moments})"
    assert any(t > moments["resumed"] for t in starts)
    # 3/s puts 3 batches at each whole second (floor(k / per_second)), a late group may start with the next:
    # at most 6 in any second. The ~8 batches that fell due during the hold, started at once, would make 11.
    after = [t for t in starts if moments["resumed"] < t]
    assert most_in_a_second(after) <= 6, f"a burst after the hold: {after}"
    state = GovernorState(governed.tracker.redis, DAG_ID)
    decisions = [(e.previous, e.decision) for e in reversed(state.history())]
    assert ("ok", "hold") in decisions and ("hold", "ok") in decisions
    held = next(e for e in state.history() if e.decision == "hold")
    assert held.reason.startswith("replica lag ") and held.reason.endswith(" s > 2 s")
    record = state.current()
    assert record is not None and record.held_seconds >= 2
    # One check per health_interval at most, shared by every batch start (3 a second, and rechecks while held).
    first_check = state.history()[-1].at
    assert record.checked_at is not None and first_check is not None
    span = (record.checked_at - first_check).total_seconds()
    assert 3 <= record.checks <= span / INTERVAL + 1, (record.checks, span)


KNOB = {"kind": "callable", "callable": "tests.airflow.governor_knob:knob", "name": "knob", "hold_above": 1,
        "stop_above": 5}


def test_a_signal_above_stop_above_stops_the_backfill_until_go(governed: Source) -> None:
    governed.create(200)
    governed.set_config(batch_size=10, duration=7, max_tasks_per_cycle=1, **RATE,
                        governor={"health_interval": INTERVAL, "signals": [KNOB]})
    state = GovernorState(governed.tracker.redis, DAG_ID)
    while_stopped: dict[str, Any] = {}

    def drive() -> None:
        wait_until(lambda: governed.tracker.progress().batches_done >= 3)
        governor_knob.turn(10)
        wait_until(governed.tracker.is_stopped)
        done = governed.tracker.progress().batches_done
        time.sleep(2 * INTERVAL)
        while_stopped.update(by_governor=state.stopped_by_governor(), last=state.history()[0],
                             ran=governed.tracker.progress().batches_done - done)
        governor_knob.turn(0)
        governed.tracker.go()

    driver = in_background(drive)
    assert run_cycle() == "success"  # stopped mid-cycle; the chain waits (deferred) for go
    driver.join(timeout=30)
    assert while_stopped["by_governor"] and while_stopped["ran"] == 0
    assert (while_stopped["last"].decision, while_stopped["last"].reason) == ("stop", "knob 10 > 5")
    assert 3 <= governed.tracker.progress().batches_done < 20
    run_until_finished(governed)
    assert set(governed.counters().values()) == {1}
    assert [e.decision for e in state.history()][:2] == ["ok", "stop"]  # after go, the knob at 0: ok again


@pytest.mark.parametrize(("signal", "field", "says"), [
    ({"kind": "load_average", "hold_above": 1}, "governor.signals[0].kind", "must be one of replica_lag"),
    ({"kind": "active_sessions", "conn_id": "no_such_connection", "hold_above": 5}, "governor.signals[0].conn_id",
     "no Airflow connection 'no_such_connection'"),
    ({"kind": "replica_lag", "conn_id": REPLICA_CONN, "hold_above": -2}, "governor.signals[0].hold_above",
     "must be a finite number >= 0"),
    ({"kind": "callable", "callable": "tests.airflow.no_such_module:lag", "hold_above": 1},
     "governor.signals[0].callable", "'tests.airflow.no_such_module:lag' does not import (ModuleNotFoundError"),
])
def test_a_bad_governor_fails_the_plan_naming_the_field_and_plans_nothing(
        governed: Source, signal: dict[str, Any], field: str, says: str) -> None:
    governed.create(50)
    governed.set_config(batch_size=10, duration=2, **RATE, governor={"signals": [signal]})
    assert run_cycle() == "failed"
    halt = governed.tracker.halt()
    assert halt is not None and halt[0].startswith("ConfigError: invalid spreader configuration: ")
    assert f"{field}: {says}" in halt[0]
    assert not governed.tracker.is_started() and set(governed.counters().values()) == {0}
