"""``"rows"`` batching: read where a cycle's batches begin from the key's index, one query a cycle.

One statement returns the key of every ``batch_size``-th row of the next ``count x batch_size + 1`` rows
at or below the cursor (``ROW_NUMBER() OVER (ORDER BY key DESC)`` over ``ORDER BY key DESC LIMIT``): the
database walks that many index entries, never the rows' other columns, and sends back ``count + 1``
keys, so planning holds O(batches) memory whatever the table's size. SQLite (3.25+), PostgreSQL and
MariaDB (10.2+) run the same SQL; the table and key are quoted by SQLAlchemy as in sql/table.py.

The keys come back as the driver returns them (``read_tops``); ``RowCarver`` turns them into the tracker's
id ranges: integers as they are, UUIDs as their integer images (core/keys.py), whose order is the
database's order of the UUIDs, so ``top + 1`` is still "just above the next top".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from airflow_spreader.core.carving import ranges_from_tops
from airflow_spreader.core.keys import to_key
from airflow_spreader.core.planner import IdRange
from airflow_spreader.sql.table import SourceTable, TableError, key_image, sa_table

__all__ = ["RowCarver", "check_key_indexed", "read_tops", "tops_statement"]


def tops_statement(table: SourceTable, *, below: Any, above: Any, batch_size: int, count: int) -> sa.Select[Any]:
    """The keys of rows 1, b+1, ..., count x b + 1 (descending) with ``above <= key <= below``."""
    if batch_size < 1 or count < 1:
        raise ValueError(f"batch_size and count must be >= 1, got {batch_size} and {count}")
    key = sa_table(table).c[table.key]
    walked = (sa.select(key.label("k")).where(key <= below, key >= above).order_by(key.desc())
              .limit(count * batch_size + 1).subquery("walked"))
    numbered = sa.select(walked.c.k, sa.func.row_number().over(order_by=walked.c.k.desc()).label("n")).subquery(
        "numbered")
    return sa.select(numbered.c.k).where((numbered.c.n - 1) % batch_size == 0).order_by(numbered.c.k.desc())


def read_tops(bind: sa.Engine | sa.Connection, table: SourceTable, *, below: Any, above: Any, batch_size: int,
              count: int) -> list[Any]:
    """Run ``tops_statement``: at most ``count + 1`` keys, highest first, as the driver returns them."""
    statement = tops_statement(table, below=below, above=above, batch_size=batch_size, count=count)
    if isinstance(bind, sa.Connection):
        return list(bind.execute(statement).scalars())
    with bind.connect() as conn:
        return list(conn.execute(statement).scalars())


@dataclass(frozen=True)
class RowCarver:
    """The tracker's ``Carve`` for ``"rows"`` batching of an integer or UUID key: one query per call."""

    bind: sa.Engine
    table: SourceTable
    batch_size: int

    def __call__(self, cursor: int, min_id: int, count: int) -> list[IdRange]:
        if cursor < min_id or count <= 0:
            return []
        tops = read_tops(self.bind, self.table, below=to_key(cursor), above=to_key(min_id),
                         batch_size=self.batch_size, count=count)
        return ranges_from_tops(cursor, min_id, [key_image(self.table, top, "a", like=cursor) for top in tops],
                                count)


def check_key_indexed(bind: sa.Engine | sa.Connection, table: SourceTable) -> None:
    """Raise TableError unless ``key`` leads the primary key or an index: ``"rows"`` batching would
    otherwise sort the whole table at every cycle."""
    if isinstance(bind, sa.Engine):
        with bind.connect() as conn:
            check_key_indexed(conn, table)
            return
    inspector = sa.inspect(bind)
    leading = _leading_columns(inspector.get_pk_constraint(table.table_name, schema=table.schema),
                               inspector.get_indexes(table.table_name, schema=table.schema),
                               inspector.get_unique_constraints(table.table_name, schema=table.schema))
    if table.key not in leading:
        raise TableError(
            f"key column {table.key!r} of table {table.name!r} has no index (it leads neither the primary key "
            f"nor an index): \"rows\" batching reads the key's index every cycle and would scan the table "
            f"instead. Create an index on {table.key!r}, use batching \"ids\", or set allow_unindexed_key=True")


def _leading_columns(pk: Any, indexes: Sequence[Any], uniques: Sequence[Any]) -> set[str]:
    """The first column of the primary key, of each index and of each unique constraint."""
    lists = [pk.get("constrained_columns") or [] if pk else [],
             *(index.get("column_names") or [] for index in indexes),
             *(unique.get("column_names") or [] for unique in uniques)]
    return {columns[0] for columns in lists if columns and columns[0] is not None}
