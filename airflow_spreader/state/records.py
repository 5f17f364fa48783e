"""Plain records that the tracker hands out: claimed batches, failed ranges, progress."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum, IntEnum
from fractions import Fraction
from typing import Any

from airflow_spreader.core.planner import Batch, IdRange, Number


class BeginState(str, Enum):
    """What ``Tracker.begin`` answers. A ``str`` Enum (not StrEnum: Python 3.10) so ``== "run"`` still holds."""

    RUN = "run"
    STOPPED = "stopped"
    GONE = "gone"
    SUPERSEDED = "superseded"
    FAILED_THIS_TRY = "failed-this-try"

    def __str__(self) -> str:
        return self.value


class ClaimOutcome(IntEnum):
    """What the claim script answers: the cycle was committed, the snapshot was stale, or the backfill stops."""

    CLAIMED = 1
    STALE = 0
    STOPPED = -1
    RECORDED = 2  #: the claim id claimed a cycle after the snapshot: the next snapshot reads it


@dataclass(frozen=True, slots=True)
class ClaimedBatch:
    """A batch this planner now holds. ``token`` fences it: only its holder may start it."""

    run_at: datetime
    begin_id: int
    end_id: int
    token: int
    replanned: bool = False

    @property
    def id_range(self) -> IdRange:
        return IdRange(self.begin_id, self.end_id)

    @property
    def size(self) -> int:
        return self.end_id - self.begin_id + 1

    def as_batch(self) -> Batch:
        return Batch(self.run_at, self.begin_id, self.end_id)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for XCom and task arguments."""
        return {
            "run_at": self.run_at.isoformat(),
            "begin_id": self.begin_id,
            "end_id": self.end_id,
            "token": self.token,
            "replanned": self.replanned,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClaimedBatch:
        run_at = datetime.fromisoformat(data["run_at"])
        return cls(run_at, int(data["begin_id"]), int(data["end_id"]), int(data["token"]),
                   bool(data.get("replanned", False)))


@dataclass(frozen=True, slots=True)
class CycleClaim:
    """What one cycle claimed, and why it may be empty."""

    batches: list[ClaimedBatch]
    cursor_before: int | None
    cursor_after: int | None
    stopped: bool = False
    #: When the cycle begins (its first slot): the requested time, or the previous cycle's planned end.
    begin_at: datetime | None = None
    #: The rate the cycle was planned at: the one in force at ``begin_at``.
    per_second: Number | None = None
    #: Where the cycle's slots end (the next cycle's begin); None when nothing was claimed.
    end_at: datetime | None = None
    #: The cycle was claimed before under the same claim id, and is handed back unchanged.
    replayed: bool = field(default=False, compare=False)

    @property
    def replanned(self) -> int:
        return sum(1 for b in self.batches if b.replanned)

    @classmethod
    def from_record(cls, record: str) -> CycleClaim:
        """The cycle a claim script recorded: ``{"first_token": N, "cycle": cycle_record(...)}``."""
        data = json.loads(record)
        first, cycle = int(data["first_token"]), data["cycle"]
        begin = datetime.fromisoformat(cycle["begin_at"])
        batches = [ClaimedBatch(begin + timedelta(microseconds=offset), int(b), int(e), first + i, bool(again))
                   for i, (b, e, offset, again) in enumerate(cycle["batches"])]
        rate = cycle["per_second"]
        return cls(batches, cycle["cursor_before"], cycle["cursor_after"], begin_at=begin,
                   per_second=Fraction(rate) if isinstance(rate, str) else rate,
                   end_at=datetime.fromisoformat(cycle["end_at"]), replayed=True)


@dataclass(frozen=True, slots=True)
class FailedRange:
    begin_id: int
    end_id: int
    error: str
    attempts: int
    failed_at: datetime | None


@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot of one backfill. Ids are counted by key span: gaps in the ids count too."""

    name: str
    started: bool
    stopped: bool
    cursor: int | None = None
    min_id: int | None = None
    max_id: int | None = None
    total_ids: int = 0
    ids_planned: int = 0
    batches_planned: int = 0
    ids_done: int = 0
    batches_done: int = 0
    rows_done: int = 0
    ids_failed: int = 0
    #: Ids passed over by hand (``airflow-spreader skip``): neither done nor remaining.
    ids_skipped: int = 0
    batches_failed: int = 0
    errors: int = 0
    attempts_lost: int = 0  # ranges planned again because their lease ran out (a task died), not handed back
    keys_quarantined: int = 0  # poison rows isolated by bisecting failed ranges (state/quarantine.py)
    cycles: int = 0
    in_flight: int = 0
    started_at: datetime | None = None
    last_activity: datetime | None = None
    counters: dict[str, int] = field(default_factory=dict)
    #: Walks over the key: 1, plus one per range of new rows found above the top (``follow_new_rows``).
    passes: int = 1
    #: The lowest id of the current pass: ``min_id`` in the first, the previous top + 1 in a later one.
    pass_floor: int | None = None
    #: The top at which the last look at the key's MAX ended the passes (nothing new, or ``max_passes``).
    looked_top: int | None = None
    #: The key's MAX at that look: above ``max_id`` when the pass bound left ids unvisited.
    seen_max: int | None = None
    looked_at: datetime | None = None

    @property
    def floor(self) -> int | None:
        """Where the current pass ends: the cursor goes below it once every id of the pass is planned."""
        return self.min_id if self.pass_floor is None else self.pass_floor

    #: ``"rows"`` when the last plan cut batches of real rows (then progress counts rows), else ``"ids"``.
    batching: str = "ids"
    #: The table's rows as its statistics said when it first planned in rows; None in ``"ids"``.
    rows_estimate: int | None = None

    @property
    def counts_rows(self) -> bool:
        return self.batching == "rows" and self.rows_estimate is not None

    @property
    def rows_total(self) -> int:
        """Rows to do in all: exact once finished (the rows done), else the estimate, raised to the rows done."""
        if self.finished or self.rows_estimate is None:
            return self.rows_done
        return max(self.rows_estimate, self.rows_done)

    @property
    def rows_total_is_estimate(self) -> bool:
        """Until the walk has reached the bottom of the key and every batch finished, the total is a guess."""
        return not self.finished

    @property
    def exhausted(self) -> bool:
        """Every id has been planned at least once (every id of the last pass, and so of the passes before)."""
        floor = self.floor
        return self.started and self.cursor is not None and floor is not None and self.cursor < floor

    @property
    def looked_for_new_rows(self) -> bool:
        """The key's MAX was read at the bottom of the current pass and no further pass follows."""
        return self.looked_top is not None and self.looked_top == self.max_id

    @property
    def looked_after_last_batch(self) -> bool:
        """The passes ended at a look that came after the last batch's activity: nothing was missed since."""
        if not self.looked_for_new_rows or self.looked_at is None:
            return False
        return self.last_activity is None or self.looked_at >= self.last_activity

    @property
    def ids_left_above(self) -> int:
        """Ids above the top that the pass bound left unvisited (0 when none were seen)."""
        if self.seen_max is None or self.max_id is None or not self.looked_for_new_rows:
            return 0
        return max(0, self.seen_max - self.max_id)

    @property
    def finished(self) -> bool:
        """Nothing left to plan, in flight, failed or quarantined."""
        return self.exhausted and self.in_flight == 0 and self.batches_failed == 0 and self.keys_quarantined == 0

    @property
    def fraction_done(self) -> float:
        if not self.started:
            return 0.0
        if self.counts_rows:
            return 1.0 if self.finished or self.rows_total == 0 else min(1.0, self.rows_done / self.rows_total)
        return 1.0 if self.total_ids == 0 else min(1.0, (self.ids_done + self.ids_skipped) / self.total_ids)

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "counters"}
        for key in ("started_at", "last_activity", "looked_at"):
            value = data[key]
            data[key] = value.isoformat() if value else None
        rows = self.counts_rows
        data.update(exhausted=self.exhausted, finished=self.finished, fraction_done=self.fraction_done,
                    floor=self.floor, looked_for_new_rows=self.looked_for_new_rows,
                    ids_left_above=self.ids_left_above,
                    unit="rows" if rows else "ids", rows_total=self.rows_total if rows else None,
                    rows_total_is_estimate=self.rows_total_is_estimate if rows else None)
        return data


_MICROSECOND = timedelta(microseconds=1)


def cycle_record(batches: list[Batch], replanned: int, cursor_before: int, cursor_after: int, begin_at: datetime,
                 per_second: Number, end_at: datetime) -> str:
    """JSON of a cycle about to be claimed, without its tokens (the claim script adds the first one), for
    ``CycleClaim.from_record``. The first ``replanned`` batches are replays. Times are ISO strings and
    microsecond offsets from the begin, ids JSON integers: the round trip is exact."""
    return json.dumps({
        "cursor_before": cursor_before, "cursor_after": cursor_after,
        "begin_at": begin_at.isoformat(), "end_at": end_at.isoformat(),
        "per_second": per_second if isinstance(per_second, (int, float)) else str(per_second),
        "batches": [[b.begin_id, b.end_id, (b.run_at - begin_at) // _MICROSECOND, int(i < replanned)]
                    for i, b in enumerate(batches)],
    }, separators=(",", ":"))


def redis_text(value: bytes | str | None) -> str | None:
    """A value read from Redis as text (the client answers bytes unless it decodes); None stays None."""
    return value.decode() if isinstance(value, bytes) else value


def from_epoch(value: bytes | str | float | None) -> datetime | None:
    if value in (None, b"", ""):
        return None
    return datetime.fromtimestamp(float(value), tz=timezone.utc)


@dataclass(frozen=True, slots=True)
class ClaimSnapshot:
    """What a claim reads before planning; the commit re-checks the parts it relied on."""

    cursor: int
    #: The lowest id the claim may plan: the current pass's floor (``min_id`` in the first pass).
    min_id: int
    stopped: bool
    now: float
    due: dict[IdRange, str]
    planned_until: float | None
    recorded: str | None = None  # the cycle already claimed under the claim id, if any

    def begin(self, not_before: datetime, after_previous: bool, start_lead: float = 0.0) -> datetime:
        """When the cycle begins: ``not_before``, or the previous cycle's planned end if later and asked; a first
        cycle (none planned before) ``start_lead`` seconds after ``not_before``, the time its tasks take to be up.
        A late plan (the previous end passed) begins at once: a lead there would add a gap between cycles."""
        if after_previous and self.planned_until is not None and self.planned_until > not_before.timestamp():
            return datetime.fromtimestamp(self.planned_until, not_before.tzinfo)
        if self.planned_until is None and start_lead > 0:
            return not_before + timedelta(seconds=start_lead)
        return not_before
