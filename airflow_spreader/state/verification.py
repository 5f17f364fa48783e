"""Verification in Redis: which rows are still pending once the walk is over, and planning them again.

"Every range done" is not "the table done": work can leave rows undone without failing. With a
``pending`` predicate the backfill counts, after the walk, the rows that still need the work, span by
span from the top down (a verification cursor beside the walk's), and calls itself finished only when
none remain. The spans with pending rows are kept (their lowest and highest pending key, and the count:
O(spans with pending rows), never O(rows)), so that ``redo`` plans exactly those ranges again. Each
redo opens a new *pass*: the done-ledger keys the pass's batches apart from the first run's (those
ranges are done there), and once they are done the verification counts those ranges again (not the
whole table: the first pass found the rest done).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_spreader.core.planner import IdRange, carve_ranges
from airflow_spreader.errors import SpreaderError
from airflow_spreader.state.tracker import Tracker, text

#: A redo of more batches than this is refused: so many pending rows mean the work is wrong, not unlucky.
MAX_REDO_BATCHES = 100_000


class RedoRefused(SpreaderError, RuntimeError):
    """``redo`` cannot plan the pending ranges now; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class PendingRange:
    """Keys ``begin_id..end_id`` hold ``rows`` rows still pending (the lowest and highest pending key of a span)."""

    begin_id: int
    end_id: int
    rows: int

    @property
    def id_range(self) -> IdRange:
        return IdRange(self.begin_id, self.end_id)

    def to_dict(self) -> dict[str, int]:
        return {"begin_id": self.begin_id, "end_id": self.end_id, "rows": self.rows}


@dataclass(frozen=True, slots=True)
class VerificationState:
    """Where the verification of one backfill stands."""

    wanted: bool  # the DAG has a ``pending`` predicate
    cursor: int | None  # the highest key not yet counted; None before the first count of this pass
    complete: bool  # every span of this pass is counted
    pending_rows: int
    pending: tuple[PendingRange, ...]  # highest first
    rounds: int  # counting rounds (cycles) of this pass
    passes: int  # redos so far
    next_for: int | None  # the round whose next cycle a chain task started
    announced: bool  # a chain task has announced the finish (the Asset event)
    #: After a redo, the ranges this pass counts (highest first); empty in the first pass (the whole key range).
    recheck: tuple[IdRange, ...] = ()

    @property
    def verified(self) -> bool:
        """Counted to the bottom and nothing pending."""
        return self.complete and self.pending_rows == 0

    @property
    def incomplete(self) -> bool:
        return self.complete and self.pending_rows > 0

    def describe(self, limit: int = 10) -> str:
        """``N rows pending in these ranges: a-b (n), ...`` for messages."""
        shown = ", ".join(f"{p.begin_id}-{p.end_id} ({p.rows})" for p in self.pending[:limit])
        more = f" and {len(self.pending) - limit} more" if len(self.pending) > limit else ""
        return f"{self.pending_rows} rows pending in these ranges: {shown}{more}"

    def to_dict(self) -> dict[str, Any]:
        state = "verified" if self.verified else "incomplete" if self.incomplete else "counting" \
            if self.cursor is not None else "waiting"
        return {"wanted": self.wanted, "state": state, "cursor": self.cursor, "complete": self.complete,
                "pending_rows": self.pending_rows, "pending_ranges": [p.to_dict() for p in self.pending],
                "rounds": self.rounds, "passes": self.passes}


class Verification:
    """The verification state of ``tracker``'s backfill, under its keys ``verify`` and ``pending``."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.keys = tracker.keys
        self.redis = tracker.redis

    def want(self) -> None:
        """The DAG verifies (it has a ``pending`` predicate): status shows "verifying" rather than "done"."""
        self.redis.hset(self.keys.verify, "wanted", "1")

    def state(self) -> VerificationState:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(self.keys.verify)
        pipe.hgetall(self.keys.pending)
        pipe.hkeys(self.keys.recheck)
        raw, pending_raw, recheck_raw = pipe.execute()
        meta = {text(k): text(v) for k, v in raw.items()}
        pending = []
        for key, rows in pending_raw.items():
            span = IdRange.parse(text(key))
            pending.append(PendingRange(span.begin_id, span.end_id, int(rows)))

        def number(field: str) -> int | None:
            return int(meta[field]) if field in meta else None

        return VerificationState(
            wanted=meta.get("wanted") == "1", cursor=number("cursor"), complete=meta.get("complete") == "1",
            pending_rows=number("pending_rows") or 0, rounds=number("rounds") or 0, passes=number("passes") or 0,
            pending=tuple(sorted(pending, key=lambda p: p.end_id, reverse=True)),
            next_for=number("next_for"), announced=meta.get("announced") == "1",
            recheck=tuple(sorted((IdRange.parse(text(key)) for key in recheck_raw), key=lambda r: r.end_id,
                                 reverse=True)))

    def begin(self, max_id: int) -> None:
        """Start counting this pass from ``max_id`` down (kept if already started)."""
        self.redis.hsetnx(self.keys.verify, "cursor", str(int(max_id)))

    def record(self, expected_cursor: int, new_cursor: int, complete: bool, found: list[PendingRange]) -> bool:
        """Record one round's counts if nobody counted these spans meanwhile (``complete``: nothing is left to
        count below ``new_cursor``); True when recorded."""
        args: list[Any] = [str(expected_cursor), str(new_cursor), "1" if complete else "0",
                           str(sum(p.rows for p in found)), self.tracker.clock()]
        for span in found:
            args += [str(span.id_range), str(span.rows)]
        return bool(self.tracker._run("verify_record", [self.keys.verify, self.keys.pending], *args))

    def start_next(self, rounds: int) -> bool:
        """May this chain task start the next counting cycle? True for the first asking after ``rounds``."""
        return bool(self.tracker._run("verify_next", [self.keys.verify], str(rounds)))

    def announce(self) -> bool:
        """True for the first caller after the backfill finished (verified): it emits the Asset event."""
        return bool(self.redis.hsetnx(self.keys.verify, "announced", "1"))

    def redo(self, batch_size: int) -> list[IdRange]:
        """Plan every pending range again, cut into ``batch_size`` batches, first thing at the next cycle.

        Raises RedoRefused while the verification is not over, when nothing is pending, or while ranges
        are still in flight. Returns the batches planned."""
        state = self.state()
        if not state.complete:
            raise RedoRefused(f"backfill {self.tracker.name!r} is not verified yet (cursor {state.cursor}); "
                              "redo-pending plans the ranges the finished verification found")
        if not state.pending:
            raise RedoRefused(f"backfill {self.tracker.name!r}: no rows pending, nothing to redo")
        needed = sum(-(-span.id_range.size // batch_size) for span in state.pending)
        if needed > MAX_REDO_BATCHES:
            raise RedoRefused(f"backfill {self.tracker.name!r}: redoing {state.pending_rows} pending rows needs "
                              f"{needed} batches of {batch_size} ids, more than {MAX_REDO_BATCHES}; fix the "
                              "work and reset the backfill instead")
        pieces = [piece for span in state.pending
                  for piece in carve_ranges(span.end_id, batch_size, needed, span.begin_id)]
        k = self.keys
        answer = int(self.tracker._run("verify_redo", [k.verify, k.pending, k.inflight, k.leases, k.stats, k.recheck],
                                       str(state.rounds), str(-sum(p.size for p in pieces)),
                                       *[str(p) for p in pieces]))
        if answer == -2:
            raise RedoRefused(f"backfill {self.tracker.name!r} was counted again meanwhile: try again")
        if answer == -3:
            raise RedoRefused(f"backfill {self.tracker.name!r} has ranges in flight: let them finish first")
        if answer < 0:
            raise RedoRefused(f"backfill {self.tracker.name!r}: nothing to redo (answer {answer})")
        return pieces


def ledger_generation(tracker: Tracker) -> str | None:
    """The done-ledger's generation for the batches of now: the tracker's, with the redo pass after it.

    A redo runs ranges that the ledger shows done in the first pass: each pass keys its own rows."""
    pipe = tracker.redis.pipeline(transaction=True)
    pipe.hget(tracker.keys.meta, "generation")
    pipe.hget(tracker.keys.verify, "passes")
    generation, passes = pipe.execute()
    base = text(generation) if generation is not None else tracker.generation()
    if base is None or passes is None or int(passes) == 0:
        return base
    return f"{base}.redo{int(passes)}"
