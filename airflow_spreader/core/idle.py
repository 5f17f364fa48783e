"""Idle time: spans when the backfill could not run (held by the governor, stopped, the DAG paused).

The ETA judges the pace over a recent window; a window that includes a stop or a hold is not slow, it is
idle, and that time is set apart (``idle_in``) instead of being counted as slowness. Spans of different
kinds may overlap (a hold during a pause): they are merged before they are subtracted. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

IdleKind = Literal["held", "stopped", "paused"]
IDLE_KINDS: tuple[IdleKind, ...] = ("held", "stopped", "paused")


@dataclass(frozen=True, slots=True)
class IdleSpan:
    """One idle span, epoch seconds ``begin``..``end``."""

    kind: IdleKind
    begin: float
    end: float

    def clipped(self, begin: float, end: float) -> IdleSpan | None:
        """The part within ``begin``..``end``, or None."""
        low, high = max(self.begin, begin), min(self.end, end)
        return IdleSpan(self.kind, low, high) if high > low else None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "begin": self.begin, "end": self.end}


def merged(spans: Iterable[IdleSpan]) -> list[tuple[float, float]]:
    """The union of the spans as disjoint (begin, end) pairs, in order."""
    union: list[tuple[float, float]] = []
    for span in sorted(spans, key=lambda s: s.begin):
        if union and span.begin <= union[-1][1]:
            union[-1] = (union[-1][0], max(union[-1][1], span.end))
        elif span.end > span.begin:
            union.append((span.begin, span.end))
    return union


def idle_in(spans: Iterable[IdleSpan], begin: float, end: float) -> list[tuple[float, float]]:
    """The idle time within ``begin``..``end``: disjoint (begin, end) pairs."""
    return merged(c for s in spans if (c := s.clipped(begin, end)) is not None)


def seconds_by_kind(spans: Iterable[IdleSpan], begin: float, end: float) -> dict[str, float]:
    """Seconds of each kind within ``begin``..``end`` (a kind's own spans merged; kinds may overlap)."""
    clipped = [c for s in spans if (c := s.clipped(begin, end)) is not None]
    return {kind: sum(b - a for a, b in merged(s for s in clipped if s.kind == kind)) for kind in IDLE_KINDS}
