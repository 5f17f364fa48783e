"""Example airflow-spreader backfill DAG: recompute a derived column of a big `users` table.

Every row's `email_normalized` must be recomputed from `email` (trimmed, lower-cased). The work
for one id range is a plain function; `backfill_dag` turns it into a throttled, resumable
Airflow DAG (plan >> mapped batches >> next cycle). Tune it in the Variable
`spreader__example_backfill`; its batches run in the pool `example_backfill`.

Connections it expects (the demo sets them through the environment):
- `spreader_example_source`: the database holding `users` (SQLite, PostgreSQL or MySQL);
- `redis_default`: the Redis that keeps the backfill's position and progress.
"""

from __future__ import annotations

import sqlalchemy as sa

from airflow_spreader.dag_factory import backfill_dag

users = sa.table("users", sa.column("id"), sa.column("email"), sa.column("email_normalized"),
                 sa.column("backfill_count"))


def normalize_emails(connection: sa.Connection, begin_id: int, end_id: int) -> int:
    """Idempotent: running a range twice writes the same values (the counter shows the runs)."""
    statement = (
        sa.update(users)
        .where(users.c.id.between(begin_id, end_id))
        .values(email_normalized=sa.func.lower(sa.func.trim(users.c.email)),
                backfill_count=users.c.backfill_count + 1)
    )
    return connection.execute(statement).rowcount


dag = backfill_dag(
    "example_backfill",
    table="users",
    source_conn_id="spreader_example_source",
    work=normalize_emails,
    initial_config={"batch_size": 500, "duration": 20, "per_second_on_peak": 2.0,
                    "per_second_off_peak": 5.0, "max_tasks_per_cycle": 16},
)
