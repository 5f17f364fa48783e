"""Poison-row isolation: how a range that failed its last try is cut, and what becomes of each piece.

One bad row makes its whole batch fail on every try, holding back every good row of the range. Cutting
the failed range in two and retrying each half as its own batch, recursively, isolates the bad rows as
single-key ranges (quarantined with their error) while every other row is done. The cut is arithmetic on
integer keys (id batching): :func:`halves` is the one place a key-walk mode replaces with a cut at a row.

The pieces of one failed range (its *root*) form a :class:`Family`. Pieces partition the root, so the ids
done so far are the root's minus those still in flight, parked or quarantined: no event needs recording.
A family in which no piece succeeded after ``max_split_depth`` levels is not a few bad rows but the work
itself (or its database): its pieces are *parked*, not split, and once none is left in flight the root is
kept whole as one failed range, as without isolation. A success anywhere in the family splits them on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from airflow_spreader.core.planner import IdRange

#: Levels of splitting without a single success before a family's root is kept whole as a failed range.
DEFAULT_MAX_SPLIT_DEPTH = 3
#: 2**30 keys per range at most need 30 levels; a deeper limit could only split a hopeless range further.
MAX_SPLIT_DEPTH = 30


def check_max_split_depth(value: object) -> int:
    """``max_split_depth`` as given to the DAG factory; one clear error otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SPLIT_DEPTH:
        raise ValueError(f"max_split_depth must be an integer from 0 (no isolation: a failed range stays whole) "
                         f"to {MAX_SPLIT_DEPTH}, got {value!r}")
    return value


def halves(id_range: IdRange) -> tuple[IdRange, IdRange]:
    """The lower and upper half of a range of at least two keys (the lower one is the larger by at most one)."""
    if id_range.size < 2:
        raise ValueError(f"a range of one key cannot be split: {id_range}")
    middle = id_range.begin_id + (id_range.size - 1) // 2
    return IdRange(id_range.begin_id, middle), IdRange(middle + 1, id_range.end_id)


class PieceStep(str, Enum):
    """What becomes of a piece that failed its last try."""

    FAIL = "fail"  # isolation is off: a failed range, as without it
    QUARANTINE = "quarantine"  # one key: the poison row itself
    SPLIT = "split"  # two halves, each re-queued as its own batch
    PARK = "park"  # too deep with no success in the family: wait for the family's verdict

    def __str__(self) -> str:
        return self.value


def step_after_last_try(size: int, depth: int, max_split_depth: int, family_done: bool) -> PieceStep:
    """The fate of a failed piece of ``size`` keys, ``depth`` splits below its root."""
    if max_split_depth == 0:
        return PieceStep.FAIL
    if size == 1:
        return PieceStep.QUARANTINE
    if depth < max_split_depth or family_done:
        return PieceStep.SPLIT
    return PieceStep.PARK


class Verdict(str, Enum):
    """What a family's state calls for once a piece settled."""

    OPEN = "open"  # pieces still in flight, nothing parked that could move: nothing to do
    UNPARK = "unpark"  # something succeeded: split the parked pieces on
    MERGE = "merge"  # nothing in flight, no row of the root succeeded: keep the root whole as a failed range
    CLOSE = "close"  # nothing in flight, nothing parked: the family is over (its quarantined keys stay)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Family:
    """The state of one failed root range being bisected. ``version`` changes at every write (a fence)."""

    root: IdRange
    error: str
    attempts: int
    parked: tuple[tuple[IdRange, int], ...] = ()  # (piece, depth)
    quarantined: tuple[int, ...] = ()
    version: int = 0

    def done_ids(self, in_flight_ids: int) -> int:
        """Ids of the root done so far, given how many are in flight in its pieces."""
        parked = sum(piece.size for piece, _ in self.parked)
        return self.root.size - in_flight_ids - parked - len(self.quarantined)

    def verdict(self, in_flight_pieces: int, in_flight_ids: int) -> Verdict:
        done = self.done_ids(in_flight_ids) > 0
        if self.parked and done:
            return Verdict.UNPARK
        if in_flight_pieces:
            return Verdict.OPEN
        if not done and self.root.size > 1:  # a root of one key is its own quarantine, never a failed range
            return Verdict.MERGE
        return Verdict.CLOSE

    def with_changes(self, **changes: Any) -> Family:
        return replace(self, version=self.version + 1, **changes)

    def to_json(self) -> str:
        """Ids as strings: a Lua script compares the text, and JSON numbers would round 64-bit ids."""
        return json.dumps({"root": str(self.root), "error": self.error, "attempts": self.attempts,
                           "parked": [[str(piece), depth] for piece, depth in self.parked],
                           "quarantined": [str(key) for key in self.quarantined], "version": self.version},
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Family:
        data = json.loads(text)
        return cls(IdRange.parse(data["root"]), data["error"], int(data["attempts"]),
                   tuple((IdRange.parse(piece), int(depth)) for piece, depth in data["parked"]),
                   tuple(int(key) for key in data["quarantined"]), int(data["version"]))
