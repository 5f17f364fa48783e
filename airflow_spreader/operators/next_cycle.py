"""The chain task: start the next cycle, or end the backfill with its summary."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowSkipException, DagRunTriggerException

from airflow_spreader.core.names import next_run_id
from airflow_spreader.errors import SpreaderError
from airflow_spreader.hooks import checkpoint
from airflow_spreader.hooks.spreader import SpreaderHook
from airflow_spreader.operators.plan import CYCLE_XCOM_KEY
from airflow_spreader.operators.timing import TimedWaits
from airflow_spreader.state.records import Progress
from airflow_spreader.state.tracker import Tracker
from airflow_spreader.triggers.backfill_wait import BackfillWaitTrigger


class FailedRangesRemain(SpreaderError, RuntimeError):
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


class NextCycleOperator(TimedWaits):
    """Runs beside the cycle's batches, from its plan: ``lead_seconds`` before the cycle's planned end
    (``begin_at + duration``) it triggers the next DAG run, whose plan begins exactly at that end. The next
    run, its plan and its task instances start while this cycle's last batches run, so cycles follow
    each other without a gap (the DAG allows two active runs for that) and without overlapping.

    It triggers nothing when a later cycle has been planned meanwhile (another run carries the chain),
    and waits, deferred, for ``go`` while the backfill is stopped. Once every id is planned it ends the
    chain as soon as nothing is in flight: with the summary when the backfill is finished, failing when
    only failed ranges remain. A cycle that found nothing left to plan waits for the ranges still in
    flight (or for their lease: a range whose lease ran out starts one more cycle, which plans it again).
    """

    ui_color = "#e6f4ea"

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
        """Decide again after each wait in the task: stopped, finished or superseded meanwhile?"""
        while True:
            again, result = self.decide_once(context)
            if not again:
                return result

    def decide_once(self, context: Context) -> tuple[bool, dict[str, Any] | None]:
        """One look at the backfill: (decide again?, the summary when it finished)."""
        cycle = context["ti"].xcom_pull(task_ids=self.plan_task_id, key=CYCLE_XCOM_KEY)
        if not cycle:
            raise AirflowSkipException("The plan task did not finish: the chain of cycles ends here")
        tracker = SpreaderHook(self.redis_conn_id).tracker(self.backfill)
        checkpoint.save(self.config_variable, tracker)
        now = datetime.now(timezone.utc)
        end = datetime.fromisoformat(cycle["begin_at"]) + timedelta(seconds=float(cycle["duration"]))
        planned_until = tracker.planned_until()
        if planned_until is not None and planned_until > end.timestamp() + 0.5:
            self.log.info("A later cycle (planned until %s) carries the chain: nothing to trigger here",
                          datetime.fromtimestamp(planned_until, timezone.utc).isoformat())
            return False, None
        if tracker.is_stopped():
            self.log.warning("Backfill %r is stopped: waiting (deferred) for `go` to start the next cycle",
                             self.backfill)
            self.defer(trigger=BackfillWaitTrigger(self.backfill, self.redis_conn_id, wait_for="resumed",
                                                   poll_interval=5.0), method_name="resume")
        progress = tracker.progress()
        if progress.finished:
            result = summary(progress, now)
            self.log.info("Backfill %r finished: %s", self.backfill, result)
            return False, result
        if progress.exhausted and progress.in_flight == 0:
            raise FailedRangesRemain(
                f"Backfill {self.backfill!r}: all ranges done except {progress.batches_failed} failed "
                f"ones ({progress.ids_failed} ids); fix the work, then `airflow-spreader retry-failed "
                f"{self.backfill}` (or Tracker.retry_failed()) and trigger the DAG")
        if cycle.get("batches") == 0 and progress.exhausted:
            return self.settle(tracker.next_lease_deadline(), progress, now, context), None
        # Once every id is planned, an early next cycle has nothing to gain: wait until the planned end instead,
        # waking as soon as the last batch is done, so that the chain usually ends in this run.
        lead = 0.0 if progress.exhausted else float(cycle.get("lead_seconds", 0))
        trigger_at = end - timedelta(seconds=lead)
        if trigger_at > now:
            self.wait_until(tracker, trigger_at, now, settled=progress.exhausted)
            return True, None  # stopped, finished or superseded meanwhile?
        self.trigger_next(context)
        return False, None

    def settle(self, lease_deadline: float | None, progress: Progress, now: datetime, context: Context) -> bool:
        """Nothing is left to plan: wait for the ranges in flight, then end the chain (or re-plan a lost one).
        True: they finished meanwhile, decide again."""
        if lease_deadline is None:  # they finished meanwhile
            return True
        due = datetime.fromtimestamp(lease_deadline, timezone.utc)
        if due > now:
            self.log.info("All ids planned; waiting (deferred) for the %d batches in flight, or their lease at %s",
                          progress.in_flight, due.isoformat())
            self.defer(trigger=BackfillWaitTrigger(self.backfill, self.redis_conn_id, due, wait_for="settled",
                                                   poll_interval=2.0), method_name="resume")
        self.log.info("A range's lease ran out: the next cycle plans it again")
        self.trigger_next(context)
        return False

    def wait_until(self, tracker: Tracker, moment: datetime, now: datetime, *, settled: bool) -> None:
        """Sleep through a short wait; defer a long one, waking ``wake_margin`` early. A stop ends the wait,
        and so, with ``settled``, does the last range in flight finishing."""
        wait = self.defer_if_far(moment, lambda wake_at: BackfillWaitTrigger(
            self.backfill, self.redis_conn_id, wake_at, wait_for="settled" if settled else "due_or_stopped"))
        self.log.info("Next cycle in %.1f s: waiting in the task until then", wait)
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            if settled and tracker.in_flight_count() == 0:
                return
            time.sleep(min(left, 0.5) if settled else left)

    def trigger_next(self, context: Context) -> None:
        ti = context["ti"]
        dag_id = ti.dag_id
        if ti.get_dr_count(dag_id=dag_id, states=["queued"]):
            self.log.info("A run of %s is already queued: it is the next cycle", dag_id)
            return
        run_id = next_run_id()
        self.log.info("Triggering the next cycle of %r: %s", self.backfill, run_id)
        raise DagRunTriggerException(
            trigger_dag_id=dag_id, dag_run_id=run_id, conf=None, logical_date=None,
            reset_dag_run=False, skip_when_already_exists=True, wait_for_completion=False,
            allowed_states=["success"], failed_states=["failed"], poke_interval=60, deferrable=False,
        )
