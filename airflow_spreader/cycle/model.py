"""The typed values that travel between the tasks of a cycle, through XCom: one type each, with
``to_xcom``/``from_xcom``, so that no task reads another's output by string keys."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from airflow_spreader.state.records import ClaimedBatch


@dataclass(frozen=True, slots=True)
class CycleSummary:
    """What one cycle's plan did: pushed by the plan under the XCom key ``cycle``, read by the chain and report."""

    begin_at: datetime
    #: The cycle's real length in seconds: its whole slots, ``ceil(per_second x duration) / per_second``.
    duration: float
    lead_seconds: float
    per_second: float
    on_peak: bool
    batches: int
    replanned: int
    task_instances: int
    cursor_before: int | None
    cursor_after: int | None
    stopped: bool
    finished: bool
    #: The configuration's ``follow_new_rows`` at this plan: the chain then ends only after a look at MAX.
    follow_new_rows: bool = False
    #: The pass the backfill is in after this plan (1: the first walk), and what the plan's look did, if any.
    passes: int = 1
    look: str | None = None
    #: The governor's factor on the calendar's rate (1: none) and the batch size planned (cycle/pace.py).
    rate_factor: float = 1.0
    batch_size: int | None = None

    @property
    def end_at(self) -> datetime:
        """The cycle's planned end, where the next cycle begins."""
        return self.begin_at + timedelta(seconds=self.duration)

    def to_xcom(self) -> dict[str, Any]:
        data = asdict(self)
        data["begin_at"] = self.begin_at.isoformat()
        return data

    @classmethod
    def from_xcom(cls, data: dict[str, Any]) -> CycleSummary:
        known = {f.name for f in fields(cls)}
        values = {name: value for name, value in data.items() if name in known}
        values["begin_at"] = datetime.fromisoformat(data["begin_at"])
        values.setdefault("lead_seconds", 0.0)
        return cls(**values)


@dataclass(frozen=True, slots=True)
class BatchGroup:
    """The batches one task instance runs: ``to_xcom`` is its ``expand_kwargs`` entry (``batches=[...]``, and
    ``measure_times=True`` when the governor sizes batches from their measured times)."""

    batches: tuple[ClaimedBatch, ...]
    #: Whether each batch done adds its time to the sums target_batch_seconds reads (state/adapt.py): a
    #: write to Redis per batch, skipped when nothing reads it.
    measure_times: bool = False

    def to_xcom(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"batches": [batch.to_dict() for batch in self.batches]}
        if self.measure_times:
            entry["measure_times"] = True
        return entry

    @classmethod
    def from_xcom(cls, batches: list[dict[str, Any]]) -> BatchGroup:
        """From the operator argument ``batches`` (the list inside ``to_xcom``)."""
        return cls(tuple(ClaimedBatch.from_dict(data) for data in batches))
