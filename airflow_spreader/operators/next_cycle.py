"""The chain task: start the next cycle, or end the backfill with its summary."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowSkipException, DagRunTriggerException

from airflow_spreader.hooks.spreader import SpreaderHook
from airflow_spreader.operators import checkpoint
from airflow_spreader.operators.plan import CYCLE_XCOM_KEY
from airflow_spreader.state.records import Progress
from airflow_spreader.triggers.backfill_wait import BackfillWaitTrigger


class FailedRangesRemain(RuntimeError):
    """Everything else is done; these ranges wait for a fix and a retry of the failed ranges."""


def summary(progress: Progress, now: datetime) -> dict[str, Any]:
    """The final account of a backfill, for the log and XCom."""
    wall = (now - progress.started_at).total_seconds() if progress.started_at else 0.0
    return {
        "backfill": progress.name, "ids": progress.ids_done, "rows": progress.rows_done,
        "batches": progress.batches_done, "failed_batches": progress.batches_failed,
        "errors": progress.errors, "cycles": progress.cycles, "wall_seconds": round(wall, 1),
        "ids_per_second": round(progress.ids_done / wall, 2) if wall > 0 else None,
    }


class NextCycleOperator(BaseOperator):
    """Runs after the cycle's batches. Waits until ``begin_at + duration`` (a short wait sleeps, a long
    one defers), then triggers the next DAG run while there is work left.

    The chain ends when the backfill is finished (logging the summary) or left with only failed
    ranges (failing, so the run shows it). While the backfill is stopped it waits, deferred, for
    ``go``, then starts the next cycle, which plans the handed-back ranges first. When every id is
    planned but some batches are still in flight elsewhere, it waits for them or for their lease,
    instead of busy-looping empty cycles.
    """

    ui_color = "#e6f4ea"
    #: Waits up to this many seconds sleep in the task instead of deferring: a deferral and its resume in
    #: a new task process add 1-3 s to the gap between cycles, which lowers the sustained rate.
    defer_threshold: float = 10.0

    def __init__(self, *, backfill: str, config_variable: str, redis_conn_id: str = "redis_default",
                 plan_task_id: str = "plan", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backfill = backfill
        self.config_variable = config_variable
        self.redis_conn_id = redis_conn_id
        self.plan_task_id = plan_task_id

    def execute(self, context: Context) -> dict[str, Any] | None:
        return self.decide(context)

    def resume(self, context: Context, event: Any = None) -> dict[str, Any] | None:
        return self.decide(context)

    def decide(self, context: Context) -> dict[str, Any] | None:
        cycle = context["ti"].xcom_pull(task_ids=self.plan_task_id, key=CYCLE_XCOM_KEY)
        if not cycle:
            raise AirflowSkipException("The plan task did not finish: the chain of cycles ends here")
        tracker = SpreaderHook(self.redis_conn_id).tracker(self.backfill)
        checkpoint.save(self.config_variable, tracker)  # after the cycle's batches: the tightest mark
        now = datetime.now(timezone.utc)
        if tracker.is_stopped():
            self.log.warning("Backfill %r is stopped: waiting (deferred) for `go` to start the next cycle",
                             self.backfill)
            self.defer(trigger=BackfillWaitTrigger(self.backfill, self.redis_conn_id, wait_for="resumed",
                                                   poll_interval=5.0), method_name="resume")
        progress = tracker.progress()
        if progress.finished:
            result = summary(progress, now)
            self.log.info("Backfill %r finished: %s", self.backfill, result)
            return result
        next_at = datetime.fromisoformat(cycle["begin_at"]) + timedelta(seconds=float(cycle["duration"]))
        if progress.exhausted:
            deadline = tracker.next_lease_deadline()
            if deadline is None:
                raise FailedRangesRemain(
                    f"Backfill {self.backfill!r}: all ranges done except {progress.batches_failed} failed "
                    f"ones ({progress.ids_failed} ids); fix the work, then `airflow-spreader retry-failed "
                    f"{self.backfill}` (or Tracker.retry_failed()) and trigger the DAG")
            due = datetime.fromtimestamp(deadline, timezone.utc)
            if due > now:  # batches still in flight elsewhere: wait for them, not in empty cycles
                next_at = max(next_at, min(due, now + timedelta(seconds=float(cycle["duration"]))))
                self.log.info("All ids planned; %d batches in flight. Checking again at %s",
                              progress.in_flight, next_at.isoformat())
        if next_at > now:
            wait = (next_at - now).total_seconds()
            if wait > self.defer_threshold:
                self.defer(trigger=BackfillWaitTrigger(self.backfill, self.redis_conn_id, next_at),
                           method_name="resume")
            self.log.info("Next cycle in %.1f s: waiting in the task until the cycle's planned end", wait)
            time.sleep(wait)
            return self.decide(context)  # stopped or finished meanwhile?
        self.trigger_next(context)
        return None

    def trigger_next(self, context: Context) -> None:
        ti = context["ti"]
        dag_id = ti.dag_id
        if ti.get_dr_count(dag_id=dag_id, states=["queued"]):
            self.log.info("A run of %s is already queued: it is the next cycle", dag_id)
            return
        run_id = f"spreader__{datetime.now(timezone.utc):%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:6]}"
        self.log.info("Triggering the next cycle of %r: %s", self.backfill, run_id)
        raise DagRunTriggerException(
            trigger_dag_id=dag_id, dag_run_id=run_id, conf=None, logical_date=None,
            reset_dag_run=False, skip_when_already_exists=True, wait_for_completion=False,
            allowed_states=["success"], failed_states=["failed"], poke_interval=60, deferrable=False,
        )
