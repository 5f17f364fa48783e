"""What the governor is doing to a backfill, and why: for ``status`` (text, --json) and the Backfills page.

Read from Redis only (state/governor.py): the last check's verdict and readings, since when the decision
holds, the time held so far, and the capped log of its decisions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from airflow_spreader.core.adapt import Pace
from airflow_spreader.core.governor import UNITS, number_text
from airflow_spreader.core.governor_config import GovernorConfig
from airflow_spreader.state.governor import GovernorRecord, GovernorState, LoggedDecision
from airflow_spreader.state.tracker import Tracker

#: Decisions the text of ``status`` lists (the JSON has all the log keeps).
HISTORY_SHOWN = 5


@dataclass(frozen=True)
class GovernorView:
    """The governor of one backfill as read at ``now``; ``record`` is None before its first check."""

    config: GovernorConfig
    record: GovernorRecord | None
    history: list[LoggedDecision]
    stopped_by_governor: bool
    now: datetime
    #: The rate factor and batch size of the last plan (None: no adaptation on).
    pace: Pace | None = None

    @property
    def state(self) -> str:
        """``stopped`` (by the governor), ``held``, ``running``, or ``waiting`` for its first check."""
        if self.stopped_by_governor:
            return "stopped"
        if self.record is None:
            return "waiting"
        return "held" if self.record.verdict.decision == "hold" else "running"

    def message(self, zone: tzinfo) -> str:
        """``held: replica lag 4.2 s > 2 s since 12:03:10``."""
        if self.record is None:
            return "no check yet (the signals are read before each batch start)"
        verdict = self.record.verdict
        since = self.record.since.astimezone(zone).strftime("%H:%M:%S") if self.record.since else "?"
        if self.state == "stopped":
            return f"stopped by the governor: {verdict.reason} since {since}; `go` resumes"
        if self.state == "held":
            return f"held: {verdict.reason} since {since}"
        return f"running: {verdict.reason}"

    def readings(self) -> list[dict[str, Any]]:
        """Each signal's last reading beside its thresholds."""
        shown = []
        readings = self.record.readings if self.record else {}
        for signal in self.config.signals:
            reading = readings.get(signal.label)
            shown.append({"signal": signal.label, "kind": signal.kind, "unit": UNITS[signal.kind],
                          "value": None if reading is None else reading.value,
                          "error": None if reading is None else reading.error,
                          "hold_above": signal.hold_above, "stop_above": signal.stop_above})
        return shown

    def readings_text(self) -> str:
        parts = []
        for r in self.readings():
            unit = f" {r['unit']}" if r["unit"] else ""
            value = ("not read" if r["value"] is None and r["error"] is None else
                     f"failed ({r['error']})" if r["value"] is None else f"{number_text(r['value'])}{unit}")
            stop = f", stop above {number_text(r['stop_above'])}{unit}" if r["stop_above"] is not None else ""
            parts.append(f"{r['signal']} {value} (hold above {number_text(r['hold_above'])}{unit}{stop})")
        return "; ".join(parts)

    def to_dict(self, zone: tzinfo) -> dict[str, Any]:
        record = self.record
        return {
            "state": self.state, "message": self.message(zone),
            "verdict": None if record is None else record.verdict.to_dict(),
            "since": record.since.isoformat() if record and record.since else None,
            "checked_at": record.checked_at.isoformat() if record and record.checked_at else None,
            "seconds_in_state": None if record is None else record.seconds_in_decision(self.now),
            "held_seconds_total": 0.0 if record is None else record.total_held(self.now),
            "health_interval": self.config.health_interval, "checks": 0 if record is None else record.checks,
            "readings": self.readings(),
            "rate_factor": None if self.pace is None else self.pace.factor,
            "batch_size": None if self.pace is None else self.pace.batch_size,
            "adaptive_rate": self.config.adaptive_rate, "target_batch_seconds": self.config.target_batch_seconds,
            "history": [entry.to_dict() for entry in self.history],
        }


def read_governor(tracker: Tracker, now: datetime, pace: Pace | None = None) -> GovernorView | None:
    """The governor's view, or None when the backfill's last plan switched no governor on."""
    state = GovernorState(tracker.redis, tracker.name)
    config = state.config()
    if config is None:
        return None
    return GovernorView(config, state.current(), state.history(), state.stopped_by_governor(), now, pace)
