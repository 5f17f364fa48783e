"""Where the checkpoint of a backfill is kept on the Airflow side: a Variable, read and written by tasks."""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import Variable

from airflow_spreader.core.names import CHECKPOINT_SUFFIX
from airflow_spreader.state.checkpoint import Checkpoint, TrackerStateLost
from airflow_spreader.state.tracker import Tracker

__all__ = ["Checkpoint", "TrackerStateLost", "checkpoint_key", "load", "refuse_to_start_over", "save"]


def checkpoint_key(config_variable: str) -> str:
    """The checkpoint Variable beside a configuration Variable."""
    return f"{config_variable}{CHECKPOINT_SUFFIX}"


def load(config_variable: str) -> Checkpoint | None:
    raw = Variable.get(checkpoint_key(config_variable), default=None)
    if raw is None:
        return None
    return Checkpoint.from_json(raw)


def save(config_variable: str, tracker: Tracker) -> Checkpoint | None:
    checkpoint = Checkpoint.of(tracker, datetime.now(timezone.utc))
    if checkpoint is None:
        return None
    Variable.set(checkpoint_key(config_variable), checkpoint.to_json(),
                 description=f"airflow-spreader checkpoint of backfill {tracker.name!r}: every id above "
                             "low_water is done")
    return checkpoint


def refuse_to_start_over(config_variable: str, tracker: Tracker, checkpoint: Checkpoint) -> TrackerStateLost:
    return checkpoint.refusal(tracker.name, checkpoint_key(config_variable))
