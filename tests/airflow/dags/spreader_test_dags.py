"""Backfill DAGs (airflow dag files) that the tests run under dag.test() and a real scheduler.

Each increments a counter column per row, so tests can check every id was processed once.
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from airflow.sdk import Context

from airflow_spreader.dag_factory import backfill_dag
from airflow_spreader.operators.batch import SpreadBatchOperator
from airflow_spreader.operators.plan import PlanCycleOperator
from airflow_spreader.state.records import ClaimedBatch

TABLE = "spreader_items"


def bump_counter(connection: sa.Connection, begin_id: int, end_id: int) -> int:
    items = sa.table(TABLE, sa.column("id"), sa.column("counter"), sa.column("processed_at"))
    result = connection.execute(sa.update(items).where(items.c.id.between(begin_id, end_id))
                                .values(counter=items.c.counter + 1, processed_at=time.time()))
    stop_when_counted()
    return result.rowcount


def stop_when_counted() -> None:
    """While ``$AIRFLOW_HOME/stop-after`` holds ``NAME N``, the N-th batch to run stops the backfill NAME
    (the console's ``stop``) as its work ends: a stop that lands mid-cycle however late the batches run."""
    home = os.environ.get("AIRFLOW_HOME")
    flag = Path(home) / "stop-after" if home else None
    if flag is None or not flag.exists():
        return
    name, left = flag.read_text().split()
    if int(left) > 1:
        flag.write_text(f"{name} {int(left) - 1}")
        return
    flag.unlink()
    from airflow_spreader.hooks.spreader import SpreaderHook

    SpreaderHook().tracker(name).stop()


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


class WorkerKilled(BaseException):
    """Stands for a SIGKILL: no ``except Exception`` sees it, so Redis never hears of the commit."""


class DiesAfterCommit(BumpCounter):
    """While the file ``$AIRFLOW_HOME/die-after-commit`` exists, commit one batch's work, then die."""

    def run_batch(self, batch: ClaimedBatch, context: Context, generation: str) -> int | None:
        rows = super().run_batch(batch, context, generation)
        flag = Path(os.environ["AIRFLOW_HOME"]) / "die-after-commit"
        if flag.exists():
            flag.unlink()
            raise WorkerKilled(f"killed after the commit of {batch.id_range}")
        return rows


dies_backfill = backfill_dag("spreader_test_dies", table=TABLE, source_conn_id="spreader_test_dies",
                             batch_operator=DiesAfterCommit, retries=0, control_retries=0)
dies_unledgered_backfill = backfill_dag("spreader_test_dies_unledgered", table=TABLE,
                                        source_conn_id="spreader_test_dies_unledgered",
                                        batch_operator=DiesAfterCommit, retries=0, control_retries=0,
                                        ledger_table=None)


class PlanFailsAfterClaim(PlanCycleOperator):
    """The plan's first try fails after its claim (as a failing checkpoint write or XCom push would)."""

    def plan(self, context: Context) -> list[dict[str, Any]]:
        groups = super().plan(context)
        if context["ti"].try_number == 1:
            raise RuntimeError("the plan failed after its claim")
        return groups


plan_retry_backfill = backfill_dag("spreader_test_plan_retry", table=TABLE, source_conn_id="spreader_test_plan_retry",
                                   work=bump_counter, retries=0, control_retries=1,
                                   retry_delay=timedelta(seconds=1))
plan_retry_backfill.task_dict["plan"].__class__ = PlanFailsAfterClaim  # the factory takes no plan class


class PoisonRow(ValueError):
    """A row the work cannot process (until the "fix": the file of poison ids is deleted)."""


def bump_unless_poison(connection: sa.Connection, begin_id: int, end_id: int) -> int:
    """Raises on the ids listed in ``$AIRFLOW_HOME/poison-ids.json`` while that file exists."""
    listed = Path(os.environ["AIRFLOW_HOME"]) / "poison-ids.json"
    bad = [key for key in (json.loads(listed.read_text()) if listed.exists() else []) if begin_id <= key <= end_id]
    if bad:
        raise PoisonRow(f"row {min(bad)} cannot be processed")
    return bump_counter(connection, begin_id, end_id)


poison_backfill = backfill_dag("spreader_test_poison", table=TABLE, source_conn_id="spreader_test_poison",
                               work=bump_unless_poison, retries=0, control_retries=0, max_split_depth=2,
                               retry_delay=timedelta(seconds=1))
