"""What keeps small batches at high rates on time: the batch task looks its source connection up once per task
process (not once per batch) and before its first wait; the DAG lets the pool alone limit the batches."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from airflow.sdk import BaseHook

from airflow_spreader.dag_factory import MAX_ACTIVE_TASKS, backfill_dag
from airflow_spreader.operators.batch import SpreadBatchOperator
from tests.airflow.conftest import Source

pytestmark = pytest.mark.airflow


def test_the_source_connection_is_looked_up_once_per_task_process(source: Source,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    lookups: list[str] = []
    real = BaseHook.get_connection.__func__  # type: ignore[attr-defined]

    def counted(cls: Any, conn_id: str) -> Any:
        lookups.append(conn_id)
        return real(cls, conn_id)

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(counted))
    operator = SpreadBatchOperator(task_id="batches", batches=[], backfill=source.dag_id,
                                   source_conn_id=source.dag_id, work=lambda connection, begin, end: 0)
    operator.warm_up()  # what run_due does before its first wait
    assert lookups == [source.dag_id] and operator.source_engine().pool.checkedin() == 1  # a connection is ready
    engines = {id(operator.source_engine()) for _ in range(5)}
    assert lookups == [source.dag_id] and len(engines) == 1
    with operator.source_engine().connect() as conn:  # the real source database
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1


def test_the_pool_alone_limits_a_runs_batches() -> None:
    """Airflow's default max_active_tasks (16 per run) would leave one of 16 batch task instances queued beside
    next_cycle; a user's own value is kept."""
    dag = backfill_dag("spreader_test_active", table="t", source_conn_id="c", work=lambda c, b, e: 0)
    assert dag.max_active_tasks == MAX_ACTIVE_TASKS >= 1024 + 4
    mine = backfill_dag("spreader_test_active_mine", table="t", source_conn_id="c", work=lambda c, b, e: 0,
                        max_active_tasks=8)
    assert mine.max_active_tasks == 8
