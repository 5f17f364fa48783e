"""The durable checkpoint of a backfill, for when Redis loses its data.

Redis without persistence forgets everything on a restart; a tracker that silently started over
from the top would redo the whole table. Each cycle records, in the Variable
``spreader__<dag_id>__checkpoint`` (see :mod:`airflow_spreader.hooks.checkpoint`), the low-water mark
(every id above it is done) and the bounds. When the tracker is missing but a checkpoint exists, the
plan refuses to start over and says how to resume from the checkpoint (ids between the mark and the
cursor at the loss are done again: at least once, never lost; exactly once with the done-ledger,
which the restore keeps using). This module is the record and its rules; the store is Airflow's.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from airflow_spreader.core.keys import TEXT_BOTTOM, is_text_image
from airflow_spreader.errors import SpreaderError
from airflow_spreader.state.text_keys import BELOW_ALL, TextKeyStore
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
    #: A text key: ``low_water`` is a handle (state/text_keys.py) and this is its text (None: below all keys),
    #: so that a restore re-mints it where Redis lost the map.
    text_key: bool = False
    low_water_text: str | None = None

    @classmethod
    def from_json(cls, raw: str | dict[str, Any]) -> Checkpoint:
        data: dict[str, Any] = json.loads(raw) if isinstance(raw, str) else raw
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def of(cls, tracker: Tracker, now: datetime) -> Checkpoint | None:
        """The tracker's checkpoint now; None before it has bounds."""
        progress = tracker.progress()
        low_water = tracker.low_water_mark()
        if low_water is None or progress.min_id is None or progress.max_id is None:
            return None
        at, generation = now.isoformat(timespec="seconds"), tracker.generation()
        if is_text_image(progress.max_id):
            low_water, text = TextKeyStore(tracker).at_or_above(low_water)
            return cls(low_water, progress.min_id, progress.max_id, progress.finished, at, generation, True, text)
        return cls(low_water, progress.min_id, progress.max_id, progress.finished, at, generation)

    def restore(self, tracker: Tracker) -> None:
        """Start the tracker again from the checkpoint, in its generation: nothing above ``low_water`` is done
        twice, and with the done-ledger nothing below it either (the ranges done there are skipped, whatever
        the new cut: a text key's ledger records its ranges by their texts, sql/text_ledger.py, so the handles
        carved again from the table below the re-minted mark need not stand for the same rows)."""
        if self.text_key:
            TextKeyStore(tracker).mint({self.low_water: self.low_water_text, TEXT_BOTTOM: BELOW_ALL})
        tracker.start(max_id=self.low_water, min_id=self.min_id, generation=self.generation)

    def refusal(self, name: str, variable: str) -> TrackerStateLost:
        """Why the plan does not start ``name`` over from the top, and how to go on."""
        if self.finished:
            return TrackerStateLost(
                f"backfill {name!r} finished (checkpoint {self.at}) and Redis no longer has its "
                f"state; to run it again from the top, delete the Variable {variable}")
        return TrackerStateLost(
            f"backfill {name!r} has no state in Redis, but its checkpoint (Variable {variable}, {self.at}) "
            f"says every id above {self.low_water} (of {self.min_id}..{self.max_id}) is done: "
            "Redis lost its data (restarted without persistence?). Resume from the checkpoint with "
            f"`airflow-spreader restore {name}` (or Tracker(...).start(max_id={self.low_water}, "
            f"min_id={self.min_id})), then trigger the DAG; to start over from the top, delete the Variable "
            f"{variable}")
