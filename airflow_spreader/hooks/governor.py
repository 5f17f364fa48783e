"""The governor, Airflow side: check its configuration at the plan, and take the shared reading.

``verdict()`` is the one call a batch task makes before starting a batch. It costs one Redis round trip
while a reading is fresh; once per ``health_interval`` one task instance of the backfill (the one that
wins the lease) reads the signals and records the verdict for all of them.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from airflow.sdk import BaseHook

from airflow_spreader import metrics
from airflow_spreader.core.governor import Reading, Verdict, decide
from airflow_spreader.core.governor_config import GovernorConfig
from airflow_spreader.core.rules import ConfigError
from airflow_spreader.hooks import health
from airflow_spreader.state.governor import GovernorState
from airflow_spreader.state.tracker import Tracker

#: Seconds a task waits for the first reading another task is taking, before counting it as unhealthy.
FIRST_READING_WAIT = 10.0


def one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:300] if lines else ''}".rstrip(": ")


def check_config(config: GovernorConfig | None) -> None:
    """What only Airflow can tell: every connection exists, every callable imports. One ConfigError."""
    if config is None:
        return
    problems: dict[str, str] = {}
    for i, signal in enumerate(config.signals):
        where = f"governor.signals[{i}]"
        if signal.conn_id is not None:
            try:
                BaseHook.get_connection(signal.conn_id)
            except Exception as error:
                problems[f"{where}.conn_id"] = f"no Airflow connection {signal.conn_id!r} ({one_line(error)})"
        if signal.callable is not None:
            try:
                health.import_callable(signal.callable)
            except Exception as error:
                problems[f"{where}.callable"] = f"{signal.callable!r} does not import ({one_line(error)})"
    if problems:
        raise ConfigError(problems)


def publish(tracker: Tracker, config: GovernorConfig | None) -> None:
    """Hand this plan's governor configuration to the batches (and triggers) through Redis."""
    GovernorState(tracker.redis, tracker.name).publish(config)


def take_reading(config: GovernorConfig) -> list[tuple[str, Reading]]:
    """Every signal read once; a check that raises is a failed reading (unhealthy)."""
    readings = []
    for signal in config.signals:
        try:
            readings.append((signal.label, Reading(health.read(signal))))
        except Exception as error:
            readings.append((signal.label, Reading(None, one_line(error))))
    return readings


class Governor:
    """The verdict for backfill ``name``'s next batch, from the reading shared through Redis."""

    def __init__(self, client: Any, name: str, log: Any = None) -> None:
        self.state = GovernorState(client, name)
        self.log = log

    def verdict(self) -> Verdict | None:
        """None with the governor off; else the current verdict (checking the signals if it is this
        task's turn)."""
        config = self.state.config()
        if config is None or not config.signals:
            return None
        if self.state.take_turn(config.health_interval):
            readings = take_reading(config)
            verdict = decide(config.signals, [reading for _, reading in readings])
            previous = self.state.record(verdict, readings)
            record = self.state.current()
            held = 0.0 if record is None else record.total_held(datetime.now(timezone.utc))
            metrics.governor_checked(self.state.keys.name, decision=verdict.decision, held_seconds=held)
            if previous != verdict.decision and self.log is not None:
                self.log.warning("Governor: %s -> %s (%s)", previous, verdict.decision, verdict.reason)
            return verdict
        deadline = time.monotonic() + FIRST_READING_WAIT
        while (record := self.state.current()) is None and time.monotonic() < deadline:
            time.sleep(0.1)  # another task takes the first reading
        return Verdict("hold", error="no reading yet") if record is None else record.verdict
