"""Poison rows isolated: a range that failed its last try is bisected until its bad rows stand alone.

Instead of keeping the range as a failed range (its good rows undone with the bad ones), it is split in two
(:func:`airflow_spreader.core.split.halves`) and each half is put back in flight, unowned and due at once:
later cycles plan it first, at the rate, in the pool, like a range handed back. Recursively, the failing rows
end as single-key ranges, *quarantined* with their error; every other row is done once (the done-ledger
still applies to each piece). The pieces of one failed range form a family (core.split.Family) kept in the
hash ``families``; the rules on depth and on ranges where every row fails live in core.split.

Every step is planned in Python from a snapshot and committed by ``isolate.lua`` only if the family's record
and the family's pieces in flight are still as read (else read again): two batches of one family settling
at once never both act on the same state. A step is taken when a piece fails its last try (:meth:`fail`),
when a piece of a family with parked pieces is done (:meth:`after_done`), and by :meth:`settle` (the chain
calls it before deciding, which also mends a family whose last batch died between its commit and its step).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_spreader.core.keys import key_label
from airflow_spreader.core.planner import IdRange
from airflow_spreader.core.split import (
    DEFAULT_MAX_SPLIT_DEPTH,
    Family,
    Parked,
    PieceStep,
    check_max_split_depth,
    halves,
    step_after_last_try,
)
from airflow_spreader.state.records import ClaimedBatch, from_epoch
from airflow_spreader.state.text_keys import key_labels
from airflow_spreader.state.tracker import Tracker, TrackerError, text

MAX_STEP_RETRIES = 100
#: Up to this many quarantined keys, a listing reads them all and keeps the lowest.
SCAN_ABOVE = 10_000


@dataclass(frozen=True, slots=True)
class QuarantinedKey:
    """One poison row: its key, the error its last try raised, and the failed range it was isolated from."""

    key: int
    error: str
    attempts: int
    quarantined_at: datetime | None
    root: IdRange | None
    #: How the key reads (a text key's text); empty: ``core.keys.key_label``.
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label or key_label(self.key), "error": self.error,
                "attempts": self.attempts,
                "quarantined_at": self.quarantined_at.isoformat() if self.quarantined_at else None,
                "root": None if self.root is None else str(self.root)}


@dataclass
class _Step:
    """The writes of one step, for isolate.lua: its checks and operations."""

    family: Family
    expected: str  # the family's JSON as read ('' when new)
    checks: list[tuple[str, str]]
    ops: list[tuple[str, str, str]]
    new_family: str = ""

    def queue_halves(self, piece: IdRange, depth: int) -> None:
        for half in halves(piece):
            self.ops.append(("queue", str(half), json.dumps(
                {"token": 0, "lease": 0, "attempts": 0, "run_at": 0, "error": self.family.error,
                 "root": str(self.family.root), "depth": depth + 1})))


class Quarantine:
    """The bisection of failed ranges and the quarantined keys of one backfill (``tracker``'s)."""

    def __init__(self, tracker: Tracker, max_split_depth: int = DEFAULT_MAX_SPLIT_DEPTH) -> None:
        self.tracker = tracker
        self.keys = tracker.keys
        self.max_split_depth = check_max_split_depth(max_split_depth)

    # -- batch side ---------------------------------------------------------------------

    def fail(self, batch: ClaimedBatch, error: str, *, final: bool, attempt: str = "") -> str:
        """Record a failed attempt; on the last one, isolate: ``split``, ``park``, ``quarantine`` (or ``fail``,
        as ``Tracker.fail``, with ``max_split_depth`` 0), or ``gone``/``superseded`` (not this batch's)."""
        if not final or self.max_split_depth == 0:
            return self.tracker.fail(batch, error, final=final, attempt=attempt)
        state = self.tracker.fail(batch, error, final=False, attempt=attempt)  # counts the attempt, keeps the error
        if state != "retry":
            return state
        for attempt_no in range(MAX_STEP_RETRIES):
            outcome = self._isolate(batch)
            if outcome != "stale":
                return outcome
            time.sleep(random.uniform(0, 0.002 * min(attempt_no + 1, 20)))
        raise TrackerError(f"backfill {self.tracker.name!r}: could not record the failure of {batch.id_range} "
                           f"after {MAX_STEP_RETRIES} attempts (too many batches settling at once)")

    def after_done(self, batch: ClaimedBatch) -> None:
        """A batch is done: if it was a piece of a family, the family's parked pieces are split on now, or the
        family is over (one HKEYS when no range is being bisected)."""
        for root_text in self.tracker.redis.hkeys(self.keys.families):
            root = IdRange.parse(text(root_text))
            if root.begin_id <= batch.begin_id and batch.end_id <= root.end_id:
                self._settle_family(root)

    def settle(self) -> int:
        """Take the step every family's state calls for (none, mostly); how many families moved."""
        return sum(self._settle_family(IdRange.parse(text(root)))
                   for root in self.tracker.redis.hkeys(self.keys.families))

    # -- reading ------------------------------------------------------------------------

    def count(self) -> int:
        return int(self.tracker.redis.hlen(self.keys.quarantine))

    def quarantined(self, limit: int | None = None) -> list[QuarantinedKey]:
        """The quarantined keys in key order: the ``limit`` lowest ones, or, beyond ``SCAN_ABOVE`` keys, the
        first ``limit`` an HSCAN finds (never the whole of a large hash for a status line)."""
        client, name = self.tracker.redis, self.keys.quarantine
        found: dict[Any, Any] = {}
        if limit is None or client.hlen(name) <= SCAN_ABOVE:
            found = client.hgetall(name)
        else:
            for field, value in client.hscan_iter(name, count=max(limit, 100)):
                found[field] = value
                if len(found) >= limit:
                    break
        keys = []
        labels = key_labels(self.tracker)
        for field, value in found.items():
            info = json.loads(value)
            root = info.get("root")
            key = int(text(field))
            keys.append(QuarantinedKey(key, info["error"], int(info["attempts"]),
                                       from_epoch(info.get("quarantined_at")),
                                       IdRange.parse(root) if root else None, labels.key(key)))
        return sorted(keys, key=lambda q: q.key)[:limit]

    def families(self) -> list[Family]:
        """The failed ranges being bisected now."""
        return [Family.from_json(text(v)) for v in self.tracker.redis.hvals(self.keys.families)]

    # -- steps --------------------------------------------------------------------------

    def _read(self, root: IdRange) -> tuple[str, dict[str, str]]:
        """The family's JSON ('' if none) and its pieces in flight (range -> entry JSON), read together."""
        pipe = self.tracker.redis.pipeline(transaction=True)
        pipe.hget(self.keys.families, str(root))
        pipe.hgetall(self.keys.inflight)
        family, in_flight = pipe.execute()
        pieces = {}
        for key, value in in_flight.items():
            entry = text(value)
            if json.loads(entry).get("root") == str(root):
                pieces[text(key)] = entry
        return ("" if family is None else text(family)), pieces

    def _isolate(self, batch: ClaimedBatch) -> str:
        """One try at the step for a piece that failed its last try."""
        raw = self.tracker.redis.hget(self.keys.inflight, str(batch.id_range))
        if raw is None:
            return "gone"
        entry = json.loads(raw)
        if str(entry.get("token")) != str(batch.token):
            return "superseded"
        root = IdRange.parse(entry["root"]) if entry.get("root") else batch.id_range
        depth = int(entry.get("depth") or 0)
        expected, pieces = self._read(root)
        if pieces.setdefault(str(batch.id_range), text(raw)) != text(raw):
            return "stale"
        family = Family.from_json(expected) if expected else Family(root, entry.get("error") or "",
                                                                    int(entry.get("attempts") or 0))
        step = _Step(family, expected, list(pieces.items()), [("drop", str(batch.id_range), "")])
        in_flight = {IdRange.parse(r) for r in pieces}
        anchor = family.anchor_of(batch.id_range, depth, self.max_split_depth)
        done = family.done_within(anchor, in_flight) > 0
        in_flight.discard(batch.id_range)
        action = step_after_last_try(batch.size, depth, self.max_split_depth, done)
        if action is PieceStep.SPLIT:
            step.family = family.with_changes()
            step.queue_halves(batch.id_range, depth)
            in_flight.update(halves(batch.id_range))
            step.ops.append(("count", "batches_split", "1"))
        elif action is PieceStep.QUARANTINE:
            step.family = family.with_changes(quarantined=(*family.quarantined, batch.begin_id))
            step.ops.append(("quarantine", str(batch.begin_id), json.dumps(
                {"error": entry.get("error") or "", "attempts": int(entry.get("attempts") or 0),
                 "quarantined_at": self.tracker.clock(), "root": str(root)})))
        else:  # PARK (FAIL is Tracker.fail's, with isolation off)
            step.family = family.with_changes(parked=(*family.parked, Parked(batch.id_range, depth, anchor)))
        self._conclude(step, in_flight)
        return str(action) if self._commit(step) == "ok" else "stale"

    def _settle_family(self, root: IdRange) -> int:
        """The step a family's state calls for, outside a failure (1 if taken, 0 if none, retried if stale)."""
        for _ in range(MAX_STEP_RETRIES):
            expected, pieces = self._read(root)
            if not expected:
                return 0
            step = _Step(Family.from_json(expected), expected, list(pieces.items()), [])
            if not self._conclude(step, {IdRange.parse(r) for r in pieces}):
                return 0
            if self._commit(step) != "stale":
                return 1
        raise TrackerError(f"backfill {self.tracker.name!r}: could not settle the bisection of {root} after "
                           f"{MAX_STEP_RETRIES} attempts")

    def _conclude(self, step: _Step, in_flight: set[IdRange]) -> bool:
        """Add what the family's settlement calls for to ``step``; False when there is nothing to write."""
        family = step.family
        settled = family.settlement(in_flight)
        for parked in settled.unpark:
            step.queue_halves(parked.piece, parked.depth)
            step.ops.append(("count", "batches_split", "1"))
        for anchor in settled.merge:  # nothing in it succeeded: the work, not a few rows, is at fault
            step.ops += [("release", str(key), "") for key in family.quarantined
                         if anchor.begin_id <= key <= anchor.end_id]
            step.ops += [("fail", str(anchor), json.dumps({"error": family.error, "attempts": family.attempts,
                                                            "failed_at": self.tracker.clock()})),
                         ("count", "batches_failed", "1"), ("count", "ids_failed", str(anchor.counted))]
        if settled.unpark or settled.merge:
            family = family.without(settled)
        step.new_family = "" if settled.close else family.to_json()
        return step.ops != [] or step.new_family != step.expected

    def _commit(self, step: _Step) -> str:
        args: list[Any] = [str(step.family.root), step.expected, step.new_family, self.tracker.clock(),
                           len(step.checks)]
        for range_text, entry in step.checks:
            args += [range_text, entry]
        for op in step.ops:
            args += list(op)
        return str(self.tracker.run_script("isolate", self.keys.isolate_script_keys, *args))
