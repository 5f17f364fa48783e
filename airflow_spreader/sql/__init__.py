"""The source-table layer: plain SQLAlchemy 2 Core, no Airflow, so it is testable on any database."""

from __future__ import annotations

from airflow_spreader.sql.table import (
    SourceTable,
    TableBounds,
    TableError,
    inspect_table,
    range_clause,
    sa_table,
    safe_url,
)
from airflow_spreader.sql.walk import WalkSummary, walk_table

__all__ = [
    "SourceTable",
    "TableBounds",
    "TableError",
    "WalkSummary",
    "inspect_table",
    "range_clause",
    "sa_table",
    "safe_url",
    "walk_table",
]
