"""Which table a backfill walks, as its last plan saw it: for tools that must read that table too.

The console's ``plan --dry-run`` previews ``"rows"`` batching, whose boundaries come from the source
table's index; the console knows only the backfill's name, so the plan task records the connection, the
table and the key in the tracker's meta hash (one HSET per cycle, beside ``dag_id``).
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_spreader.state.tracker import Tracker, text

FIELDS = ("source_conn_id", "source_table", "source_key")


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """The Airflow connection of the source database, the table (``schema.table`` allowed) and its key."""

    conn_id: str
    table: str
    key: str


def record_source(tracker: Tracker, source: SourceRecord) -> None:
    tracker.redis.hset(tracker.keys.meta, mapping=dict(zip(FIELDS, (source.conn_id, source.table, source.key),
                                                           strict=True)))


def recorded_source(tracker: Tracker) -> SourceRecord | None:
    """What the last plan recorded; None before the first plan (or one by an older version)."""
    conn_id, table, key = tracker.redis.hmget(tracker.keys.meta, list(FIELDS))
    if conn_id is None or table is None or key is None:
        return None
    return SourceRecord(text(conn_id), text(table), text(key))
