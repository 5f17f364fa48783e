"""The governor's readers against real servers: PostgreSQL (a private primary) and MariaDB.

active_sessions counts other sessions running a query (a few pg_sleep / SLEEP sessions), probe_latency
times a probe query (stuck behind a lock), and a check that cannot reach its server is a failed reading,
which holds the backfill.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_spreader.core.governor import decide
from airflow_spreader.core.governor_config import GovernorConfig
from airflow_spreader.hooks.governor import take_reading
from devtools.replica import StreamingPair
from tests.airflow.conftest import MARIADB_URL, source_connection

pytestmark = pytest.mark.airflow


@pytest.fixture(scope="module")
def primary() -> Iterator[str]:
    pair = StreamingPair()
    try:
        pair.start()
        yield pair.primary_url
    finally:
        pair.stop()


def connect(monkeypatch: pytest.MonkeyPatch, conn_id: str, url: str) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", source_connection(sa.make_url(url)))


def reading(kind: str, conn_id: str, **extra: Any) -> tuple[float | None, str | None]:
    config = GovernorConfig.from_dict({"signals": [{"kind": kind, "conn_id": conn_id, "hold_above": 1, **extra}]})
    [(_, value)] = take_reading(config)
    return value.value, value.error


def hold_sessions(url: str, statement: str, count: int) -> list[threading.Thread]:
    def run() -> None:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            conn.execute(sa.text(statement))
        engine.dispose()

    threads = [threading.Thread(target=run, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def locked_for(url: str, lock: str, unlock: str, seconds: float) -> threading.Thread:
    """A session that takes ``lock``, keeps it ``seconds``, then runs ``unlock``."""
    taken = threading.Event()

    def run() -> None:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            conn.execute(sa.text(lock))
            taken.set()
            time.sleep(seconds)
            conn.execute(sa.text(unlock))
            conn.commit()
        engine.dispose()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert taken.wait(10)
    return thread


@pytest.mark.postgres
def test_postgres_active_sessions_counts_the_others_running_a_query(primary: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, "governor_pg", primary)
    assert reading("active_sessions", "governor_pg") == (0.0, None)  # the probe's own session is not counted
    sleepers = hold_sessions(primary, "SELECT pg_sleep(3)", 3)
    deadline = time.monotonic() + 5
    while reading("active_sessions", "governor_pg")[0] != 3.0:
        assert time.monotonic() < deadline, "three sleeping sessions were never seen active"
        time.sleep(0.1)
    for thread in sleepers:
        thread.join()
    assert reading("active_sessions", "governor_pg") == (0.0, None)


@pytest.mark.mariadb
def test_mariadb_active_sessions_is_threads_running(monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, "governor_maria", MARIADB_URL)
    sleepers = hold_sessions(MARIADB_URL, "SELECT SLEEP(3)", 3)
    time.sleep(0.5)
    value, error = reading("active_sessions", "governor_maria")
    assert error is None and value is not None and value >= 3
    for thread in sleepers:
        thread.join()


def create_probe_table(url: str) -> None:
    """An empty table ``probe_t`` for the probe query to read and a session to lock."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS probe_t"))
        conn.execute(sa.text("CREATE TABLE probe_t (id int)"))
    engine.dispose()


@pytest.mark.postgres
def test_postgres_probe_latency_rises_behind_a_lock(primary: str, monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, "governor_pg", primary)
    create_probe_table(primary)
    probe = {"query": "SELECT count(*) FROM probe_t", "samples": 1}
    quiet, _ = reading("probe_latency", "governor_pg", **probe)
    assert quiet is not None and quiet < 500
    holder = locked_for(primary, "BEGIN; LOCK TABLE probe_t IN ACCESS EXCLUSIVE MODE", "COMMIT", 1.5)
    blocked, _ = reading("probe_latency", "governor_pg", **probe)
    holder.join()
    assert blocked is not None and blocked >= 1000  # milliseconds
    assert reading("probe_latency", "governor_pg", samples=5)[0] is not None  # SELECT 1 by default
    # commit: each sample its own transaction, timed with its commit (3 transaction ids, not one)
    write = {"query": "INSERT INTO probe_t VALUES (txid_current()::int)", "samples": 3, "commit": True}
    assert reading("probe_latency", "governor_pg", **write)[0] is not None
    with sa.create_engine(primary).connect() as conn:
        assert conn.execute(sa.text("SELECT count(DISTINCT id), count(*) FROM probe_t")).one() == (3, 3)


@pytest.mark.mariadb
def test_mariadb_probe_latency_rises_behind_a_table_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, "governor_maria", MARIADB_URL)
    create_probe_table(MARIADB_URL)
    probe = {"query": "SELECT count(*) FROM probe_t", "samples": 1}
    holder = locked_for(MARIADB_URL, "LOCK TABLES probe_t WRITE", "UNLOCK TABLES", 1.5)
    blocked, _ = reading("probe_latency", "governor_maria", **probe)
    holder.join()
    assert blocked is not None and blocked >= 1000
    quiet, _ = reading("probe_latency", "governor_maria", **probe)
    assert quiet is not None and quiet < 500


@pytest.mark.mariadb
def test_replica_lag_of_a_server_that_is_no_replica_is_a_failed_check(monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, "governor_maria", MARIADB_URL)
    value, error = reading("replica_lag", "governor_maria")
    assert value is None and error is not None and error.startswith("NotAReplica: ")


def test_a_check_that_cannot_connect_is_a_failed_reading_and_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, "governor_down", "postgresql+psycopg2://postgres@127.0.0.1:1/postgres")
    config = GovernorConfig.from_dict({"signals": [{"kind": "active_sessions", "conn_id": "governor_down",
                                                    "hold_above": 100}]})
    readings = take_reading(config)
    assert readings[0][1].value is None and (readings[0][1].error or "").startswith("OperationalError: ")
    verdict = decide(config.signals, [r for _, r in readings])
    assert verdict.decision == "hold" and verdict.reason.startswith("active sessions: check failed (OperationalError")


@pytest.mark.postgres
def test_a_check_that_takes_too_long_is_cancelled_and_fails(primary: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_spreader.hooks import health

    connect(monkeypatch, "governor_pg", primary)
    monkeypatch.setattr(health, "STATEMENT_TIMEOUT_MS", 300)
    began = time.monotonic()
    value, error = reading("sql", "governor_pg", query="SELECT 1 FROM pg_sleep(3)")
    assert value is None and (error or "").startswith("OperationalError: ") and "statement timeout" in (error or "")
    assert time.monotonic() - began < 2.5
