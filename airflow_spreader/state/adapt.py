"""The adaptation's state in Redis: the batches' measured times, and the factor and size the plan chose.

Each batch done adds its seconds and size to sums (``batch-times``, a hash: O(1) whatever the number of
batches); the plan takes the sums and resets them in one transaction, smooths the seconds per unit into
``adapt`` and picks the next cycle's rate factor and batch size there (cycle/pace.py). The batch tasks
and the status only read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import redis

from airflow_spreader.state.keys import Keys
from airflow_spreader.state.records import redis_text

Unit = Literal["ids", "rows"]


@dataclass(frozen=True, slots=True)
class BatchTimes:
    """Batches done since the last plan: their count, seconds, ids; rows and their seconds where reported."""

    batches: int = 0
    seconds: float = 0.0
    ids: int = 0
    rows: int = 0
    row_seconds: float = 0.0

    @property
    def mean_seconds(self) -> float | None:
        """Mean seconds of a batch; None without a batch."""
        return self.seconds / self.batches if self.batches > 0 else None

    def seconds_per(self, unit: Unit) -> float | None:
        """Seconds per id (or per row reported); None without a measure."""
        seconds, size = (self.seconds, self.ids) if unit == "ids" else (self.row_seconds, self.rows)
        return seconds / size if size > 0 and seconds > 0 else None


@dataclass(frozen=True, slots=True)
class AdaptRecord:
    """What the last plan chose, and what it knew: the smoothed seconds per unit, the holds counted."""

    factor: float
    batch_size: int
    seconds_per_unit: float | None
    holds_seen: int
    planned_for: str | None


class AdaptState:
    """The adaptation's keys of backfill ``name``."""

    def __init__(self, client: redis.Redis, name: str) -> None:
        self.redis = client
        self.keys = Keys(name)

    def record_batch(self, seconds: float, ids: int, rows: int | None) -> None:
        """One batch done: add its time and size to the sums the next plan takes."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hincrby(self.keys.batch_times, "batches", 1)
        pipe.hincrbyfloat(self.keys.batch_times, "seconds", max(0.0, seconds))
        pipe.hincrby(self.keys.batch_times, "ids", ids)
        if rows is not None and rows > 0:
            pipe.hincrby(self.keys.batch_times, "rows", rows)
            pipe.hincrbyfloat(self.keys.batch_times, "row_seconds", max(0.0, seconds))
        pipe.execute()

    def take_times(self) -> BatchTimes:
        """The sums since the last take, reset in the same transaction."""
        return self._take(self.keys.batch_times)

    def take_sizing_seconds(self) -> float | None:
        """The mean seconds of the batches done since the last take (None: none), reset in the same transaction:
        each plan sizes its task instances by the batches done since the previous plan (core/grouping.py).
        Every batch adds its time there in its complete.lua call, governor or not: no round trip of its own."""
        return self._take(self.keys.sizing_times).mean_seconds

    def _take(self, key: str) -> BatchTimes:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(key)
        pipe.delete(key)
        return _times(pipe.execute()[0])

    def load(self) -> AdaptRecord | None:
        raw = {redis_text(k): redis_text(v) for k, v in self.redis.hgetall(self.keys.adapt).items()}
        if "factor" not in raw:
            return None
        spu = raw.get("seconds_per_unit")
        return AdaptRecord(float(raw["factor"] or 1), int(raw.get("batch_size") or 1),
                           float(spu) if spu else None, int(raw.get("holds_seen") or 0),
                           raw.get("planned_for") or None)

    def save(self, record: AdaptRecord) -> None:
        self.redis.hset(self.keys.adapt, mapping={
            "factor": repr(record.factor), "batch_size": record.batch_size,
            "seconds_per_unit": "" if record.seconds_per_unit is None else repr(record.seconds_per_unit),
            "holds_seen": record.holds_seen, "planned_for": record.planned_for or ""})

    def clear(self) -> None:
        """The adaptation switched off: the next one starts from the configuration again."""
        self.redis.delete(self.keys.adapt, self.keys.batch_times)


def _times(hash_: Mapping[bytes | str, bytes | str]) -> BatchTimes:
    """The sums of a ``batch-times`` (or ``sizing-times``: batches and seconds only) hash read from Redis."""
    raw = {redis_text(k): redis_text(v) for k, v in hash_.items()}
    return BatchTimes(int(raw.get("batches") or 0), float(raw.get("seconds") or 0), int(raw.get("ids") or 0),
                      int(raw.get("rows") or 0), float(raw.get("row_seconds") or 0))
