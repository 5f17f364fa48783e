"""Poison-row isolation: how a range that failed its last try is cut, and what becomes of each piece.

One bad row makes its whole batch fail on every try, holding back every good row of the range. Cutting
the failed range in two and retrying each half as its own batch, recursively, isolates the bad rows as
single-key ranges (quarantined with their error) while every other row is done. The cut is arithmetic on
integer keys (id batching): :func:`halves` is the one place a key-walk mode replaces with a cut at a row.

The pieces of one failed range (its *root*) form a :class:`Family`. Pieces partition the root, so the ids
done in any node of the halving tree are its size minus those still in flight, parked, quarantined or
failed in it: no success needs recording. A piece ``max_split_depth`` levels below a node (its *anchor*) in
which nothing has succeeded is not a few bad rows but the work itself (or its database) failing every row
there: it is *parked*, not split, and once nothing in the anchor is left in flight the anchor is kept whole
as one failed range, as without isolation. A success inside the anchor meanwhile splits it on.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
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
    PARK = "park"  # max_split_depth levels without a success: wait for the verdict on its anchor

    def __str__(self) -> str:
        return self.value


def step_after_last_try(size: int, depth: int, max_split_depth: int, anchor_done: bool) -> PieceStep:
    """The fate of a failed piece of ``size`` keys, ``depth`` splits below its root; ``anchor_done``: some
    row succeeded in its ancestor ``max_split_depth`` levels up (``Family.anchor_of``)."""
    if max_split_depth == 0:
        return PieceStep.FAIL
    if size == 1:
        return PieceStep.QUARANTINE
    if depth < max_split_depth or anchor_done:
        return PieceStep.SPLIT
    return PieceStep.PARK


def ancestor(root: IdRange, piece: IdRange, depth: int) -> IdRange:
    """The range ``depth`` halvings below ``root`` on the way to ``piece`` (``root`` itself at depth 0)."""
    node = root
    for _ in range(depth):
        lower, upper = halves(node)
        node = lower if piece.end_id <= lower.end_id else upper
    return node


@dataclass(frozen=True, slots=True)
class Parked:
    """A piece too deep for no success: ``anchor`` is its ancestor ``max_split_depth`` levels up, the range
    kept whole as a failed range if nothing in it succeeds."""

    piece: IdRange
    depth: int
    anchor: IdRange


@dataclass(frozen=True, slots=True)
class Settlement:
    """What a family's state calls for: parked pieces to split on, anchors to keep whole as failed ranges,
    and whether the family is over."""

    unpark: tuple[Parked, ...] = ()
    merge: tuple[IdRange, ...] = ()
    close: bool = False


def _within(inner: IdRange, outer: IdRange) -> bool:
    return outer.begin_id <= inner.begin_id and inner.end_id <= outer.end_id


@dataclass(frozen=True, slots=True)
class Family:
    """The state of one failed root range being bisected. ``version`` changes at every write (a fence).

    Every range here and every piece in flight is a node of the halving tree below ``root``: two of them are
    nested or disjoint, and together with the pieces done they partition the root.
    """

    root: IdRange
    error: str
    attempts: int
    parked: tuple[Parked, ...] = ()
    quarantined: tuple[int, ...] = ()
    failed: tuple[IdRange, ...] = ()  # anchors kept whole as failed ranges (in the tracker's failed ranges)
    version: int = 0

    def done_within(self, node: IdRange, in_flight: Iterable[IdRange]) -> int:
        """Ids of ``node`` done so far: its size minus what is in flight, parked, quarantined or failed in it."""
        held = sum(r.size for r in in_flight if _within(r, node))
        held += sum(p.piece.size for p in self.parked if _within(p.piece, node))
        held += sum(r.size for r in self.failed if _within(r, node))
        held += sum(1 for key in self.quarantined if node.begin_id <= key <= node.end_id)
        return node.size - held

    def anchor_of(self, piece: IdRange, depth: int, max_split_depth: int) -> IdRange:
        """The ancestor whose success lets a piece at ``depth`` split on: ``max_split_depth`` levels up."""
        return ancestor(self.root, piece, max(0, depth - max_split_depth))

    def settlement(self, in_flight: Collection[IdRange]) -> Settlement:
        """Parked pieces whose anchor saw a success split on; an anchor with nothing in flight and no success
        is kept whole; a root where every row failed (quarantined down to single keys) is kept whole too."""
        unpark = tuple(p for p in self.parked if self.done_within(p.anchor, in_flight) > 0)
        waiting = [p for p in self.parked if p not in unpark]
        merge = sorted({p.anchor for p in waiting if not any(_within(r, p.anchor) for r in in_flight)})
        left = [p for p in waiting if p.anchor not in merge]
        close = not in_flight and not unpark and not left
        if close and not merge and self.root.size > 1 and self.done_within(self.root, ()) == 0:
            merge = [self.root]  # a root of one key is its own quarantine, never a failed range
        return Settlement(unpark, tuple(merge), close)

    def without(self, settled: Settlement) -> Family:
        """The family once ``settled`` is carried out."""
        def merged(inner: IdRange) -> bool:
            return any(_within(inner, anchor) for anchor in settled.merge)

        return self.with_changes(
            parked=tuple(p for p in self.parked if p not in settled.unpark and not merged(p.piece)),
            quarantined=tuple(k for k in self.quarantined if not merged(IdRange(k, k))),
            failed=(*self.failed, *settled.merge))

    def with_changes(self, **changes: Any) -> Family:
        return replace(self, version=self.version + 1, **changes)

    def to_json(self) -> str:
        """Ids as strings: a Lua script compares the text, and JSON numbers would round 64-bit ids."""
        return json.dumps({"root": str(self.root), "error": self.error, "attempts": self.attempts,
                           "parked": [[str(p.piece), p.depth, str(p.anchor)] for p in self.parked],
                           "quarantined": [str(key) for key in self.quarantined],
                           "failed": [str(r) for r in self.failed], "version": self.version},
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Family:
        data = json.loads(text)
        return cls(IdRange.parse(data["root"]), data["error"], int(data["attempts"]),
                   tuple(Parked(IdRange.parse(piece), int(depth), IdRange.parse(anchor))
                         for piece, depth, anchor in data["parked"]),
                   tuple(int(key) for key in data["quarantined"]),
                   tuple(IdRange.parse(r) for r in data.get("failed", [])), int(data["version"]))
