"""The plan task: one DAG run is one cycle, and this task claims the cycle's batches."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import redis
from airflow.sdk import BaseOperator, Context, Variable

from airflow_spreader import metrics
from airflow_spreader.compat import AirflowFailException
from airflow_spreader.core.config import ConfigError, SpreadConfig
from airflow_spreader.core.grouping import TaskSizing
from airflow_spreader.core.keys import is_text_image, is_uuid_image
from airflow_spreader.cycle.pace import pace_for_cycle
from airflow_spreader.cycle.plan import carver_for, check_rows_span, key_carver, plan_next_cycle, start_backfill
from airflow_spreader.cycle.verify import DEFAULT_SPAN_BATCHES, verify_round
from airflow_spreader.errors import SpreaderError
from airflow_spreader.hooks import checkpoint, governor
from airflow_spreader.hooks.airflow_api import DEFAULT_API_CONN_ID, AirflowApiError, AirflowApiHook
from airflow_spreader.hooks.source import SourceDatabaseHook
from airflow_spreader.hooks.spreader import SpreaderHook
from airflow_spreader.sql.ledger import DEFAULT_LEDGER_TABLE, ledger_named
from airflow_spreader.sql.pending import Pending, PendingPredicate, check_pending, count_pending
from airflow_spreader.sql.row_estimate import estimate_rows
from airflow_spreader.sql.table import SourceTable, TableBounds, TableError, inspect_table, read_max
from airflow_spreader.sql.text_ledger import text_ledger_named
from airflow_spreader.state.adapt import AdaptState
from airflow_spreader.state.row_progress import record_batching
from airflow_spreader.state.source_record import SourceRecord, record_source
from airflow_spreader.state.tracker import Tracker
from airflow_spreader.state.verification import Verification

CYCLE_XCOM_KEY = "cycle"
#: The environment variable that sets the first cycle's start lead in seconds (default: the configuration's
#: ``lead_seconds``, which covers the same start-up at each hand-over); the test suite sets 0 (dag.test()).
START_LEAD_ENV = "AIRFLOW_SPREADER_START_LEAD_SECONDS"


def check_start_lead(value: object, where: str = "start_lead") -> float:
    """A start lead in seconds: a finite number >= 0; one clear error naming ``where`` otherwise."""
    try:
        lead = float(value) if not isinstance(value, bool) else math.nan  # type: ignore[arg-type]
    except (TypeError, ValueError):
        lead = math.nan
    if not math.isfinite(lead) or lead < 0:
        raise ValueError(f"{where} must be a number of seconds >= 0 (0: the first cycle begins at its plan), "
                         f"got {value!r}")
    return lead


def env_start_lead() -> float | None:
    """The value of ``$AIRFLOW_SPREADER_START_LEAD_SECONDS``, if set."""
    raw = os.environ.get(START_LEAD_ENV)
    return None if raw is None or not raw.strip() else check_start_lead(raw.strip(), f"${START_LEAD_ENV}")


class TrackerUnavailable(SpreaderError, RuntimeError):
    """The tracker's Redis cannot be reached: nothing is planned."""


class PoolMissingError(SpreaderError, RuntimeError):
    """Airflow would leave the batches ``scheduled`` forever, without a word: say it instead."""


#: Errors of input and state that a retry cannot fix; anything else (a Redis or database blip) is retried.
PERMANENT = (ConfigError, TableError, PoolMissingError, AirflowApiError, checkpoint.TrackerStateLost)


class PlanCycleOperator(BaseOperator):
    """Read the configuration, pick the rate in force now, claim the cycle from the tracker.

    Returns the cycle's batches grouped for ``expand_kwargs`` (as few task instances as keep up with the
    rate by the last cycle's batch times, at most ``max_tasks_per_cycle``: core/grouping.py)
    and pushes a summary of the cycle under the XCom key ``cycle``. An invalid configuration fails the task
    before the tracker is touched.

    :param start_lead: seconds after its plan at which a backfill's first cycle begins, the time its task
        instances take to be up (default ``$AIRFLOW_SPREADER_START_LEAD_SECONDS``, else the configuration's
        ``lead_seconds``, which covers the same start-up at each hand-over).
    """

    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        backfill: str,
        table: str,
        source_conn_id: str,
        key: str | None = None,
        redis_conn_id: str = "redis_default",
        config_variable: str,
        initial_config: Mapping[str, Any] | None = None,
        batch_pool: str | None = None,
        ledger_table: str | None = DEFAULT_LEDGER_TABLE,
        api_conn_id: str | None = DEFAULT_API_CONN_ID,
        allow_unindexed_key: bool = False,
        pending: PendingPredicate | None = None,
        pending_span_batches: int = DEFAULT_SPAN_BATCHES,
        start_lead: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.start_lead = env_start_lead() if start_lead is None else check_start_lead(start_lead)
        self.allow_unindexed_key = allow_unindexed_key
        self.api_conn_id = api_conn_id
        self.ledger_table = ledger_table
        self.backfill = backfill
        self.table = SourceTable(table, key or "id", explicit_key=key is not None)
        self.source_conn_id = source_conn_id
        self.redis_conn_id = redis_conn_id
        self.config_variable = config_variable
        self.initial_config = dict(initial_config or {})
        self.batch_pool = batch_pool
        self.pending = None if pending is None else Pending(self.table, pending)
        self.pending_span_batches = pending_span_batches

    def load_config(self) -> SpreadConfig:
        """The Variable's configuration; a missing Variable is created so that it shows in the UI."""
        raw = Variable.get(self.config_variable, default=None)
        if raw is None:
            config = SpreadConfig.from_dict({**SpreadConfig.default().to_dict(), **self.initial_config})
            Variable.set(self.config_variable, config.to_json(),
                         description=f"airflow-spreader configuration of backfill {self.backfill!r}")
            self.log.info("Created Variable %s with defaults: %s", self.config_variable, config.to_json())
            return config
        try:
            return SpreadConfig.from_json(raw) if isinstance(raw, str) else SpreadConfig.from_dict(raw)
        except ConfigError:
            self.log.error("Variable %s holds an invalid configuration; nothing was planned", self.config_variable)
            raise

    def check_pool(self) -> int | None:
        """Ask the api-server whether the batch pool exists (tasks cannot read pools directly); its slots,
        when the answer gave them."""
        if not self.batch_pool:
            return None
        api = AirflowApiHook(self.api_conn_id)
        exists, slots = api.read_pool(self.batch_pool)  # an AirflowApiError (refused: say which credentials) fails
        if exists is None:
            self.log.warning("Could not check pool %r at %s; going on", self.batch_pool, api.base_url())
        elif not exists:
            raise PoolMissingError(
                f"pool {self.batch_pool!r} does not exist, so the batches would wait forever; create it "
                f"with: airflow pools set {self.batch_pool} 4 'airflow-spreader batches of {self.backfill}'"
            )
        return slots

    def ensure_ledger(self, top: int | None) -> None:
        """Create the done-ledger before any batch can need it (the one of UUID ranges for a UUID key, the one of
        text ranges, in the key's collation, for a text key: the bound ``top`` tells); a few catalog lookups
        when it exists."""
        if not self.ledger_table:
            return
        engine = SourceDatabaseHook(self.source_conn_id).get_conn()
        if top is not None and is_text_image(top):
            text_ledger_named(self.ledger_table).ensure(engine, self.table)
        else:
            ledger_named(self.ledger_table, top is not None and is_uuid_image(top)).ensure(engine)

    def read_max(self) -> int | None:
        """The key's MAX now, for ``follow_new_rows`` at the bottom of a pass."""
        with SourceDatabaseHook(self.source_conn_id).get_conn().connect() as conn:
            return read_max(conn, self.table)

    def verify(self, tracker: Tracker, config: SpreadConfig, begin_at: datetime) -> None:
        """Once the walk is over, count this cycle's spans of pending rows (cycle.verify.verify_round)."""
        pending = self.pending
        assert pending is not None
        engine = SourceDatabaseHook(self.source_conn_id).get_conn()
        state = verify_round(tracker, lambda begin_id, end_id: count_pending(engine, pending, begin_id, end_id),
                             config, begin_at, span_batches=self.pending_span_batches)
        if state is not None:
            self.log.info("Verification of %r (pending: %s): %s", self.backfill, pending.text,
                          "verified, no row pending" if state.verified else state.describe() if state.complete
                          else f"counted down to {state.cursor}, {state.pending_rows} rows pending so far")

    def execute(self, context: Context) -> list[dict[str, Any]]:
        try:
            planned = self.plan(context)
        except PERMANENT as error:  # retrying cannot help: fail at once, with the message
            message = f"{type(error).__name__}: {error}"
            self.note_halt(message)
            raise AirflowFailException(message) from error
        self.note_halt(None)
        return planned

    def note_halt(self, reason: str | None) -> None:
        """The chain ends at a permanent failure: record it for `status` and the page; a plan that succeeds
        clears it. Best effort: it cannot be recorded without Redis, and must not hide the plan's outcome."""
        try:
            tracker = SpreaderHook(self.redis_conn_id).tracker(self.backfill)
            if reason is None:
                tracker.clear_halt()
            else:
                tracker.record_halt(reason)
        except Exception as error:
            self.log.error("Could not %s the halt of %r in Redis: %s", "clear" if reason is None else "record",
                           self.backfill, error)

    def log_start(self, bounds: TableBounds) -> None:
        if bounds.is_empty:
            self.log.info("Table %s is empty: nothing to backfill", self.table.name)
        elif bounds.top_text is not None:
            self.log.info("Started backfill %r of %s: text keys up to %r", self.backfill, self.table.name,
                          bounds.top_text)
        else:
            self.log.info("Started backfill %r of %s: ids %s..%s", self.backfill, self.table.name,
                          bounds.min_id, bounds.max_id)

    def plan(self, context: Context) -> list[dict[str, Any]]:
        config = self.load_config()
        governor.check_config(config.governor)  # connections and callables: a ConfigError plans nothing
        tracker = SpreaderHook(self.redis_conn_id).tracker(self.backfill)
        try:
            started = tracker.is_started()
        except redis.RedisError as error:
            raise TrackerUnavailable(f"cannot reach the Redis of connection {self.redis_conn_id!r} "
                                     f"(backfill {self.backfill!r}): {error}") from error
        slots = self.check_pool()
        engine = SourceDatabaseHook(self.source_conn_id).get_conn()
        ti = context["ti"]
        claim_id = f"{ti.dag_id}/{ti.run_id}"  # a retried plan task of this DAG run gets its first try's cycle
        # The mean time of the batches done since the last plan (each batch's complete.lua sums it).
        sizing = TaskSizing(slots, AdaptState(tracker.redis, tracker.name).take_sizing_seconds())
        pace = pace_for_cycle(tracker, config, claim_id)  # the governor's rate factor and batch size
        # Before the start: a key without an index in "rows" batching fails here, with nothing advanced.
        carve = carver_for(config, engine, self.table, allow_unindexed_key=self.allow_unindexed_key,
                           batch_size=pace.batch_size)
        if self.pending is not None:  # a predicate that does not run on the table plans nothing
            check_pending(SourceDatabaseHook(self.source_conn_id).get_conn(), self.pending)
            Verification(tracker).want()
        tracker.record_dag(context["ti"].dag_id)
        record_source(tracker, SourceRecord(self.source_conn_id, self.table.name, self.table.key))
        if not started:
            saved = checkpoint.load(self.config_variable)
            if saved is not None:
                raise checkpoint.refuse_to_start_over(self.config_variable, tracker, saved)
            bounds = inspect_table(engine, self.table)
            check_rows_span(config, self.table, bounds.min_id, bounds.max_id, verifying=self.pending is not None)
            self.ensure_ledger(bounds.max_id)  # before the start: a ledger that cannot be created starts nothing
            start_backfill(tracker, bounds)
            self.log_start(bounds)
        else:
            progress = tracker.progress()
            check_rows_span(config, self.table, progress.min_id, progress.max_id,  # a switch of batching
                            verifying=self.pending is not None)
            self.ensure_ledger(progress.max_id)
        carve = key_carver(carve, tracker, engine, self.table)  # a text key walks by handles (state/text_keys.py)
        record_batching(tracker, config.batching, lambda: estimate_rows(engine, self.table))
        governor.publish(tracker, config.governor)  # the batches of this cycle read it from Redis
        cycle = plan_next_cycle(tracker, config, datetime.now(timezone.utc), claim_id=claim_id,
                                read_max=self.read_max, carve=carve, pace=pace, sizing=sizing,
                                start_lead=float(config.lead_seconds) if self.start_lead is None else self.start_lead)
        summary = cycle.summary
        if summary.look is not None and summary.look != "not-at-bottom":
            self.log.info("Looked for rows above the top of %r: %s (pass %d, top %s)", self.backfill, summary.look,
                          summary.passes, tracker.progress().max_id)
        metrics.cycle_planned(self.backfill, batches=summary.batches, cursor=summary.cursor_after,
                              per_second=summary.per_second, rate_factor=pace.factor, batch_size=pace.batch_size)
        if self.pending is not None and not summary.stopped and summary.batches == 0:
            self.verify(tracker, config, summary.begin_at)
        checkpoint.save(self.config_variable, tracker)
        context["ti"].xcom_push(key=CYCLE_XCOM_KEY, value=summary.to_xcom())
        if summary.stopped:
            self.log.warning("Backfill %r is stopped: nothing planned. Run `go` to resume.", self.backfill)
        else:
            self.log.info("Cycle of %r: %d batches (%d re-planned) of %d ids at %s/s (%s peak, factor %s) in %d "
                          "task instances; cursor %s -> %s", self.backfill, summary.batches, summary.replanned,
                          pace.batch_size, summary.per_second, "on" if summary.on_peak else "off", pace.factor,
                          summary.task_instances, summary.cursor_before, summary.cursor_after)
        return cycle.expand_kwargs()
