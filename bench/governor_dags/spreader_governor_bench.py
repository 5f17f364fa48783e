"""The governor benchmark's backfill DAG (bench/governor_cost.py drives it through the REST API).

It rewrites ``pgbench_accounts`` (pgbench's table, key ``aid``) on the benchmark's private PostgreSQL while
pgbench runs its workload on the same table: each batch is one ``UPDATE ... WHERE aid BETWEEN`` of the
whole range, a write big enough to hurt, and records its range, rows and times in
``governor_bench_batches`` in the same transaction.

Connections, from the environment the benchmark gives the stack: ``spreader_governor_bench_source`` (the
private server, also the governor's probe) and ``redis_default``.
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from airflow_spreader.dag_factory import backfill_dag

REWRITE = sa.text("UPDATE pgbench_accounts SET filler = md5(aid::text || now()::text) "
                  "WHERE aid BETWEEN :begin_id AND :end_id")
RECORD = sa.text("INSERT INTO governor_bench_batches (begin_id, end_id, rows, started, ended) "
                 "VALUES (:begin_id, :end_id, :rows, :started, :ended)")


def rewrite(connection: sa.Connection, begin_id: int, end_id: int) -> int:
    started = time.time()
    rows = connection.execute(REWRITE, {"begin_id": begin_id, "end_id": end_id}).rowcount
    connection.execute(RECORD, {"begin_id": begin_id, "end_id": end_id, "rows": rows, "started": started,
                                "ended": time.time()})
    return int(rows)


dag = backfill_dag("spreader_governor_bench", table="pgbench_accounts", key="aid",
                   source_conn_id="spreader_governor_bench_source", work=rewrite, retries=0)
