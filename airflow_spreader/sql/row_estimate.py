"""How many rows a table holds, from the database's statistics: the starting total of ``"rows"`` progress.

An estimate, read once when a backfill first plans in ``"rows"`` batching: PostgreSQL's
``pg_class.reltuples`` and MariaDB's ``information_schema.TABLES.TABLE_ROWS`` cost one catalog lookup
(the first is what the last ANALYZE saw, the second can be off by tens of percent on InnoDB); SQLite
keeps no such figure, so it counts (``COUNT(*)``, a scan of the smallest index). The progress corrects
the estimate as batches finish and shows it as one until the walk reaches the bottom of the key.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from airflow_spreader.sql.table import SourceTable, sa_table

__all__ = ["estimate_rows"]


def estimate_rows(bind: sa.Engine | sa.Connection, table: SourceTable) -> int:
    """Rows of ``table`` as the statistics say (never negative); COUNT(*) where there are none."""
    if isinstance(bind, sa.Engine):
        with bind.connect() as conn:
            return estimate_rows(conn, table)
    dialect = bind.dialect.name
    value: Any = None
    if dialect == "postgresql":
        quote = bind.dialect.identifier_preparer.quote
        qualified = ".".join(quote(part) for part in (table.schema, table.table_name) if part)
        value = bind.execute(sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:name)"),
                             {"name": qualified}).scalar()
    elif dialect in ("mysql", "mariadb"):
        value = bind.execute(sa.text(
            "SELECT TABLE_ROWS FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE()) AND TABLE_NAME = :name"),
            {"schema": table.schema, "name": table.table_name}).scalar()
    if value is None or float(value) < 0:  # SQLite, another database, or a table never analyzed (-1)
        value = bind.execute(sa.select(sa.func.count()).select_from(sa_table(table))).scalar()
    return max(0, int(float(value or 0)))
