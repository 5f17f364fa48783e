"""Backfill DAGs (airflow dag files) for the real-scheduler drills.

The work bumps a counter per row, so the drills can check that every id was processed exactly once,
and obeys a control table (sleep, fail N times, hang before or after the commit) so a drill can inject
trouble into chosen ranges. Each batch's planned time, start, end, process id and try are logged for the drills to read.
Logs and commands go through their own autocommit connection, outside the batch's transaction.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from airflow.sdk import Context

from airflow_spreader.dag_factory import backfill_dag
from airflow_spreader.operators.batch import SpreadBatchOperator
from airflow_spreader.sql.ledger import RangeAlreadyDone
from airflow_spreader.state.records import ClaimedBatch

CONTROL_URL = os.environ.get("SPREADER_DRILL_DB", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
_engines: dict[str, sa.Engine] = {}


def control() -> sa.Engine:
    if "control" not in _engines:
        _engines["control"] = sa.create_engine(CONTROL_URL, isolation_level="AUTOCOMMIT")
    return _engines["control"]


class DrillBatch(SpreadBatchOperator):
    """Bump the counter of each row, doing what the drill's control table says first."""

    def run_batch(self, batch: ClaimedBatch, context: Context, generation: str) -> int | None:
        started = time.time()
        ti = context["ti"]
        with control().connect() as conn:
            command: Any = conn.execute(sa.text(
                "SELECT sleep_s, fail_times, hang_s, hang_after_s, begin_id FROM drill_control WHERE dag_id = :dag "
                "AND begin_id IN (:begin, -1) ORDER BY begin_id DESC LIMIT 1"),
                {"dag": self.backfill, "begin": batch.begin_id}).first()
            entry = conn.execute(sa.text(
                "INSERT INTO drill_log (dag_id, begin_id, end_id, run_at, started, pid, try_number) "
                "VALUES (:dag, :begin, :end, :run_at, :started, :pid, :try) RETURNING id"),
                {"dag": self.backfill, "begin": batch.begin_id, "end": batch.end_id,
                 "run_at": batch.run_at.timestamp(), "started": started, "pid": os.getpid(),
                 "try": ti.try_number}).scalar_one()
            if command is not None:
                if command.hang_s:
                    time.sleep(command.hang_s)
                if command.fail_times and command.begin_id != -1:
                    conn.execute(sa.text("UPDATE drill_control SET fail_times = fail_times - 1 "
                                         "WHERE dag_id = :dag AND begin_id = :begin"),
                                 {"dag": self.backfill, "begin": batch.begin_id})
                    conn.execute(sa.text("UPDATE drill_log SET outcome = 'failed' WHERE id = :id"), {"id": entry})
                    raise RuntimeError(f"injected failure of {batch.id_range}")
                if command.sleep_s:
                    time.sleep(command.sleep_s)
            try:
                rows = super().run_batch(batch, context, generation)
            except RangeAlreadyDone:
                conn.execute(sa.text("UPDATE drill_log SET ended = :ended, outcome = 'already done' WHERE id = :id"),
                             {"ended": time.time(), "id": entry})
                raise
            conn.execute(sa.text("UPDATE drill_log SET ended = :ended, outcome = 'done' WHERE id = :id"),
                         {"ended": time.time(), "id": entry})
            if command is not None and command.hang_after_s:  # committed; Redis does not know yet
                time.sleep(command.hang_after_s)
        return rows

    def process(self, connection: sa.Connection, begin_id: int, end_id: int, context: Context) -> int | None:
        items = sa.table(f"{self.backfill}_items", sa.column("id"), sa.column("counter"))
        return connection.execute(sa.update(items).where(items.c.id.between(begin_id, end_id))
                                  .values(counter=items.c.counter + 1)).rowcount


# max_split_depth=0: a range failing on every try stays one failed range (test_drills checks that path; the
# bisection of failed ranges is tested under dag.test(), tests/airflow/test_poison_rows.py).
drill_a = backfill_dag("drill_a", table="drill_a_items", source_conn_id="drill_source", batch_operator=DrillBatch,
                       retries=1, retry_delay=timedelta(seconds=2), max_split_depth=0)
drill_b = backfill_dag("drill_b", table="drill_b_items", source_conn_id="drill_source", batch_operator=DrillBatch,
                       retries=1, retry_delay=timedelta(seconds=2))


class CeleryDrillBatch(DrillBatch):
    """Defers any wait over 2 s, so that task instances surely leave their worker and come back through Celery."""

    defer_threshold = 2.0
    wake_margin = 1.0


# The same DAG again for tests/scheduler/test_celery.py (CeleryExecutor, two workers), on its own table.
drill_celery = backfill_dag("drill_celery", table="drill_celery_items", source_conn_id="drill_source",
                            batch_operator=CeleryDrillBatch, retries=1, retry_delay=timedelta(seconds=2))
