"""How a cycle's new ranges are cut from the cursor: by id arithmetic, or around the tops of real rows.

The tracker asks a ``Carve`` for up to ``count`` ranges below the cursor and commits them as it always
did: inclusive integer ranges, descending, contiguous (each begins just above the next one's end), so the
cursor after the cycle is the last range's ``begin_id - 1`` and no id between two ranges is left out.
``"ids"`` batching carves ``batch_size`` ids a range (no read); ``"rows"`` batching reads the key of every
``batch_size``-th row from the index (sql/boundaries.py) and turns those tops into ranges here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from airflow_spreader.core.planner import IdRange, carve_ranges

#: ``carve(cursor, min_id, count)`` -> up to ``count`` contiguous ranges descending from ``cursor``
#: (inclusive) and never below ``min_id``; an empty list only when ``cursor < min_id`` or ``count <= 0``.
Carve = Callable[[int, int, int], list[IdRange]]


def id_carver(batch_size: int) -> Carve:
    """``"ids"`` batching: ``batch_size`` consecutive ids a range (today's arithmetic, no read)."""
    def carve(cursor: int, min_id: int, count: int) -> list[IdRange]:
        return carve_ranges(cursor, batch_size, count, min_id)

    return carve


def ranges_from_tops(cursor: int, min_id: int, tops: Sequence[int], count: int) -> list[IdRange]:
    """Ranges from the keys of rows 1, b+1, 2b+1, ... (descending) at or below ``cursor``, read up to row
    ``count x b + 1``: each range holds the rows from one top down to just above the next top.

    The first range ends at ``cursor`` (not at the first top), so ids between ranges are never left out:
    rows inserted there later are still visited. With ``count + 1`` tops the walk goes on at the last
    top (the next cursor); with fewer, the rows run out and the last range reaches down to ``min_id``,
    which finishes the backfill. No rows at all below the cursor gives one range down to ``min_id``
    (one empty batch, so that the walk ends). Repeated tops (a key that is not unique) are merged, so a
    range may then hold more than ``b`` rows, never fewer ranges than needed to go on.
    """
    if cursor < min_id or count <= 0:
        return []
    distinct: list[int] = []
    for top in tops:
        if not min_id <= top <= cursor:
            raise ValueError(f"top {top} lies outside {min_id}..{cursor}")
        if distinct and top >= distinct[-1]:
            if top > distinct[-1]:
                raise ValueError(f"tops must descend, got {top} after {distinct[-1]}")
            continue
        distinct.append(top)
    if not distinct:
        return [IdRange(min_id, cursor)]
    if len(tops) <= count:  # the rows ran out within this cycle: the last range reaches down to min_id
        ends, begins = [cursor, *distinct[1:]], [*(top + 1 for top in distinct[1:]), min_id]
    elif len(distinct) == 1:  # one key value fills the whole read (not unique): take all its rows at once
        ends, begins = [cursor], [distinct[0]]
    else:  # the last top read starts the next cycle (the new cursor)
        ends, begins = [cursor, *distinct[1:-1]], [top + 1 for top in distinct[1:]]
    return [IdRange(begin, end) for begin, end in zip(begins, ends, strict=True)]


#: In ``text_ranges``' mints: the handle stands for "below every key" (a range above it has no lower bound).
BELOW_ALL = None


def text_ranges(cursor: int, min_id: int, read: int, tops: int, count: int,
                batch_size: int) -> tuple[list[IdRange], dict[int, int | None]]:
    """A text key's ranges, whose bounds are handles (core/keys.py), from a read of ``read`` rows at or
    below the cursor's text with ``tops`` tops (rows 1, b+1, ...): the row numbered ``n`` gets handle
    ``cursor - n + 1``, so a range's size is the rows it held when planned and bisection's arithmetic
    midpoints are rows (a midpoint's text is read when its piece runs, state/text_keys.py).

    Returns the ranges and what to mint: handle -> index of the top whose text it holds, or BELOW_ALL.
    With ``count + 1`` tops the last top is the next cursor. When the rows run out, the handle below the
    last row read stands for "below every key" (so rows inserted under the table's first MIN are visited
    too), and one empty range from it down to ``min_id`` ends the walk (in the next cycle if this one is full).
    """
    if cursor < min_id or count <= 0:
        return [], {}
    if read == 0:
        return [IdRange(min_id, cursor)], {}
    ends = [cursor - j * batch_size for j in range(tops)]
    if read > count * batch_size:  # more rows below: the last top read starts the next cycle
        ranges = [IdRange(end - batch_size + 1, end) for end in ends[:-1]]
        return ranges, {end: j for j, end in enumerate(ends) if j}
    bottom = cursor - read  # one below the last row read
    ranges = [IdRange(end - batch_size + 1, end) for end in ends[:-1]] + [IdRange(bottom + 1, ends[-1])]
    mints: dict[int, int | None] = {end: j for j, end in enumerate(ends) if j}
    mints[bottom] = BELOW_ALL
    if len(ranges) < count and bottom >= min_id:
        ranges.append(IdRange(min_id, bottom))
    return ranges, mints
