"""Walk a small table inline, step by step, one transaction per step.

For backfills small enough that spreading them over Airflow cycles is not worth it (a port of the
reference gem's batch helper). Each step is its own transaction, so a failure keeps the steps
before it committed and the walk can resume from the failing step's ``lower`` with ``min_id=``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import sqlalchemy as sa

from airflow_spreader.sql.table import SourceTable, inspect_table

__all__ = ["StepWork", "WalkSummary", "walk_table"]

#: ``work(connection, lower, upper_exclusive)`` inside the step's transaction; returns rows changed or None.
StepWork: TypeAlias = Callable[[sa.Connection, int, int], Any]
#: A callable, or an SQL statement binding ``:lower`` (inclusive) and ``:upper`` (exclusive).
Work: TypeAlias = StepWork | str | sa.TextClause

PARAMS = ("lower", "upper")


@dataclass(frozen=True)
class WalkSummary:
    """What a walk did: ``lower``/``upper`` span all steps (upper exclusive), both None when none ran."""

    steps: int
    rows: int | None
    lower: int | None
    upper: int | None
    seconds: float


def walk_table(
    engine: sa.Engine,
    table: SourceTable,
    step: int,
    work: Work,
    *,
    min_id: int | None = None,
    max_id: int | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> WalkSummary:
    """Run ``work`` over the key in ascending half-open steps ``[lower, lower + step)``.

    Steps start at MIN(key) (or ``min_id``) and go on until one covers MAX(key) (or ``max_id``).
    The last step is a full one, except with an explicit ``max_id``, where it stops at
    ``max_id + 1`` so that no id above ``max_id`` is touched. The table and key are validated first
    (TableError), so a wrong name never runs any work. ``rows`` sums the statement's rowcount or the
    ints the callable returns; it is None when any step's count is unknown. ``on_step(lower, upper)``
    is called after each step commits.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise ValueError(f"step must be an int >= 1, got {step!r}")
    for name, value in (("min_id", min_id), ("max_id", max_id)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(f"{name} must be an int or None, got {value!r}")
    run_step = _step_runner(work)
    started = time.monotonic()
    bounds = inspect_table(engine, table)
    first = bounds.min_id if min_id is None else min_id
    last = bounds.max_id if max_id is None else max_id
    steps = 0
    total: int | None = 0
    lower = first
    if first is not None and last is not None:
        while lower is not None and lower <= last:
            upper = lower + step if max_id is None else min(lower + step, max_id + 1)
            with engine.begin() as conn:
                try:
                    count = run_step(conn, lower, upper)
                except Exception as error:
                    _add_note(error, f"walk_table({table.name!r}): step [{lower}, {upper}) failed and was rolled "
                                     f"back; steps below {lower} are committed (resume with min_id={lower})")
                    raise
            steps += 1
            total = None if total is None or count < 0 else total + count
            if on_step is not None:
                on_step(lower, upper)
            lower = upper
    return WalkSummary(steps=steps, rows=total, lower=first if steps else None, upper=lower if steps else None,
                       seconds=time.monotonic() - started)


def _step_runner(work: Work) -> Callable[[sa.Connection, int, int], int]:
    """One function per kind of work, returning the step's row count, or -1 when unknown."""
    if isinstance(work, (str, sa.TextClause)):
        statement = sa.text(work) if isinstance(work, str) else work
        missing = [name for name in PARAMS if name not in statement.compile().params]
        if missing:
            raise ValueError(f"the SQL of walk_table must bind {' and '.join(':' + p for p in PARAMS)}; "
                             f"missing {', '.join(':' + m for m in missing)} in: {statement}")

        def run_sql(conn: sa.Connection, lower: int, upper: int) -> int:
            result = conn.execute(statement, {"lower": lower, "upper": upper})
            return _count(result)

        return run_sql
    if callable(work):
        def run_callable(conn: sa.Connection, lower: int, upper: int) -> int:
            return _count(work(conn, lower, upper))

        return run_callable
    raise TypeError(f"work must be a callable work(connection, lower, upper) or an SQL string, got {work!r}")


def _count(value: Any) -> int:
    """Rows of one step: an int as is, a result's rowcount; -1 when unknown."""
    if isinstance(value, sa.CursorResult):
        value = value.rowcount
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return -1


def _add_note(error: BaseException, note: str) -> None:
    """Say where the walk stopped (Python >= 3.11 shows notes in the traceback)."""
    add_note = getattr(error, "add_note", None)
    if callable(add_note):
        add_note(note)
