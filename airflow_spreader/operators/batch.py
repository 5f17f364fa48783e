"""The batch task: runs a group of a cycle's batches, each at its own time."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import Context

from airflow_spreader import compat, metrics
from airflow_spreader.core.keys import is_text_image, is_uuid_image, to_key
from airflow_spreader.core.pause import PREPARE_SECONDS, PausedReading, pause_step
from airflow_spreader.core.planner import IdRange
from airflow_spreader.core.split import DEFAULT_MAX_SPLIT_DEPTH, check_max_split_depth
from airflow_spreader.core.timing import call_work, missing_work
from airflow_spreader.cycle.model import BatchGroup
from airflow_spreader.errors import SpreaderError
from airflow_spreader.hooks.source import SourceDatabaseHook
from airflow_spreader.hooks.spreader import SpreaderHook
from airflow_spreader.operators.governed import governor_holds, hold_trigger
from airflow_spreader.operators.timing import TimedWaits
from airflow_spreader.sql.ledger import DEFAULT_LEDGER_TABLE, LedgerKey, RangeAlreadyDone, ledger_named
from airflow_spreader.sql.text_ledger import text_ledger_named
from airflow_spreader.state.adapt import AdaptState
from airflow_spreader.state.idle import IdleLog
from airflow_spreader.state.quarantine import Quarantine
from airflow_spreader.state.records import ClaimedBatch
from airflow_spreader.state.text_keys import key_labels, text_keys_of
from airflow_spreader.state.tracker import Tracker
from airflow_spreader.state.verification import ledger_generation
from airflow_spreader.triggers.backfill_wait import BackfillWaitTrigger

#: The work for one range: ``work(connection, begin_id, end_id)``, optionally ``context=``.
#: It runs inside a transaction on the source database; return the number of rows changed, or None.
BatchWork = Callable[..., Any]


class BatchesFailed(SpreaderError, RuntimeError):
    """Some batches of this task instance raised; Airflow's retry re-runs only those."""


class NoGeneration(SpreaderError, RuntimeError):
    """The backfill's generation could not be read: without it the ledger row would not name this run."""


class SpreadBatchOperator(TimedWaits):
    """Run each of ``batches`` at its ``run_at``, deferred while waiting, so waiting holds no worker slot.

    Give the work as ``work=`` or override :meth:`process` in a subclass. A batch starts only
    while this task still holds its range and the backfill is not stopped; when stopped, the
    remaining ranges are handed back untouched. A retry skips the batches already done. While the DAG
    is paused no batch starts: the task defers until the unpause, then hands the batches whose moment
    passed meanwhile back to the tracker (the next cycle plans them first, at the rate).

    With ``ledger_table`` (the default), each batch's transaction first records its range in that
    table of the source database, so a range whose work committed is never run again, even when the
    worker died before Redis heard of it. ``ledger_table=None`` leaves the source database alone:
    then such a range is run again (at least once).

    A range that fails its last try is split in two, each half re-queued as its own batch, until the failing
    rows stand alone and are quarantined (state.quarantine); a range with no success ``max_split_depth``
    levels down is kept whole as a failed range (0: never split).

    ``measure_times`` (set by the plan when the governor's ``target_batch_seconds`` is on) adds each batch's
    time to the sums the next plan sizes batches by; off, a batch writes nothing for the adaptation.
    """

    ui_color = "#fef7e0"
    #: The source database's engine, looked up once per task process (``source_engine``).
    _engine: Any = None
    #: Seconds between the triggerer's wake-ups of a task waiting out a pause; the scheduler then does
    #: not queue it again before the unpause.
    pause_poll_seconds: float = 1.0
    _paused: PausedReading | None = None

    def __init__(
        self,
        *,
        batches: list[dict[str, Any]],
        backfill: str,
        source_conn_id: str,
        redis_conn_id: str = "redis_default",
        work: BatchWork | None = None,
        ledger_table: str | None = DEFAULT_LEDGER_TABLE,
        max_split_depth: int = DEFAULT_MAX_SPLIT_DEPTH,
        measure_times: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batches = batches
        self.backfill = backfill
        self.source_conn_id = source_conn_id
        self.redis_conn_id = redis_conn_id
        self.work = work
        self.ledger_table = ledger_table
        self.max_split_depth = check_max_split_depth(max_split_depth)
        self.measure_times = measure_times

    @property
    def id_ranges(self) -> str:
        """The label of this task instance in the UI (``map_index_template``)."""
        spans = [batch.id_range.label for batch in BatchGroup.from_xcom(self.batches).batches]
        return spans[0] if len(spans) == 1 else f"{spans[0]} .. {spans[-1]} ({len(spans)} batches)"

    def process(self, connection: Any, begin_id: Any, end_id: Any, context: Context) -> int | None:
        """Do the work of one range inside the open transaction ``connection``: ``begin_id``..``end_id``
        (inclusive) are the key's values as the driver returns them (int, a UUID as str, bytes or uuid.UUID,
        a text key as str: the range's lowest and highest key, in the database's collation)."""
        if self.work is None:
            raise missing_work(type(self).__name__, "a subclass overriding process()")
        return call_work(self.work, connection, begin_id, end_id, context=context)  # type: ignore[no-any-return]

    def wake_trigger(self, wake_at: datetime) -> BackfillWaitTrigger:
        """Wakes the task at ``wake_at``, or at once when the backfill is stopped."""
        return BackfillWaitTrigger(self.backfill, self.redis_conn_id, wake_at)

    def execute(self, context: Context) -> dict[str, int]:
        return self.run_due(context)

    def resume(self, context: Context, event: Any = None) -> dict[str, int]:
        """Back from the triggerer: carry on from Redis (defer() kwargs are not relied upon)."""
        return self.run_due(context)

    def resume_after_pause(self, context: Context, event: Any = None) -> dict[str, int]:
        """Back after waiting out a pause (or still paused: wait again)."""
        return self.run_due(context, after_pause=True)

    def dag_is_paused(self, context: Context) -> bool:
        """The DAG's paused flag through the Task SDK, read at most once a second. Where this Airflow
        cannot tell (3.1), a warning says so once per task and the DAG counts as not paused."""
        now = time.monotonic()
        if self._paused is None or not self._paused.fresh(now):
            paused = compat.dag_is_paused(context["ti"])
            if paused is None and self._paused is None:
                self.log.warning("Backfill %r: %s", self.backfill, compat.PAUSE_NOT_READABLE)
            self._paused = PausedReading(bool(paused), now)
        return self._paused.paused

    def wait_out_pause(self) -> None:
        """Defer to the triggerer: it fires within a second (or on a stop), and the scheduler queues the
        task again only once the DAG is unpaused; ``resume_after_pause`` then asks again."""
        self.log.info("Backfill %r: the DAG is paused, no batch starts until it is unpaused", self.backfill)
        IdleLog(SpreaderHook(self.redis_conn_id).tracker(self.backfill).redis, self.backfill).open("paused")
        wake_at = datetime.now(timezone.utc) + timedelta(seconds=self.pause_poll_seconds)
        self.defer(trigger=self.wake_trigger(wake_at), method_name="resume_after_pause")

    def wait_out_hold(self, tracker: Tracker) -> None:
        """The governor holds the backfill: wait in the worker, asking every ``pause_poll_seconds``, for up to
        ``defer_threshold``; returns when the hold ends (or on a stop). A longer hold defers until it no longer
        holds (or a new check is due), then ``resume_after_pause`` hands back what fell due meanwhile.

        Why not defer at once: a trigger that fires seconds after the deferral races the executor's report of
        the deferring process's exit (up to ~5 s late on a loaded machine), and the scheduler then fails the
        task it has just queued again (apache/airflow#67287), stranding its batches until their lease. A short
        hold never defers; a long one defers for at least HOLD_MIN_SECONDS."""
        self.log.info("Backfill %r: held by the governor, no batch starts until it recovers", self.backfill)
        deadline = time.monotonic() + self.defer_threshold
        while time.monotonic() < deadline:
            time.sleep(self.pause_poll_seconds)
            if tracker.is_stopped() or not governor_holds(tracker, self.log):
                return
        self.defer(trigger=hold_trigger(self.backfill, self.redis_conn_id, self.pause_poll_seconds),
                   method_name="resume_after_pause")

    def run_due(self, context: Context, after_pause: bool = False) -> dict[str, int]:
        tracker = SpreaderHook(self.redis_conn_id).tracker(self.backfill)
        ti = context["ti"]
        attempt = f"{ti.run_id}/{ti.map_index}/{ti.try_number}"
        final_try = ti.try_number > (self.retries or 0)
        generation = ledger_generation(tracker)  # with the redo pass, if any: a redo's ranges are done once more
        if generation is None:  # its ledger rows would not name this run of the backfill: do nothing, retry
            raise NoGeneration(f"Backfill {self.backfill!r}: no generation could be read from Redis (not started, "
                               "or its state is lost); no batch ran, the retry tries again")
        outcome = {"done": 0, "skipped": 0, "stopped": 0, "failed": 0, "already_done": 0, "handed_back": 0}
        failures: list[str] = []
        # After a pause, the batches due before now were due while paused: no burst, hand them back.
        resumed_at = datetime.now(timezone.utc) if after_pause and not self.dag_is_paused(context) else None
        if resumed_at is not None:
            IdleLog(tracker.redis, self.backfill).close("paused")  # the ETA sets the pause apart (state/idle.py)
        if self.batches:
            self.warm_up()
        for batch in BatchGroup.from_xcom(self.batches).batches:
            # The checks (stop, governor, pause: Redis and Task SDK round trips) run PREPARE_SECONDS ahead of the
            # batch's moment, so that a loaded machine's slow answers do not make the batch start late.
            checks_at = batch.run_at - timedelta(seconds=PREPARE_SECONDS)
            if checks_at > datetime.now(timezone.utc) and not tracker.is_stopped():
                self.wait_for(checks_at, self.wake_trigger)
            held = governor_holds(tracker, self.log)  # first: a governor's stop sets the stop flag
            stopped = tracker.is_stopped()
            step = pause_step(batch.run_at, paused=self.dag_is_paused(context), stopped=stopped,
                              resumed_at=resumed_at, held=held)
            if step == "hold":  # a long hold defers; back here when a short one is over, or on a stop
                self.wait_out_hold(tracker)
                resumed_at = datetime.now(timezone.utc)  # what fell due during the hold is handed back
                stopped = tracker.is_stopped()
                step = pause_step(batch.run_at, paused=self.dag_is_paused(context), stopped=stopped,
                                  resumed_at=resumed_at)
            if step == "wait":
                self.wait_out_pause()
            if step == "hand_back":
                outcome["handed_back" if tracker.release(batch) == "released" else "skipped"] += 1
                continue
            if step == "start" and not stopped:
                self.sleep_until(batch.run_at)
            outcome[self.run_one(tracker, batch, context, attempt, generation, final_try, failures)] += 1
        self.log.info("Backfill %r: %s", self.backfill, outcome)
        if outcome["stopped"]:
            self.log.warning("Backfill %r is stopped: %d batches handed back untouched", self.backfill,
                             outcome["stopped"])
        if outcome["handed_back"]:
            self.log.warning("Backfill %r: %d batches fell due while the DAG was paused or held: handed back, the next "
                             "cycle plans them first", self.backfill, outcome["handed_back"])
        if failures:
            fate = " (last try: bisected to isolate the failing rows, see status)" if self.max_split_depth \
                else " (kept as failed ranges)"
            raise BatchesFailed(f"{len(failures)} of {len(self.batches)} batches failed"
                                f"{fate if final_try else ' (will be retried)'}: "
                                + "; ".join(failures))
        return outcome

    def run_one(self, tracker: Tracker, batch: ClaimedBatch, context: Context, attempt: str, generation: str,
                final_try: bool, failures: list[str]) -> str:
        """Begin, run and record one due batch; the outcome's name (``done``, ``skipped``, ...)."""
        state = tracker.begin(batch, attempt=attempt)
        label = key_labels(tracker).range(batch.id_range)  # a text key's range reads as its texts
        if state == "failed-this-try":  # failed before this task deferred; the retry takes it
            failures.append(f"{label}: failed earlier in this try")
            return "failed"
        if state == "stopped":
            return "stopped"
        if state != "run":
            return "skipped"
        started = metrics.batch_started(self.backfill, batch.run_at)
        try:
            rows = self.run_batch(batch, context, generation)
        except RangeAlreadyDone as done:  # committed by an earlier run that died before telling Redis
            self.log.warning("Batch %s: its work committed earlier (done-ledger); not running it again",
                             label)
            self.record_done(tracker, batch, done.rows, started, measured=False)
            return "already_done"
        except Exception as error:
            message = f"{type(error).__name__}: {error}"
            self.log.exception("Batch %s failed (try %s)", label, context["ti"].try_number)
            fate = Quarantine(tracker, self.max_split_depth).fail(batch, message, final=final_try, attempt=attempt)
            if final_try:
                self.log.warning("Batch %s failed its last try: %s", label, fate)
            metrics.batch_failed(self.backfill, final=final_try)
            failures.append(f"{label}: {message}")
            return "failed"
        self.record_done(tracker, batch, rows, started)
        return "done"

    def record_done(self, tracker: Tracker, batch: ClaimedBatch, rows: int | None, started: float, *,
                    measured: bool = True) -> None:
        """Redis hears of the commit (and a bisection of its range moves on); the metrics follow. A batch whose
        work ran (``measured``) adds its time, in the same call, to the mean the next plan sizes its task
        instances by; and to what target_batch_seconds sizes the next cycle's batches by, when the plan asked for
        it (``measure_times``: the governor sizes batches), with one more write."""
        seconds = time.monotonic() - started
        tracker.complete(batch, rows, seconds if measured else None)  # the task sizing's measure, always
        Quarantine(tracker, self.max_split_depth).after_done(batch)
        if measured and self.measure_times:
            AdaptState(tracker.redis, tracker.name).record_batch(seconds, batch.id_range.counted, rows)
        metrics.batch_done(self.backfill, ids=batch.id_range.counted, rows=rows, seconds=seconds)

    def source_engine(self) -> Any:
        """The source database's engine, its connection looked up once per task process: in a task each lookup
        is a round trip through the supervisor to the api-server, and once per batch it was the largest cost of
        small batches at high rates (bench section 7). A connection edited meanwhile applies from the next
        task process (the next cycle, a retry or a resume)."""
        if self._engine is None:
            self._engine = SourceDatabaseHook(self.source_conn_id).get_conn()
        return self._engine

    def warm_up(self) -> None:
        """Look the source connection up and open one pooled connection before waiting for the first batch, so
        that a task instance started early (the next cycle's, ``lead_seconds`` ahead) pays that set-up
        (seconds on a loaded machine) during its wait instead of after it, making its first batch late. A
        failure here is only logged: the batch that meets it fails (and is retried) as before."""
        try:
            with self.source_engine().connect():
                pass
        except Exception as error:  # the batches report it, one by one, as without the warm-up
            self.log.warning("Backfill %r: could not reach the source database before the first batch: %s",
                             self.backfill, error)

    def run_batch(self, batch: ClaimedBatch, context: Context, generation: str) -> int | None:
        """One transaction per batch, holding the range's ledger row; Redis marks it done after the commit.

        With the ledger, the work runs once per sub-range the ledger does not show done (the whole range,
        unless a restore re-cut the ranges); RangeAlreadyDone, without running it, when all of it is done.
        A text key's range (handles, state/text_keys.py) reaches the work as its lowest and highest key,
        read now; a range that holds no row runs no work. With the ledger it is recorded by its texts
        (sql/text_ledger.py), each part not recorded yet running the work once.
        """
        engine = self.source_engine()
        key = LedgerKey(self.backfill, generation, batch.begin_id, batch.end_id)
        texts = text_keys_of(SpreaderHook(self.redis_conn_id).tracker(self.backfill), engine) \
            if is_text_image(batch.end_id) else None
        if texts is not None and self.ledger_table:  # recorded by its texts: a restore's new cut skips them
            low, high = texts.bounds(batch.id_range)
            with engine.begin() as connection:
                return text_ledger_named(self.ledger_table).run(
                    connection, key, texts.table, low, high,
                    lambda begin, end: self.process(connection, begin, end, context))
        ledger = ledger_named(self.ledger_table, is_uuid_image(batch.end_id)) if self.ledger_table else None
        with engine.begin() as connection:
            def work(begin_id: int, end_id: int) -> int | None:
                if texts is None:
                    return self.process(connection, to_key(begin_id), to_key(end_id), context)
                bounds = texts.work_bounds(IdRange(begin_id, end_id), connection)
                return 0 if bounds is None else self.process(connection, bounds[0], bounds[1], context)

            if ledger is None:
                return work(batch.begin_id, batch.end_id)
            return ledger.run(connection, key, work)
