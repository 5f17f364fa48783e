"""The chain task alone (an airflow dag file): a stand-in plan task says when the cycle ends.

The run's conf ``{"ends_in": SECONDS}`` sets the cycle's planned end that many seconds after the plan task;
``lead`` is the cycle's ``lead_seconds``, ``batches`` how many batches its plan claimed.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import DAG, task

from airflow_spreader.cycle.model import CycleSummary
from airflow_spreader.operators.next_cycle import NextCycleOperator
from airflow_spreader.operators.plan import CYCLE_XCOM_KEY

NAME = "spreader_test_next_cycle"
DURATION = 20.0

with DAG(NAME, schedule=None, start_date=datetime(2024, 1, 1, tzinfo=timezone.utc), catchup=False,
         is_paused_upon_creation=True) as dag:

    @task(task_id="plan")
    def plan(**context: Any) -> None:
        conf = context["dag_run"].conf
        begin_at = datetime.now(timezone.utc) + timedelta(seconds=float(conf.get("ends_in", 1.5)) - DURATION)
        context["ti"].xcom_push(key=CYCLE_XCOM_KEY, value=CycleSummary(
            begin_at=begin_at, duration=DURATION, lead_seconds=conf.get("lead", 0), per_second=1.0, on_peak=False,
            batches=conf.get("batches", 1), replanned=0, task_instances=1, cursor_before=None, cursor_after=None,
            stopped=False, finished=False).to_xcom())

    plan() >> NextCycleOperator(task_id="next_cycle", backfill=NAME, config_variable=f"spreader__{NAME}")
