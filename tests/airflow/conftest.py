"""Fixtures for running the backfill DAGs under dag.test(): metadata DB, connections, source tables."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import pytest
import redis
import sqlalchemy as sa

from airflow_spreader.state.tracker import Tracker
from tests.conftest import AIRFLOW_HOME, MARIADB_URL, POSTGRES_URL

SOURCE_URLS = {"sqlite": f"sqlite:///{AIRFLOW_HOME / 'source.db'}", "subclass": f"sqlite:///{AIRFLOW_HOME / 'sub.db'}",
               "postgres": POSTGRES_URL, "mariadb": MARIADB_URL,
               "dies": f"sqlite:///{AIRFLOW_HOME / 'dies.db'}",
               "dies_unledgered": f"sqlite:///{AIRFLOW_HOME / 'dies-unledgered.db'}",
               "plan_retry": f"sqlite:///{AIRFLOW_HOME / 'plan-retry.db'}",
               "poison": f"sqlite:///{AIRFLOW_HOME / 'poison.db'}",
               "verify": f"sqlite:///{AIRFLOW_HOME / 'verify.db'}",
               "bad_pending": f"sqlite:///{AIRFLOW_HOME / 'bad-pending.db'}"}
TABLE = "spreader_items"


def sparse_keys(rows: int, seed: int = 7) -> list[int]:
    """``rows`` distinct keys spread over 1..10^12, ascending: "ids" batching would walk 10^12 ids."""
    return sorted(random.Random(seed).sample(range(1, 10**12 + 1), rows))


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A migrated metadata database (SQLite in the session's AIRFLOW_HOME)."""
    result = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True,
                            env=os.environ.copy(), check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def redis_connection(url: str) -> str:
    parsed = urlparse(url)
    db = int((parsed.path or "/0").strip("/") or 0)
    return json.dumps({"conn_type": "redis", "host": parsed.hostname, "port": parsed.port or 6379,
                       "password": parsed.password, "extra": {"db": db}})


def source_connection(url: sa.URL) -> str:
    if url.get_backend_name() == "sqlite":
        return json.dumps({"conn_type": "sqlite", "host": url.database})
    conn_type = "postgres" if url.get_backend_name() == "postgresql" else "mysql"
    return json.dumps({"conn_type": conn_type, "host": url.host, "port": url.port, "login": url.username,
                       "password": url.password, "schema": url.database})


@dataclass
class Source:
    """A source table with a counter per row, and the backfill DAG that walks it."""

    dag_id: str
    engine: sa.Engine
    tracker: Tracker

    def create(self, rows: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {TABLE}"))
            conn.execute(sa.text(f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, counter INTEGER NOT NULL, "
                                 "processed_at DOUBLE PRECISION)"))
            if rows:
                conn.execute(sa.text(f"INSERT INTO {TABLE} (id, counter) VALUES (:id, 0)"),
                             [{"id": i} for i in range(1, rows + 1)])

    def create_keys(self, keys: Iterable[int]) -> None:
        """The table with one row per key (BIGINT: sparse keys, "rows" batching), every counter 0."""
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {TABLE}"))
            conn.execute(sa.text(f"CREATE TABLE {TABLE} (id BIGINT PRIMARY KEY, counter INTEGER NOT NULL, "
                                 "processed_at DOUBLE PRECISION)"))
            conn.execute(sa.text(f"INSERT INTO {TABLE} (id, counter) VALUES (:id, 0)"), [{"id": k} for k in keys])

    def counters(self) -> dict[int, int]:
        with self.engine.connect() as conn:
            return dict(conn.execute(sa.text(f"SELECT id, counter FROM {TABLE} ORDER BY id")).all())

    def processed_at(self) -> dict[int, float]:
        with self.engine.connect() as conn:
            return dict(conn.execute(sa.text(f"SELECT id, processed_at FROM {TABLE} WHERE processed_at IS NOT NULL"))
                        .all())

    def set_config(self, **values: Any) -> None:
        from airflow.models.variable import Variable  # server side: the test process is not a task

        Variable.set(f"spreader__{self.dag_id}", json.dumps(values))

    def set_raw_config(self, text: str) -> None:
        from airflow.models.variable import Variable

        Variable.set(f"spreader__{self.dag_id}", text)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def source(request: pytest.FixtureRequest, airflow_db: None, redis_url: str,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Source]:
    url = sa.make_url(SOURCE_URLS[request.param])
    dag_id = f"spreader_test_{request.param}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{dag_id.upper()}", source_connection(url))
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_DEFAULT", redis_connection(redis_url))
    engine = sa.create_engine(url)
    tracker = Tracker(dag_id, redis.Redis.from_url(redis_url))
    forget(dag_id, tracker)
    yield Source(dag_id, engine, tracker)
    forget(dag_id, tracker)
    engine.dispose()


def forget(dag_id: str, tracker: Tracker) -> None:
    """A clean slate: no tracker state in Redis and no checkpoint in Airflow."""
    from airflow.models.variable import Variable

    tracker.reset()
    Variable.delete(f"spreader__{dag_id}__checkpoint")
