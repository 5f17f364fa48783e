"""The report task: make a cycle's failures show as a failed DAG run."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator, Context

from airflow_spreader.operators.plan import CYCLE_XCOM_KEY


class CycleFailed(RuntimeError):
    """The plan or some batches of this cycle failed; the message says which and what to do."""


class CycleReportOperator(BaseOperator):
    """A leaf beside the chain task: the chain goes on past failed ranges, but the run turns red.

    Without it a run whose batches failed would end green, since its only leaf (the chain task)
    succeeds.
    """

    ui_color = "#fce8e6"

    def __init__(self, *, plan_task_id: str = "plan", batch_task_id: str = "batches", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id
        self.batch_task_id = batch_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        cycle = ti.xcom_pull(task_ids=self.plan_task_id, key=CYCLE_XCOM_KEY)
        if not cycle:
            raise CycleFailed(f"the {self.plan_task_id!r} task failed: see its log (nothing was planned)")
        failed = ti.get_ti_count(dag_id=ti.dag_id, task_ids=[self.batch_task_id], run_ids=[ti.run_id],
                                 states=["failed", "upstream_failed"])
        if failed:
            raise CycleFailed(f"{failed} batch task instances of this cycle failed; their ranges are kept as "
                              "failed ranges (see their logs); the other ranges go on")
        self.log.info("Cycle done: %s", cycle)
        return dict(cycle)
