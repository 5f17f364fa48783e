"""The airflow-spreader benchmark DAG (read by the Airflow dag-processor; `python -m bench.run` drives it).

One backfill of the table ``spreader_bench_rows`` whose work sleeps 1 ms per row then bumps a counter
and records the batch's planned, start and end times (bench/workload.py). Everything else is set by the
benchmark through the REST API before each trigger: the Variable ``spreader__spreader_bench`` (rate,
batch size, grouping), the pool ``spreader_bench`` (concurrency), the tracker's bounds in Redis.

Connections, from the environment the benchmark gives the stack: ``spreader_bench_source`` (the table's
database) and ``redis_default``.
"""

from __future__ import annotations

from airflow_spreader.dag_factory import backfill_dag
from bench.workload import TABLE, airflow_work

dag = backfill_dag(
    "spreader_bench",
    table=TABLE,
    source_conn_id="spreader_bench_source",
    work=airflow_work,
    retries=0,
    initial_config={"batch_size": 100, "duration": 30, "per_second_on_peak": 2, "per_second_off_peak": 2,
                    "max_tasks_per_cycle": 8},
)
