"""The report task: make a cycle's failures show as a failed DAG run, and checkpoint after its batches."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator, Context

from airflow_spreader.cycle.model import CycleSummary
from airflow_spreader.errors import SpreaderError
from airflow_spreader.hooks import checkpoint
from airflow_spreader.hooks.spreader import SpreaderHook
from airflow_spreader.operators.plan import CYCLE_XCOM_KEY


class CycleFailed(SpreaderError, RuntimeError):
    """The plan or some batches of this cycle failed; the message says which and what to do."""


class CycleReportOperator(BaseOperator):
    """A leaf beside the chain task: the chain goes on past failed ranges, but the run turns red.

    Without it a run whose batches failed would end green, since the chain task succeeds. Given
    ``backfill`` and ``config_variable``, it also records the Airflow-side checkpoint once the cycle's
    batches are over: the tightest low-water mark a cycle gives.
    """

    ui_color = "#fce8e6"

    def __init__(self, *, plan_task_id: str = "plan", batch_task_id: str = "batches", backfill: str | None = None,
                 config_variable: str | None = None, redis_conn_id: str = "redis_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id
        self.batch_task_id = batch_task_id
        self.backfill = backfill
        self.config_variable = config_variable
        self.redis_conn_id = redis_conn_id

    def save_checkpoint(self) -> None:
        if not (self.backfill and self.config_variable):
            return
        try:
            checkpoint.save(self.config_variable, SpreaderHook(self.redis_conn_id).tracker(self.backfill))
        except Exception as error:  # the plan and chain tasks save it too: a report is not failed for it
            self.log.warning("Could not record the checkpoint of %r: %s", self.backfill, error)

    def execute(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        self.save_checkpoint()
        cycle = ti.xcom_pull(task_ids=self.plan_task_id, key=CYCLE_XCOM_KEY)
        if not cycle:
            raise CycleFailed(f"the {self.plan_task_id!r} task failed: see its log (nothing was planned)")
        failed = ti.get_ti_count(dag_id=ti.dag_id, task_ids=[self.batch_task_id], run_ids=[ti.run_id],
                                 states=["failed", "upstream_failed"])
        if failed:
            raise CycleFailed(f"{failed} batch task instances of this cycle failed; their ranges are kept as "
                              "failed ranges (see their logs); the other ranges go on")
        summary = CycleSummary.from_xcom(cycle)
        self.log.info("Cycle done: %s", summary)
        return summary.to_xcom()
