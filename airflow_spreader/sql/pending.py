"""The ``pending`` predicate: which rows of the source table still need the work, counted span by span.

Given as a SQLAlchemy boolean clause (``users.c.email_normalized.is_(None)``) or an SQL ``WHERE``
fragment (``"email_normalized IS NULL"``, the DAG author's own text, as trusted as the work). One query
per span gives the pending rows and their lowest and highest key, so that a redo plans only that part:
``SELECT COUNT(*), MIN(key), MAX(key) FROM table WHERE key BETWEEN :lo AND :hi AND (predicate)``, a range
scan of the key's index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from airflow_spreader.sql.table import SourceTable, TableError, sa_table, safe_url

__all__ = ["Pending", "PendingCount", "PendingError", "PendingPredicate", "check_pending", "count_pending"]

PendingPredicate = str | sa.ColumnElement[bool]


class PendingError(TableError):
    """The ``pending`` predicate does not run on the table: nothing is planned."""


@dataclass(frozen=True, slots=True)
class PendingCount:
    """Rows pending in one span, with their lowest and highest key (None when none)."""

    rows: int
    min_id: int | None
    max_id: int | None


@dataclass(frozen=True)
class Pending:
    """A checked ``pending`` predicate over ``table``."""

    table: SourceTable
    predicate: PendingPredicate

    def __post_init__(self) -> None:
        if isinstance(self.predicate, str):
            if not self.predicate.strip():
                raise PendingError("pending must be an SQL WHERE fragment such as 'email_normalized IS NULL' or a "
                                   "SQLAlchemy boolean clause, got an empty string")
        elif not isinstance(self.predicate, sa.ColumnElement):
            raise PendingError(f"pending must be an SQL WHERE fragment (str) or a SQLAlchemy boolean clause, "
                               f"got {type(self.predicate).__name__} {self.predicate!r}")

    @property
    def text(self) -> str:
        """The predicate as written in messages."""
        return self.predicate if isinstance(self.predicate, str) else str(self.predicate)

    def statement(self, begin_id: int, end_id: int) -> sa.Select[int, Any, Any]:
        condition: sa.ColumnElement[bool] | sa.TextClause
        source: sa.FromClause
        if isinstance(self.predicate, str):
            condition, source = sa.text(f"({self.predicate})"), sa_table(self.table)
        else:
            froms = sa.select(self.predicate).get_final_froms()
            condition, source = self.predicate, froms[0] if len(froms) == 1 else sa_table(self.table)
        key: sa.ColumnClause[Any] = sa.column(self.table.key)  # unqualified: one table in FROM, whichever names it
        return (sa.select(sa.func.count(), sa.func.min(key), sa.func.max(key)).select_from(source)
                .where(key.between(begin_id, end_id), condition))


def count_pending(bind: sa.Engine, pending: Pending, begin_id: int, end_id: int) -> PendingCount:
    """The rows of keys ``begin_id..end_id`` (inclusive) that the predicate says still need the work."""
    with bind.connect() as connection:
        rows, low, high = tuple(connection.execute(pending.statement(begin_id, end_id)).one())
    return PendingCount(int(rows), None if low is None else int(low), None if high is None else int(high))


def check_pending(bind: sa.Engine, pending: Pending) -> None:
    """Run the count once over an empty key range: an unknown column or a syntax error fails here, with
    the predicate and the database's first line, before anything is planned."""
    try:
        with bind.connect() as connection:
            connection.execute(pending.statement(1, 0)).one()
    except sa.exc.DBAPIError as error:
        first = str(getattr(error, "orig", error)).strip().splitlines()[0]
        raise PendingError(f"pending {pending.text!r} does not run on table {pending.table.name!r} in "
                           f"{safe_url(bind.url)}: {first}; give a WHERE condition on that table's columns, "
                           "e.g. 'email_normalized IS NULL'") from error
