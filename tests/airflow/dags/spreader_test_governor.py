"""A backfill DAG (airflow dag file) watched by the governor, for tests/airflow/test_governor_dag.py.

Its source connection and the governor's connections are set by the tests (a private primary and its
streaming replica). Each batch increments a counter per row and stamps when it ran.
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from airflow_spreader.dag_factory import backfill_dag

TABLE = "spreader_items"


def bump_counter(connection: sa.Connection, begin_id: int, end_id: int) -> int:
    items = sa.table(TABLE, sa.column("id"), sa.column("counter"), sa.column("processed_at"))
    result = connection.execute(sa.update(items).where(items.c.id.between(begin_id, end_id))
                                .values(counter=items.c.counter + 1, processed_at=time.time()))
    return result.rowcount


governed_backfill = backfill_dag("spreader_test_governor", table=TABLE, source_conn_id="spreader_test_governor",
                                 work=bump_counter, retries=0, control_retries=0)

# dag.test() runs one task at a time in any ready order: the chain task may wait out the cycle (in the task)
# before the batches start, making them all late. The timing tests need the batches on time: chain after them.
governed_backfill.task_dict["batches"] >> governed_backfill.task_dict["next_cycle"]
