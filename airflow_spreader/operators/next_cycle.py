"""The chain task: start the next cycle, or end the backfill with its summary."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from airflow.sdk import Context

from airflow_spreader.compat import AirflowSkipException, DagRunTriggerException
from airflow_spreader.core.names import next_run_id
from airflow_spreader.cycle.chain import ChainView, Step, decide_next, final_summary
from airflow_spreader.cycle.model import CycleSummary
from airflow_spreader.errors import SpreaderError
from airflow_spreader.hooks import checkpoint
from airflow_spreader.hooks.spreader import SpreaderHook
from airflow_spreader.operators.plan import CYCLE_XCOM_KEY
from airflow_spreader.operators.timing import TimedWaits
from airflow_spreader.state.tracker import Tracker
from airflow_spreader.state.verification import Verification
from airflow_spreader.triggers.backfill_wait import BackfillWaitTrigger


class FailedRangesRemain(SpreaderError, RuntimeError):
    """Everything else is done; these ranges and keys wait for a fix and a retry of the failed ranges."""


class PendingRowsRemain(SpreaderError, RuntimeError):
    """Every range is done, but the ``pending`` predicate still finds rows: the backfill is incomplete."""


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
    With ``verify`` (the DAG has a ``pending`` predicate) the walk's end starts counting cycles instead,
    and the chain fails "incomplete" when rows remain pending. The run that ends the chain finished
    returns the summary with ``announced`` true (once per backfill): the ``finished`` task's cue.
    """

    ui_color = "#e6f4ea"

    def __init__(self, *, backfill: str, config_variable: str, redis_conn_id: str = "redis_default",
                 plan_task_id: str = "plan", verify: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.verify = verify
        self.backfill = backfill
        self.config_variable = config_variable
        self.redis_conn_id = redis_conn_id
        self.plan_task_id = plan_task_id

    def execute(self, context: Context) -> dict[str, Any] | None:
        return self.decide(context)

    def resume(self, context: Context, event: Any = None) -> dict[str, Any] | None:
        return self.decide(context)

    def decide(self, context: Context) -> dict[str, Any] | None:
        """Read, decide (cycle.chain.decide_next), act; after a wait in the task, read and decide again."""
        data = context["ti"].xcom_pull(task_ids=self.plan_task_id, key=CYCLE_XCOM_KEY)
        if not data:
            raise AirflowSkipException("The plan task did not finish: the chain of cycles ends here")
        cycle = CycleSummary.from_xcom(data)
        tracker = SpreaderHook(self.redis_conn_id).tracker(self.backfill)
        while True:
            checkpoint.save(self.config_variable, tracker)
            view = ChainView.read(tracker, cycle, verify=self.verify)
            now = datetime.now(timezone.utc)
            decision = decide_next(view, now)
            if decision.step is Step.SUPERSEDED:
                self.log.info("A later cycle (planned until %s) carries the chain: nothing to trigger here",
                              datetime.fromtimestamp(view.planned_until or 0, timezone.utc).isoformat())
                return None
            if decision.step is Step.WAIT_FOR_GO:
                self.log.warning("Backfill %r is stopped: waiting (deferred) for `go` to start the next cycle",
                                 self.backfill)
                self.defer(trigger=BackfillWaitTrigger(self.backfill, self.redis_conn_id, wait_for="resumed",
                                                       poll_interval=5.0), method_name="resume")
            if decision.step is Step.FINISHED:
                result = final_summary(view.progress, now, view.verification)
                result["announced"] = Verification(tracker).announce()  # the first finishing run only
                self.log.info("Backfill %r finished%s: %s", self.backfill,
                              " (verified: no row pending)" if self.verify else "", result)
                return result
            if decision.step is Step.INCOMPLETE and view.verification is not None:
                self.log.info("Backfill %r: %s", self.backfill, final_summary(view.progress, now, view.verification))
                raise PendingRowsRemain(
                    f"Backfill {self.backfill!r} incomplete: {view.verification.describe()}; fix the work, then "
                    f"`airflow-spreader redo-pending {self.backfill}` plans exactly those ranges again")
            if decision.step is Step.COUNT_NEXT and view.verification is not None:
                if not Verification(tracker).start_next(view.verification.rounds):
                    self.log.info("Another run's chain starts the next counting cycle")
                    return None
                self.log.info("Verifying %r: %s; the next cycle counts on", self.backfill,
                              view.verification.describe() if view.verification.pending else "nothing pending yet")
                self.trigger_next(context)
                return None
            if decision.step is Step.FAILED_RANGES_REMAIN:
                progress = view.progress
                raise FailedRangesRemain(
                    f"Backfill {self.backfill!r}: all ranges done except {progress.batches_failed} failed "
                    f"ones ({progress.ids_failed} ids) and {progress.keys_quarantined} quarantined keys (poison "
                    f"rows); fix the work, then `airflow-spreader retry-failed {self.backfill}` (or "
                    "Tracker.retry_failed()) and trigger the DAG")
            if decision.step is Step.SETTLE and decision.until is not None:
                self.log.info("All ids planned; waiting (deferred) for the %d batches in flight, or their lease "
                              "at %s", view.progress.in_flight, decision.until.isoformat())
                self.defer(trigger=BackfillWaitTrigger(self.backfill, self.redis_conn_id, decision.until,
                                                       wait_for="settled", poll_interval=2.0), method_name="resume")
            if decision.step is Step.WAIT and decision.until is not None:
                self.wait_until(tracker, decision.until, now, settled=decision.settled)
                continue  # stopped, finished or superseded meanwhile?
            if decision.step is Step.AGAIN:
                continue
            if decision.step is Step.FOLLOW:
                self.log.info("Pass %d of %r is over: the next cycle looks for rows added above id %s",
                              view.progress.passes, self.backfill, view.progress.max_id)
            if cycle.batches == 0 and view.progress.exhausted:
                self.log.info("A range's lease ran out: the next cycle plans it again")
            self.trigger_next(context)
            return None

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
