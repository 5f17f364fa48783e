"""Text keys in ``"rows"`` batching: the few statements that read their order from the database.

Text that is not a UUID orders by the column's collation (PostgreSQL ICU or libc, MariaDB's
case-insensitive defaults, SQLite's BINARY or NOCASE), which Python must not try to imitate: every
comparison here is made by the database, on the key's own column, with the texts as bound parameters.
A range of a text key is ``low < key <= high`` (``low`` None: no lower bound), the two bounds being keys
once read from the table (state/text_keys.py keeps them): rows inserted between two bounds later still
fall in exactly one range, and a key that is not unique falls whole into one range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from airflow_spreader.sql.table import SourceTable, TableError, sa_table

__all__ = ["TextRows", "key_at", "lowest_key", "read_text_rows", "text_range_clause", "text_statement"]


@dataclass(frozen=True)
class TextRows:
    """What one planning read found at or below the cursor's text: ``tops`` are the keys of rows 1, b+1,
    2b+1, ... (descending), ``read`` how many rows the read walked (at most ``count x b + 1``)."""

    tops: list[str]
    read: int


def text_range_clause(table: SourceTable, low: str | None, high: str) -> sa.ColumnElement[bool]:
    """``low < key <= high`` in the column's collation (no lower bound when ``low`` is None)."""
    key = sa_table(table).c[table.key]
    return key <= high if low is None else sa.and_(key > low, key <= high)


def read_text_rows(bind: sa.Engine | sa.Connection, table: SourceTable, *, below: str, batch_size: int,
                   count: int) -> TextRows:
    """The tops of the next ``count`` batches of ``batch_size`` rows at or below ``below`` and how many rows
    the walk read (the index only: ``ORDER BY key DESC LIMIT count x b + 1``): one statement, and a count
    of the rows left when they run out (once, at the bottom of the walk)."""
    tops = [_text(table, k) for k, in _all(bind, text_statement(table, below=below, batch_size=batch_size,
                                                                  count=count))]
    if len(tops) > count:  # the walk read its limit: more rows below
        return TextRows(tops, count * batch_size + 1)
    walked = _walked(table, below, count * batch_size + 1)  # the bottom: how many rows were left (once)
    return TextRows(tops, int(_all(bind, sa.select(sa.func.count()).select_from(walked))[0][0]))


def text_statement(table: SourceTable, *, below: str, batch_size: int, count: int) -> sa.Select[Any]:
    """``read_text_rows``' statement: the keys of rows 1, b+1, ... of the walk, in its order (the window
    runs on the index's order: no sort; a ``COUNT(*) OVER ()`` here would hold the whole walk)."""
    if batch_size < 1 or count < 1:
        raise ValueError(f"batch_size and count must be >= 1, got {batch_size} and {count}")
    walked = _walked(table, below, count * batch_size + 1)
    numbered = sa.select(walked.c.k, sa.func.row_number().over(order_by=walked.c.k.desc()).label("n")).subquery(
        "numbered")
    return sa.select(numbered.c.k).where((numbered.c.n - 1) % batch_size == 0).order_by(numbered.c.n)


def _walked(table: SourceTable, below: str, limit: int) -> sa.Subquery:
    key = sa_table(table).c[table.key]
    return sa.select(key.label("k")).where(key <= below).order_by(key.desc()).limit(limit).subquery("walked")


def key_at(bind: sa.Engine | sa.Connection, table: SourceTable, *, low: str | None, high: str,
           offset: int) -> str | None:
    """The key ``offset`` rows below ``high`` (0: the highest key <= ``high``) and above ``low``; None when
    the range has no row that far down. Reads at most ``offset + 1`` index entries."""
    key = sa_table(table).c[table.key]
    statement = (sa.select(key).where(text_range_clause(table, low, high)).order_by(key.desc())
                 .limit(1).offset(offset))
    rows = _all(bind, statement)
    return _text(table, rows[0][0]) if rows else None


def lowest_key(bind: sa.Engine | sa.Connection, table: SourceTable, *, low: str | None, high: str) -> str | None:
    """The smallest key of ``low < key <= high`` (one index lookup), None when the range is empty: the
    inclusive ``begin_id`` the work receives."""
    key = sa_table(table).c[table.key]
    rows = _all(bind, sa.select(key).where(text_range_clause(table, low, high)).order_by(key).limit(1))
    return _text(table, rows[0][0]) if rows else None


def _all(bind: sa.Engine | sa.Connection, statement: sa.Select[Any]) -> list[Any]:
    if isinstance(bind, sa.Connection):
        return list(bind.execute(statement).all())
    with bind.connect() as conn:
        return list(conn.execute(statement).all())


def _text(table: SourceTable, value: Any) -> str:
    if not isinstance(value, str):
        raise TableError(f"key column {table.key!r} of table {table.name!r} returned {value!r} "
                        f"({type(value).__name__}), not text")
    return value
