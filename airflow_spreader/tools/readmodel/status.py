"""The status of a backfill: how far it is, how fast it goes, when it will finish, what failed.

Everything is read once into a :class:`BackfillStatus`: ``airflow-spreader status`` renders it as text
or JSON, and the Backfills page serves the same JSON. Redis
alone gives the progress and the pace; the rate in force and the ETA need the configuration,
and "paused" needs the DAG, both from Airflow: without them the report says what is missing. Quarantined
keys (poison rows isolated by bisection) are listed up to ``QUARANTINE_LISTED``, with their count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from airflow_spreader.core.adapt import Pace, scaled_rate
from airflow_spreader.core.config import SpreadConfig
from airflow_spreader.core.eta import SAME_PACE, Eta, Observed, estimate, ids_per_second, observe
from airflow_spreader.core.idle import IdleSpan
from airflow_spreader.core.keys import key_label
from airflow_spreader.core.planner import IdRange
from airflow_spreader.cycle.pace import current_pace
from airflow_spreader.state.idle import IdleLog
from airflow_spreader.state.quarantine import Quarantine, QuarantinedKey
from airflow_spreader.state.records import FailedRange, Progress
from airflow_spreader.state.text_keys import KeyLabels, key_labels
from airflow_spreader.state.tracker import Tracker
from airflow_spreader.state.verification import Verification, VerificationState
from airflow_spreader.tools.readmodel.governor import GovernorView, read_governor
from airflow_spreader.tools.readmodel.sources import AirflowSource, Lookup

#: Quarantined keys listed in the status (JSON and page); the count is always the whole one.
QUARANTINE_LISTED = 100


def display_zone(config: SpreadConfig | None) -> tzinfo:
    """Times show in the peak hours' zone, the one the operator plans in (UTC without a configuration)."""
    return ZoneInfo(config.on_peak_timezone if config else "UTC")


def state_of(progress: Progress, paused: bool | None, halted: bool = False, following: bool = False,
             verification: VerificationState | None = None, held: bool = False) -> str:
    """running, paused, held (by the governor), stopped, halted (the last plan failed for good), done, failed
    (only failed ranges left, or quarantined keys left), or not started. ``following``: with
    follow_new_rows, "done" waits for the look at MAX that ends the passes. With a ``pending`` predicate,
    once every range is done: verifying (counting the rows still pending), incomplete (rows remain:
    redo-pending) or done (none)."""
    if progress.finished and not (following and not progress.looked_after_last_batch):
        if verification is None or verification.verified:
            return "done"
        return "incomplete" if verification.incomplete else "verifying"
    if halted:
        return "halted"
    if not progress.started:
        return "not started"
    if progress.exhausted and progress.in_flight == 0 and (progress.batches_failed or progress.keys_quarantined):
        return "failed"
    if progress.stopped:
        return "stopped"
    return "paused" if paused else "held" if held else "running"


@dataclass(frozen=True, slots=True)
class Halt:
    """The last plan failed for good: no next cycle is planned until the cause is fixed and ``resume``."""

    reason: str
    at: datetime | None
    name: str
    dag_id: str

    @property
    def text(self) -> str:
        fix = (f"fix the Variable (airflow-spreader config {self.name} --set/--replace)"
               if self.reason.startswith("ConfigError") else "fix the cause")
        return f"the last plan failed: {self.reason}; {fix}, then airflow-spreader resume {self.name}" + (
            f" --dag-id {self.dag_id}" if self.dag_id != self.name else "")


@dataclass(frozen=True)
class BackfillStatus:
    """One backfill as read at ``now``."""

    dag_id: str
    now: datetime
    progress: Progress
    failed: list[FailedRange]
    observed: Observed
    config: Lookup[SpreadConfig]
    paused: Lookup[bool]
    halt: Halt | None = None
    #: ``QUARANTINE_LISTED`` quarantined keys, the lowest ones (``progress.keys_quarantined`` counts all).
    quarantined: tuple[QuarantinedKey, ...] = ()
    #: None when the DAG has no ``pending`` predicate.
    verification: VerificationState | None = None
    governor: GovernorView | None = None
    #: When it was held, stopped or paused (recent spans, state/idle.py): the ETA sets that time apart.
    idle: tuple[IdleSpan, ...] = ()
    #: The governor's rate factor and batch size chosen by the last plan (None: no adaptation on).
    pace: Pace | None = None
    #: How keys read (a text key's texts come from Redis); None: integers and UUIDs only (core.keys).
    labels: KeyLabels | None = None

    def key_label(self, key: int) -> str:
        return key_label(key) if self.labels is None else self.labels.key(key)

    def range_label(self, id_range: IdRange) -> str:
        return id_range.label if self.labels is None else self.labels.range(id_range)

    @property
    def name(self) -> str:
        return self.progress.name

    @property
    def state(self) -> str:
        following = self.config.value is not None and self.config.value.follow_new_rows
        return state_of(self.progress, self.paused.value, self.halt is not None, following, self.verification,
                        held=self.governor is not None and self.governor.state == "held")

    @property
    def zone(self) -> tzinfo:
        return display_zone(self.config.value)

    @property
    def since_start(self) -> float | None:
        """Ids per second from the start to now (to the last completion once done)."""
        p = self.progress
        if p.started_at is None:
            return None
        end = p.last_activity if p.finished and p.last_activity else self.now
        seconds = end.timestamp() - p.started_at.timestamp()
        return p.ids_done / seconds if seconds > 0 else None

    @property
    def eta(self) -> Eta:
        p = self.progress
        if self.halt is not None and not p.finished:
            return Eta("unknown", None, f"halted: {self.halt.text}")
        if not p.started:
            return Eta("unknown", None, "not started: the DAG's first run captures the table's bounds")
        if self.config.value is None:
            return Eta("unknown", None, f"needs the configuration: {self.config.problem}")
        if p.finished and self.state in ("verifying", "incomplete"):
            return Eta("unknown", None, f"every range is done; {self.verification_text}")
        failed = p.ids_failed + p.keys_quarantined
        if p.counts_rows:  # batches of batch_size rows: the planner's ids/s are rows/s; the ids pace says nothing
            left = 0 if p.exhausted and p.in_flight == 0 else max(1, p.rows_total - p.rows_done)
            eta = estimate(self.config.value, self.now, remaining_ids=left, failed_ids=failed,
                           stopped=p.stopped, paused=self.paused.value is True, pace=self.pace or SAME_PACE)
            return Eta(eta.state, eta.finish, f"{eta.reason}, for about {left:,} rows left of an estimated "
                                              f"{p.rows_total:,}" if eta.state == "estimated" else eta.reason,
                       eta.efficiency, eta.idle_seconds, eta.factor)
        remaining = max(0, p.total_ids - p.ids_done - failed - p.ids_skipped)
        return estimate(self.config.value, self.now, remaining_ids=remaining,
                        failed_ids=failed, stopped=p.stopped, paused=self.paused.value is True,
                        observed=self.observed, idle=self.idle, pace=self.pace or SAME_PACE)

    @property
    def attempts_lost(self) -> int:
        """Attempts whose lease ran out (a task died or was killed): their ranges were planned again."""
        return self.progress.counters.get("attempts_lost", 0)

    @property
    def verification_text(self) -> str:
        """Where the verification stands, in words ('' without a ``pending`` predicate)."""
        v = self.verification
        if v is None:
            return ""
        again = f" (pass {v.passes + 1})" if v.passes else ""
        if v.verified:
            return f"verified: no row pending{again}"
        if v.incomplete:
            return (f"incomplete: {v.describe()}; fix the work, then airflow-spreader redo-pending {self.name}"
                    + (f" --dag-id {self.dag_id}" if self.dag_id != self.name else ""))
        if v.cursor is None:
            return f"verification waits for every range to be done{again}"
        return f"verifying{again}: counted down to id {v.cursor:,}, {v.pending_rows:,} rows pending so far"

    def in_force(self) -> dict[str, Any] | None:
        """The rate in force now and when it changes, or None without the configuration."""
        config = self.config.value
        if config is None:
            return None
        schedule = config.peak_schedule
        on_peak = schedule.is_on_peak(self.now)
        change = schedule.next_change(self.now)
        pace = self.pace or SAME_PACE
        return {"on_peak": on_peak, "per_second": scaled_rate(config.per_second(self.now), pace.factor),
                "calendar_per_second": config.per_second(self.now), "rate_factor": pace.factor,
                "batch_size": pace.batch_size or config.batch_size, "configured_batch_size": config.batch_size,
                "ids_per_second": ids_per_second(config, on_peak, pace), "timezone": config.on_peak_timezone,
                "next_change": change.isoformat() if change else None,
                "next_per_second": config.per_second_off_peak if on_peak else config.per_second_on_peak}

    def passes(self) -> dict[str, Any] | None:
        """The passes over the key (``follow_new_rows``): their count, the current one's range, the bound.
        None before the start, and for a backfill in its first pass that does not follow new rows."""
        p, config = self.progress, self.config.value
        follows = config.follow_new_rows if config else None
        if not p.started or (p.passes == 1 and not follows):
            return None
        return {"count": p.passes, "floor": p.floor, "top": p.max_id, "follow_new_rows": follows,
                "max_passes": config.max_passes if config else None,
                "looked_at": p.looked_at.isoformat() if p.looked_for_new_rows and p.looked_at else None,
                "ids_left_above": p.ids_left_above}

    def to_dict(self) -> dict[str, Any]:
        p = self.progress
        return {
            "backfill": self.name, "dag_id": self.dag_id, "state": self.state, "now": self.now.isoformat(),
            "progress": {**self.progress.to_dict(), "attempts_lost": self.attempts_lost,
                         "cursor_label": None if p.cursor is None else self.key_label(p.cursor)},
            "halt": None if self.halt is None else {"reason": self.halt.reason, "message": self.halt.text,
                                                    "at": self.halt.at.isoformat() if self.halt.at else None},
            "ids_per_second": {"recent": self.observed.ids_per_second, "recent_seconds": self.observed.seconds,
                               "since_start": self.since_start},
            "passes": self.passes(), "in_force": self.in_force(), "eta": self.eta.to_dict(self.now),
            "failed_ranges": [{"begin_id": f.begin_id, "end_id": f.end_id, "attempts": f.attempts, "error": f.error,
                               "label": self.range_label(IdRange(f.begin_id, f.end_id)),
                               "failed_at": f.failed_at.isoformat() if f.failed_at else None} for f in self.failed],
            "quarantine": {"count": self.progress.keys_quarantined, "listed": len(self.quarantined),
                           "keys": [q.to_dict() for q in self.quarantined]},
            "verification": None if self.verification is None else {**self.verification.to_dict(),
                                                                    "message": self.verification_text},
            "governor": None if self.governor is None else self.governor.to_dict(self.zone),
            "airflow": {"paused": self.paused.value, "paused_problem": self.paused.problem,
                        "config_problem": self.config.problem},
        }


def gather(tracker: Tracker, airflow: AirflowSource, dag_id: str, now: datetime, window_minutes: int) -> BackfillStatus:
    progress = tracker.progress()
    halted = tracker.halt()
    verification = Verification(tracker).state()
    config = airflow.config(dag_id)
    pace = current_pace(tracker, config.value)
    return BackfillStatus(
        verification=verification if verification.wanted else None,
        halt=None if halted is None else Halt(halted[0], halted[1], tracker.name, dag_id),
        dag_id=dag_id, now=now, progress=progress, failed=tracker.failed_ranges(),
        quarantined=tuple(Quarantine(tracker).quarantined(QUARANTINE_LISTED)),
        observed=observe(tracker.done_per_minute(), now, minutes=window_minutes, started_at=progress.started_at),
        config=config, paused=airflow.is_paused(dag_id), governor=read_governor(tracker, now, pace),
        idle=tuple(IdleLog(tracker.redis, tracker.name, clock=now.timestamp).spans()), pace=pace,
        labels=key_labels(tracker),
    )
