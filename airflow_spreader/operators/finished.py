"""The ``finished`` task: its outlet Asset gets an event when, and only when, the backfill finished in this run."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator, Context

from airflow_spreader.compat import AirflowSkipException


class BackfillFinishedOperator(BaseOperator):
    """Succeeds (so Airflow records an event for its ``outlets``) when the chain task of this run ended the
    backfill finished, verified if the DAG has a ``pending`` predicate, and was the first to announce it;
    skipped otherwise, and Airflow records no event for a skipped task. A failed or incomplete chain
    fails the chain task, and this task is then ``upstream_failed``: no event either.
    """

    ui_color = "#d2f5dc"

    def __init__(self, *, backfill: str, chain_task_id: str = "next_cycle", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backfill = backfill
        self.chain_task_id = chain_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        summary = context["ti"].xcom_pull(task_ids=self.chain_task_id)
        if not isinstance(summary, dict) or not summary.get("announced"):
            raise AirflowSkipException(f"Backfill {self.backfill!r} did not finish in this run: no Asset event")
        self.log.info("Backfill %r finished: an event for %s", self.backfill,
                      ", ".join(getattr(asset, "uri", str(asset)) for asset in self.outlets))
        return summary
