"""A durable checkpoint of each backfill on the Airflow side, in case Redis loses its data.

Redis without persistence forgets everything on a restart; a tracker that silently started over
from the top would redo the whole table. Each cycle records, in the Variable
``spreader__<dag_id>__checkpoint``, the low-water mark (every id above it is done) and the bounds.
When the tracker is missing but a checkpoint exists, the plan refuses to start over and says how
to resume from the checkpoint (ids between the mark and the cursor at the loss are done again:
at least once, never lost; exactly once with the done-ledger, which the restore keeps using).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from airflow.sdk import Variable

from airflow_spreader.errors import SpreaderError
from airflow_spreader.state.tracker import Tracker


class TrackerStateLost(SpreaderError, RuntimeError):
    """Redis has no state for a backfill that has a checkpoint: refuse to start over silently."""


@dataclass(frozen=True)
class Checkpoint:
    low_water: int
    min_id: int
    max_id: int
    finished: bool
    at: str
    #: The tracker's generation: a restore continues it, so the done-ledger still skips finished ranges.
    generation: str | None = None

    @classmethod
    def from_json(cls, raw: str | dict[str, Any]) -> Checkpoint:
        data: dict[str, Any] = json.loads(raw) if isinstance(raw, str) else raw
        return cls(**data)

    def restore(self, tracker: Tracker) -> None:
        """Start the tracker again from the checkpoint: nothing above ``low_water`` is done twice, and with
        the done-ledger nothing below it either (the ranges done there are skipped, as long as the batch
        size is the one they ran with)."""
        tracker.start(max_id=self.low_water, min_id=self.min_id, generation=self.generation)


def checkpoint_key(config_variable: str) -> str:
    return f"{config_variable}__checkpoint"


def load(config_variable: str) -> Checkpoint | None:
    raw = Variable.get(checkpoint_key(config_variable), default=None)
    if raw is None:
        return None
    return Checkpoint.from_json(raw)


def save(config_variable: str, tracker: Tracker) -> Checkpoint | None:
    progress = tracker.progress()
    low_water = tracker.low_water_mark()
    if low_water is None or progress.min_id is None or progress.max_id is None:
        return None
    checkpoint = Checkpoint(low_water, progress.min_id, progress.max_id, progress.finished,
                            datetime.now(timezone.utc).isoformat(timespec="seconds"), tracker.generation())
    Variable.set(checkpoint_key(config_variable), json.dumps(asdict(checkpoint)),
                 description=f"airflow-spreader checkpoint of backfill {tracker.name!r}: every id above "
                             "low_water is done")
    return checkpoint


def refuse_to_start_over(config_variable: str, tracker: Tracker, checkpoint: Checkpoint) -> TrackerStateLost:
    key = checkpoint_key(config_variable)
    if checkpoint.finished:
        return TrackerStateLost(
            f"backfill {tracker.name!r} finished (checkpoint {checkpoint.at}) and Redis no longer has its "
            f"state; to run it again from the top, delete the Variable {key}")
    return TrackerStateLost(
        f"backfill {tracker.name!r} has no state in Redis, but its checkpoint (Variable {key}, {checkpoint.at}) "
        f"says every id above {checkpoint.low_water} (of {checkpoint.min_id}..{checkpoint.max_id}) is done: "
        "Redis lost its data (restarted without persistence?). Resume from the checkpoint with "
        f"`airflow-spreader restore {tracker.name}` (or Tracker(...).start(max_id={checkpoint.low_water}, "
        f"min_id={checkpoint.min_id})), then trigger the DAG; to start over from the top, delete the Variable {key}")
