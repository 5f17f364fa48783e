"""Backfill DAGs (airflow dag files) that the tests run under dag.test() and a real scheduler.

Each increments a counter column per row, so tests can check every id was processed once.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from airflow.sdk import Context

from airflow_spreader.dag_factory import backfill_dag
from airflow_spreader.operators.batch import SpreadBatchOperator

TABLE = "spreader_items"


def bump_counter(connection: sa.Connection, begin_id: int, end_id: int) -> int:
    items = sa.table(TABLE, sa.column("id"), sa.column("counter"), sa.column("processed_at"))
    result = connection.execute(sa.update(items).where(items.c.id.between(begin_id, end_id))
                                .values(counter=items.c.counter + 1, processed_at=time.time()))
    return result.rowcount


sqlite_backfill = backfill_dag("spreader_test_sqlite", table=TABLE, source_conn_id="spreader_test_sqlite",
                               work=bump_counter, retries=0, control_retries=0)
postgres_backfill = backfill_dag("spreader_test_postgres", table=TABLE, source_conn_id="spreader_test_postgres",
                                 work=bump_counter, retries=0, control_retries=0)
mariadb_backfill = backfill_dag("spreader_test_mariadb", table=TABLE, source_conn_id="spreader_test_mariadb",
                                work=bump_counter, retries=0, control_retries=0)


class BumpCounter(SpreadBatchOperator):
    """The subclass form of the work: override process()."""

    def process(self, connection: sa.Connection, begin_id: int, end_id: int, context: Context) -> int | None:
        return bump_counter(connection, begin_id, end_id)


subclass_backfill = backfill_dag("spreader_test_subclass", table=TABLE, source_conn_id="spreader_test_subclass",
                                 batch_operator=BumpCounter, retries=0, control_retries=0)
