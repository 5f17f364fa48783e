"""The synthetic work of the end-to-end benchmark, shared by the Airflow DAG and the plain-script baseline.

Each row costs ``ROW_SECONDS`` of sleep (like a call to a key-management service per row), then one UPDATE
per batch bumps the rows' counter and records when the batch was planned, started and finished. The
sleep comes before the UPDATE, so on SQLite (one writer at a time) the write lock is held only for the
short UPDATE, not for the sleep: concurrent batches really overlap, as on PostgreSQL.
"""

from __future__ import annotations

import os
import time
from typing import Any

import sqlalchemy as sa

TABLE = "spreader_bench_rows"
ROW_SECONDS = float(os.environ.get("SPREADER_BENCH_ROW_SECONDS", "0.001"))

rows = sa.table(TABLE, sa.column("id"), sa.column("counter"), sa.column("planned_at"), sa.column("started_at"),
                sa.column("finished_at"), sa.column("worker"))


def create_table(engine: sa.Engine, count: int) -> None:
    """A fresh table of ``count`` rows, ids 1..count, counters at 0."""
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {TABLE}"))
        conn.execute(sa.text(f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, counter INTEGER NOT NULL DEFAULT 0, "
                             "payload TEXT, planned_at DOUBLE PRECISION, started_at DOUBLE PRECISION, "
                             "finished_at DOUBLE PRECISION, worker TEXT)"))
        step = 50_000
        for low in range(1, count + 1, step):
            high = min(count, low + step - 1)
            if engine.dialect.name == "postgresql":
                conn.execute(sa.text(f"INSERT INTO {TABLE} (id, payload) SELECT g, md5(g::text) "
                                     "FROM generate_series(:low, :high) AS g"), {"low": low, "high": high})
            else:
                conn.execute(sa.text(f"INSERT INTO {TABLE} (id, payload) VALUES (:id, :payload)"),
                             [{"id": i, "payload": f"{i:032x}"} for i in range(low, high + 1)])


def reset_rows(engine: sa.Engine) -> None:
    """Counters back to 0 and timings cleared, between two runs over the same table."""
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {TABLE} SET counter = 0, planned_at = NULL, started_at = NULL, "
                             "finished_at = NULL, worker = NULL WHERE counter <> 0 OR started_at IS NOT NULL"))


def do_work(connection: sa.Connection, begin_id: int, end_id: int, planned_at: float | None, worker: str) -> int:
    """Sleep ``ROW_SECONDS`` per id of the range, then mark its rows (``worker``: who ran it, to find
    consecutive batches of one task instance or thread); returns the rows changed."""
    started = time.time()
    time.sleep(ROW_SECONDS * (end_id - begin_id + 1))
    statement = (sa.update(rows).where(rows.c.id.between(begin_id, end_id))
                 .values(counter=rows.c.counter + 1, planned_at=planned_at, started_at=started,
                         finished_at=time.time(), worker=worker))
    return int(connection.execute(statement).rowcount)


def airflow_work(connection: sa.Connection, begin_id: int, end_id: int, context: Any = None) -> int:
    """The work as the DAG runs it: the batch's planned time comes from the task's own batch list."""
    planned = None
    task = (context or {}).get("task")
    for batch in getattr(task, "batches", None) or []:
        if int(batch["begin_id"]) == begin_id:
            planned = _epoch(batch["run_at"])
            break
    ti = (context or {}).get("ti")
    worker = f"{getattr(ti, 'run_id', '')}/{getattr(ti, 'map_index', '')}"
    return do_work(connection, begin_id, end_id, planned, worker)


def _epoch(value: Any) -> float:
    from datetime import datetime  # noqa: PLC0415 (keep the module's import light for the DAG processor)

    return (datetime.fromisoformat(value) if isinstance(value, str) else value).timestamp()
