"""A backfill DAG (airflow dag file) whose work takes time in proportion to its ids, for
tests/airflow/test_governor_adapt.py: each batch increments a counter per row, stamps when it ran, and
sleeps 4 ms per id (a batch of 50 ids takes about 0.2 s)."""

from __future__ import annotations

import time

import sqlalchemy as sa

from airflow_spreader.dag_factory import backfill_dag

TABLE = "spreader_items"
SECONDS_PER_ID = 0.004


def slow_bump(connection: sa.Connection, begin_id: int, end_id: int) -> int:
    items = sa.table(TABLE, sa.column("id"), sa.column("counter"), sa.column("processed_at"))
    result = connection.execute(sa.update(items).where(items.c.id.between(begin_id, end_id))
                                .values(counter=items.c.counter + 1, processed_at=time.time()))
    time.sleep(SECONDS_PER_ID * (end_id - begin_id + 1))
    return result.rowcount


adapted_backfill = backfill_dag("spreader_test_adapt", table=TABLE, source_conn_id="spreader_test_adapt",
                                work=slow_bump, retries=0, control_retries=0)

# As in spreader_test_governor.py: the chain after the batches, so that the batches start on time.
adapted_backfill.task_dict["batches"] >> adapted_backfill.task_dict["next_cycle"]
