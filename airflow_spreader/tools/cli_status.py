"""``status``: how far a backfill is, how fast it goes, when it will finish, what failed.

Everything is read once into a :class:`BackfillStatus`, which renders as text or JSON. Redis
alone gives the progress and the pace; the rate in force and the ETA need the configuration,
and "paused" needs the DAG, both from Airflow: without them the report says what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from airflow_spreader.core.config import SpreadConfig
from airflow_spreader.core.eta import Eta, Observed, estimate, ids_per_second, observe
from airflow_spreader.state.records import FailedRange, Progress
from airflow_spreader.state.tracker import Tracker
from airflow_spreader.tools.cli_sources import AirflowSource, Lookup

BAR_WIDTH = 30
FAILED_SHOWN = 5


def display_zone(config: SpreadConfig | None) -> tzinfo:
    """Times show in the peak hours' zone, the one the operator plans in (UTC without a configuration)."""
    return ZoneInfo(config.on_peak_timezone if config else "UTC")


def state_of(progress: Progress, paused: bool | None) -> str:
    """running, paused, stopped, done, failed (only failed ranges left), or not started."""
    if not progress.started:
        return "not started"
    if progress.finished:
        return "done"
    if progress.exhausted and progress.in_flight == 0 and progress.batches_failed:
        return "failed"
    if progress.stopped:
        return "stopped"
    return "paused" if paused else "running"


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

    @property
    def name(self) -> str:
        return self.progress.name

    @property
    def state(self) -> str:
        return state_of(self.progress, self.paused.value)

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
        if not p.started:
            return Eta("unknown", None, "not started: the DAG's first run captures the table's bounds")
        if self.config.value is None:
            return Eta("unknown", None, f"needs the configuration: {self.config.problem}")
        return estimate(self.config.value, self.now, remaining_ids=max(0, p.total_ids - p.ids_done - p.ids_failed),
                        failed_ids=p.ids_failed, stopped=p.stopped, paused=self.paused.value is True,
                        observed=self.observed)

    def in_force(self) -> dict[str, Any] | None:
        """The rate in force now and when it changes, or None without the configuration."""
        config = self.config.value
        if config is None:
            return None
        schedule = config.peak_schedule
        on_peak = schedule.is_on_peak(self.now)
        change = schedule.next_change(self.now)
        return {"on_peak": on_peak, "per_second": config.per_second(self.now), "batch_size": config.batch_size,
                "ids_per_second": ids_per_second(config, on_peak), "timezone": config.on_peak_timezone,
                "next_change": change.isoformat() if change else None,
                "next_per_second": config.per_second_off_peak if on_peak else config.per_second_on_peak}

    def to_dict(self) -> dict[str, Any]:
        return {
            "backfill": self.name, "dag_id": self.dag_id, "state": self.state, "now": self.now.isoformat(),
            "progress": self.progress.to_dict(),
            "ids_per_second": {"recent": self.observed.ids_per_second, "recent_seconds": self.observed.seconds,
                               "since_start": self.since_start},
            "in_force": self.in_force(), "eta": self.eta.to_dict(self.now),
            "failed_ranges": [{"begin_id": f.begin_id, "end_id": f.end_id, "attempts": f.attempts, "error": f.error,
                               "failed_at": f.failed_at.isoformat() if f.failed_at else None} for f in self.failed],
            "airflow": {"paused": self.paused.value, "paused_problem": self.paused.problem,
                        "config_problem": self.config.problem},
        }


def gather(tracker: Tracker, airflow: AirflowSource, dag_id: str, now: datetime, window_minutes: int) -> BackfillStatus:
    progress = tracker.progress()
    return BackfillStatus(
        dag_id=dag_id, now=now, progress=progress, failed=tracker.failed_ranges(),
        observed=observe(tracker.done_per_minute(), now, minutes=window_minutes, started_at=progress.started_at),
        config=airflow.config(dag_id), paused=airflow.is_paused(dag_id),
    )


# -- text ------------------------------------------------------------------------------------------------------


def duration_text(seconds: float) -> str:
    """``<1 min``, ``42 min``, ``3 h 12 min``, ``2 d 4 h``: precise enough for a backfill."""
    minutes = int(seconds // 60)
    if minutes < 1:
        return "<1 min"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def time_text(at: datetime, zone: tzinfo) -> str:
    return at.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z")


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def rate_text(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} ids/s"


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    done = int(fraction * width)
    return f"[{'#' * done}{'.' * (width - done)}] {fraction:6.1%}"


def render(status: BackfillStatus) -> str:
    p, zone = status.progress, status.zone
    lines = [f"{status.name}  {status.state}" + (f"  (DAG {status.dag_id})" if status.dag_id != status.name else "")]
    if not p.started:
        lines.append("  not started: the DAG's first run captures the table's bounds")
    else:
        lines.append(f"  progress  {bar(p.fraction_done)}  {p.ids_done:,} of {p.total_ids:,} ids "
                     f"({p.rows_done:,} rows)")
        recent = f"over the last {duration_text(status.observed.seconds)}"
        lines.append(f"  pace      {rate_text(status.observed.ids_per_second)} {recent}, "
                     f"{rate_text(status.since_start)} since start"
                     + (f" ({time_text(p.started_at, zone)})" if p.started_at else ""))
    force = status.in_force()
    if force is None:
        lines.append(f"  in force  unknown: {status.config.problem}")
    else:
        then = (f"; {'off' if force['on_peak'] else 'on'} peak ({force['next_per_second']:g}/s) from "
                f"{time_text(datetime.fromisoformat(force['next_change']), zone)}" if force["next_change"] else "")
        lines.append(f"  in force  {'on' if force['on_peak'] else 'off'} peak: {force['per_second']:g} batches/s x "
                     f"{force['batch_size']:,} ids = {force['ids_per_second']:,.1f} ids/s{then}")
    if p.started:
        lines.append(f"  batches   {p.batches_done:,} done, {p.in_flight:,} in flight, {p.batches_failed:,} failed "
                     f"({p.ids_failed:,} ids), {plural(p.cycles, 'cycle')}")
    eta = status.eta
    if eta.state == "estimated" and eta.finish is not None:
        left = duration_text(eta.seconds_left(status.now) or 0.0)
        lines.append(f"  ETA       {time_text(eta.finish, zone)} (in {left}), {eta.reason}")
    else:
        lines.append(f"  ETA       {'done' if eta.state == 'done' else 'none'}: {eta.reason}")
    for failed in status.failed[:FAILED_SHOWN]:
        error = (failed.error.splitlines() or [""])[0][:100]
        lines.append(f"  failed    {failed.begin_id}-{failed.end_id}  {plural(failed.attempts, 'attempt')}  {error}")
    if len(status.failed) > FAILED_SHOWN:
        lines.append(f"  failed    ... {len(status.failed) - FAILED_SHOWN} more (see --json)")
    lines.append(f"  airflow   {airflow_text(status)}")
    return "\n".join(lines)


def airflow_text(status: BackfillStatus) -> str:
    if status.paused.problem and status.paused.problem == status.config.problem:
        return f"{status.paused.problem}: state from Redis only"
    paused = status.paused.problem or f"DAG {status.dag_id} {'paused' if status.paused.value else 'not paused'}"
    return paused + (f"; {status.config.problem}" if status.config.problem else "")
