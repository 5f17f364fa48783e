"""Backfill metrics through Airflow's own Stats facade: StatsD, Datadog or OpenTelemetry, as deployed.

Airflow configures the backend (``[metrics] statsd_on``, ``otel_on``, ...) when a task process
starts, so these calls cost nothing where metrics are off. Each metric is sent the way Airflow
3.3 sends its own: under a fixed name ``spreader.<metric>`` with the tag ``backfill=<name>``
(kept by Datadog, OpenTelemetry and InfluxDB-style StatsD), and, while ``[metrics]
legacy_names_on`` is true (Airflow's default), also under ``spreader.<backfill>.<metric>`` for
plain StatsD, which drops tags. ``[metrics] statsd_prefix`` (default ``airflow``) comes first.

Emitting never raises: a lost metric is better than a batch failed after its work committed.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Literal

from airflow_spreader.compat import conf, stats
from airflow_spreader.core.keys import is_uuid_image

log = logging.getLogger(__name__)

Kind = Literal["incr", "gauge", "timing"]

#: Every metric, its kind and what it measures (docs/console.md lists the same).
METRICS: dict[str, tuple[Kind, str]] = {
    "ids_done": ("incr", "ids of the batches done (key span, gaps included)"),
    "rows_done": ("incr", "rows the work reported changed"),
    "batches_done": ("incr", "batches whose work committed"),
    "batch_errors": ("incr", "failed attempts of a batch (each one, retried or not)"),
    "batches_failed": ("incr", "batches kept as failed ranges after their last try"),
    "batch_duration": ("timing", "time of one batch's transaction"),
    "batch_lateness": ("timing", "how late a batch started after its planned time"),
    "cycles": ("incr", "cycles planned"),
    "batches_planned": ("incr", "batches claimed by the cycles"),
    "cursor": ("gauge", "highest id not yet planned; falls to min_id - 1"),
    "per_second": ("gauge", "batches per second in force for the last cycle (on or off peak, times the factor)"),
    "rate_factor": ("gauge", "the governor's factor on the calendar's rate for the last cycle (1: none)"),
    "batch_size": ("gauge", "ids (or rows) per batch of the last cycle (the governor's, with target_batch_seconds)"),
    "governor_state": ("gauge", "the governor at its last check: 0 running, 1 held, 2 stopped"),
    "held_seconds": ("gauge", "seconds held by the governor so far, over the backfill's life"),
}

#: The ``governor_state`` gauge's values.
GOVERNOR_STATES = {"ok": 0, "hold": 1, "stop": 2}


def legacy_name(backfill: str, metric: str) -> str:
    """``spreader.<backfill>.<metric>``; dots in the name become ``__`` as in Airflow's legacy names."""
    return f"spreader.{backfill.replace('.', '__')}.{metric}"


def _emit(backfill: str, metric: str, value: float) -> None:
    """Send one value (seconds for timings) under the tagged name and, if on, the legacy name."""
    kind = METRICS[metric][0]
    try:
        names: list[tuple[str, dict[str, str] | None]] = [(f"spreader.{metric}", {"backfill": backfill})]
        if conf.getboolean("metrics", "legacy_names_on", fallback=True):
            names.append((legacy_name(backfill, metric), None))
        for name, tags in names:
            if kind == "incr":
                stats.incr(name, count=int(value), tags=tags)
            elif kind == "gauge":
                stats.gauge(name, value, tags=tags)
            else:
                stats.timing(name, timedelta(seconds=value), tags=tags)
    except Exception:  # never let a metric fail the caller
        log.warning("Could not emit metric %s of backfill %r", metric, backfill, exc_info=True)


def batch_started(backfill: str, run_at: datetime) -> float:
    """Emit how late the batch starts; return a ``time.monotonic()`` start for :func:`batch_done`."""
    late = max(0.0, (datetime.now(timezone.utc) - run_at).total_seconds())
    _emit(backfill, "batch_lateness", late)
    return time.monotonic()


def batch_done(backfill: str, *, ids: int, rows: int | None, seconds: float) -> None:
    """A batch's work committed: ``ids`` of key span, ``rows`` changed (None: not reported)."""
    _emit(backfill, "batches_done", 1)
    _emit(backfill, "ids_done", ids)
    if rows is not None:
        _emit(backfill, "rows_done", rows)
    _emit(backfill, "batch_duration", max(0.0, seconds))


def batch_failed(backfill: str, *, final: bool) -> None:
    """A batch's work raised; ``final`` when it is now kept as a failed range."""
    _emit(backfill, "batch_errors", 1)
    if final:
        _emit(backfill, "batches_failed", 1)


def cycle_planned(backfill: str, *, batches: int, cursor: int | None, per_second: float, rate_factor: float = 1.0,
                  batch_size: int | None = None) -> None:
    """A cycle claimed ``batches``, leaving the cursor at ``cursor``, at ``per_second`` batches/s (the
    calendar's rate times ``rate_factor``), of ``batch_size`` each."""
    _emit(backfill, "cycles", 1)
    _emit(backfill, "batches_planned", batches)
    if cursor is not None and not is_uuid_image(cursor):  # a UUID key's image is no number to plot
        _emit(backfill, "cursor", cursor)
    _emit(backfill, "per_second", per_second)
    _emit(backfill, "rate_factor", rate_factor)
    if batch_size is not None:
        _emit(backfill, "batch_size", batch_size)


def governor_checked(backfill: str, *, decision: str, held_seconds: float) -> None:
    """The governor's check decided ``decision`` (ok, hold, stop); ``held_seconds`` held so far."""
    _emit(backfill, "governor_state", GOVERNOR_STATES.get(decision, 0))
    _emit(backfill, "held_seconds", held_seconds)
