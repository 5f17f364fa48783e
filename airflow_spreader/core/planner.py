"""The cycle planner: which id ranges run in the next cycle, and when.

Ranges walk the id space from the top down. The k-th batch of a cycle starts
``floor(k / per_second)`` whole seconds after the cycle begins, and a cycle holds every
``k`` with ``k / per_second < duration``; the cycle then lasts its whole slots (``cycle_length``),
so cycles tiled end to end never start more than ``per_second`` batches a second.
Rates and durations are turned into exact fractions (a float is read as the decimal it
prints as) so that 3 per second for 2 seconds is exactly six batches, where float arithmetic gives seven.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from airflow_spreader.core.keys import counted_ids, is_uuid_image, key_label

Number = int | float | Fraction | Decimal


_RANGE_TEXT = re.compile(r"(-?[0-9]+)-(-?[0-9]+)")


@dataclass(frozen=True, slots=True, order=True)
class IdRange:
    """An inclusive range of ids, ``begin_id <= end_id``."""

    begin_id: int
    end_id: int

    def __post_init__(self) -> None:
        if self.begin_id > self.end_id:
            raise ValueError(f"empty id range: begin_id={self.begin_id} > end_id={self.end_id}")

    @property
    def size(self) -> int:
        return self.end_id - self.begin_id + 1

    @property
    def counted(self) -> int:
        """The ids it adds to the tracker's id counters: its size, 0 for a UUID range (core/keys.py)."""
        return counted_ids(self.begin_id, self.end_id)

    def __str__(self) -> str:
        return f"{self.begin_id}-{self.end_id}"

    @property
    def label(self) -> str:
        """How it reads in the UI and messages: ``str()`` for integers, ``UUID..UUID`` for a UUID key."""
        return f"{key_label(self.begin_id)}..{key_label(self.end_id)}" if is_uuid_image(self.end_id) else str(self)

    @classmethod
    def parse(cls, text: str) -> IdRange:
        """Read back ``str(range)``; the inverse of ``__str__``."""
        match = _RANGE_TEXT.fullmatch(text)  # either end may be negative: "-149--50"
        if match is None:
            raise ValueError(f"not an id range: {text!r} (expected BEGIN-END, e.g. 1-100 or -149--50)")
        return cls(int(match[1]), int(match[2]))


@dataclass(frozen=True, slots=True)
class Batch:
    """One unit of work: the ids ``begin_id..end_id`` (inclusive), due at ``run_at``."""

    run_at: datetime
    begin_id: int
    end_id: int

    @property
    def id_range(self) -> IdRange:
        return IdRange(self.begin_id, self.end_id)

    @property
    def size(self) -> int:
        return self.end_id - self.begin_id + 1


def exact(value: Number) -> Fraction:
    """An exact fraction for a rate or a duration; floats are read as their decimal text."""
    if isinstance(value, bool):
        raise TypeError(f"expected a number, got {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {value!r}")
        return Fraction(repr(value))
    return Fraction(value)


def slot_count(per_second: Number, duration: Number) -> int:
    """How many batches one cycle holds: the number of ``k >= 0`` with ``k / per_second < duration``."""
    rate, length = _positive(per_second, "per_second"), _positive(duration, "duration")
    return math.ceil(rate * length)


def cycle_length(per_second: Number, duration: Number) -> Fraction:
    """Seconds one cycle lasts: its ``slot_count`` slots at exactly ``1 / per_second`` each.

    That is ``duration`` when ``per_second x duration`` is whole, otherwise up to one slot longer
    (0.1/s for 1 s: one slot, a 10-s cycle). Cycles tile at this length, so over any run of whole
    cycles the batches started are at most the rate times the time, where tiling at ``duration``
    ran 1 batch a second at 0.1/s.
    """
    return slot_count(per_second, duration) / _positive(per_second, "per_second")


def slot_offsets(per_second: Number, duration: Number) -> list[int]:
    """Whole seconds after the cycle start at which each batch slot is due."""
    rate = _positive(per_second, "per_second")
    num, den = rate.numerator, rate.denominator
    return [k_den // num for k_den in range(0, slot_count(per_second, duration) * den, den)]


def carve_ranges(next_id: int, batch_size: int, count: int, min_id: int = 1) -> list[IdRange]:
    """Up to ``count`` ranges of ``batch_size`` ids, descending from ``next_id``, clamped at ``min_id``."""
    _check_batch_size(batch_size)
    return [IdRange(begin, end) for begin, end in _bounds(next_id, batch_size, count, min_id)]


def schedule(ranges: Iterable[IdRange], begin_at: datetime, offsets: Sequence[int]) -> list[Batch]:
    """Pair ranges with the cycle's slots in order; extra ranges beyond the slots are dropped."""
    _check_aware(begin_at)
    return _timed(((r.begin_id, r.end_id) for r in ranges), begin_at, offsets)


def plan_cycle(
    next_id: int,
    batch_size: int,
    per_second: Number,
    duration: Number,
    begin_at: datetime,
    min_id: int = 1,
) -> list[Batch]:
    """The batches of one cycle, from ``next_id`` (the highest id not yet planned) down.

    Batch k ends at ``next_id - k * batch_size``, begins at ``max(min_id, end - batch_size + 1)``
    and runs at ``begin_at + floor(k / per_second)`` seconds. O(batches), independent of table size.
    The same result as ``schedule(carve_ranges(...), begin_at, offsets)``, without the ranges in between.
    """
    offsets = slot_offsets(per_second, duration)
    _check_batch_size(batch_size)
    _check_aware(begin_at)
    return _timed(_bounds(next_id, batch_size, len(offsets), min_id), begin_at, offsets)


def _bounds(next_id: int, batch_size: int, count: int, min_id: int) -> Iterator[tuple[int, int]]:
    """(begin, end) of up to ``count`` ranges descending from ``next_id``; only the last can be short."""
    if next_id < min_id or count <= 0:
        return
    needed = -(-(next_id - min_id + 1) // batch_size)
    for end in range(next_id, next_id - min(count, needed) * batch_size, -batch_size):
        yield max(min_id, end - batch_size + 1), end


def _timed(bounds: Iterable[tuple[int, int]], begin_at: datetime, offsets: Sequence[int]) -> list[Batch]:
    """Batches from bounds and slot offsets. Building the records is the whole cost of a cycle, so the
    slots due in the same second share one datetime (180 for the reference's 1,350 batches)."""
    batches: list[Batch] = []
    last, at = None, begin_at
    for (begin, end), offset in zip(bounds, offsets, strict=False):
        if offset != last:
            last, at = offset, begin_at + timedelta(seconds=offset)
        batches.append(Batch(at, begin, end))
    return batches


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def _check_aware(begin_at: datetime) -> None:
    if begin_at.tzinfo is None or begin_at.utcoffset() is None:
        raise ValueError(f"begin_at must be timezone-aware, got naive {begin_at.isoformat()}")


def _positive(value: Number, name: str) -> Fraction:
    result = exact(value)
    if result <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return result


#: A fixed rate, or the rate in force at a moment (picked for the cycle's begin, known only in the claim).
Rate = Number | Callable[[datetime], Number]


def rate_at(per_second: Rate, at: datetime) -> Number:
    """The rate of a cycle that begins at ``at``."""
    return per_second(at) if callable(per_second) else per_second


def cycle_end(begin_at: datetime, per_second: Number, duration: Number) -> datetime:
    """Where a cycle ends: its whole slots at ``1 / per_second``, rounded up to the microsecond."""
    length = cycle_length(per_second, duration)
    return begin_at + timedelta(microseconds=math.ceil(length * 1_000_000))
