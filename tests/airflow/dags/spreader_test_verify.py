"""Backfill DAGs (airflow dag files) with a ``pending`` predicate, and a DAG scheduled on a backfill's Asset.

The work of ``spreader_test_verify`` sets ``counter = 1`` on the rows it processes (``counter = 0`` means
pending), but, while the file ``$AIRFLOW_HOME/skip-rows`` lists ids, it silently leaves those rows alone:
a work that "succeeds" with rows undone. Its UPDATE touches pending rows only, so a redo of a range
processes its pending rows and nothing twice.
"""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa
from airflow.sdk import DAG, task

from airflow_spreader.dag_factory import backfill_asset, backfill_dag

TABLE = "spreader_items"
items = sa.table(TABLE, sa.column("id"), sa.column("counter"))


def skipped_ids() -> list[int]:
    flag = Path(os.environ["AIRFLOW_HOME"]) / "skip-rows"
    return [int(word) for word in flag.read_text().split()] if flag.exists() else []


def process_pending_rows(connection: sa.Connection, begin_id: int, end_id: int) -> int:
    statement = (sa.update(items).where(items.c.id.between(begin_id, end_id), items.c.counter == 0,
                                        items.c.id.not_in(skipped_ids()))
                 .values(counter=items.c.counter + 1))
    return connection.execute(statement).rowcount


verify_backfill = backfill_dag("spreader_test_verify", table=TABLE, source_conn_id="spreader_test_verify",
                               work=process_pending_rows, retries=0, control_retries=0,
                               pending="counter = 0", pending_span_batches=2)
bad_pending_backfill = backfill_dag("spreader_test_bad_pending", table=TABLE,
                                    source_conn_id="spreader_test_bad_pending", work=process_pending_rows,
                                    retries=0, control_retries=0, pending="no_such_column IS NULL")

with DAG("spreader_test_downstream", schedule=[backfill_asset("spreader_test_verify")]) as downstream:
    @task
    def read_the_table() -> None:
        """Runs once the backfill is done."""

    read_the_table()
