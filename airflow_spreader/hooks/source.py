"""The source database of a backfill, as a SQLAlchemy engine built from an Airflow connection."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from airflow.sdk import BaseHook

# Airflow connection types and the SQLAlchemy drivers this package is tested with.
DRIVERS = {
    "postgres": "postgresql+psycopg2",
    "postgresql": "postgresql+psycopg2",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "sqlite": "sqlite",
}


class SourceDatabaseHook(BaseHook):
    """A SQLAlchemy engine for the connection ``conn_id``.

    The connection's extra may give ``{"sqlalchemy_url": "..."}`` to name any other driver;
    otherwise the URL is built from the connection's fields for the types in ``DRIVERS``.
    """

    conn_name_attr = "source_conn_id"
    default_conn_name = "spreader_source"
    hook_name = "airflow-spreader source database"

    def __init__(self, source_conn_id: str = default_conn_name, *, connection: Any = None, **kwargs: Any) -> None:
        """:param connection: an Airflow ``Connection`` already looked up (the console reads it server side);
        by default the connection ``source_conn_id`` is looked up as in any task."""
        super().__init__(**kwargs)
        self.source_conn_id = source_conn_id
        self.connection = connection

    def sqlalchemy_url(self) -> sa.URL:
        conn = self.connection if self.connection is not None else self.get_connection(self.source_conn_id)
        extra = conn.extra_dejson or {}
        if extra.get("sqlalchemy_url"):
            return sa.make_url(extra["sqlalchemy_url"])
        conn_type = (conn.conn_type or "").lower()
        if conn_type not in DRIVERS:
            raise ValueError(
                f"connection {self.source_conn_id!r} has type {conn.conn_type!r}; airflow-spreader "
                f"knows {sorted(DRIVERS)}, or set extra {{\"sqlalchemy_url\": ...}} for another driver"
            )
        if conn_type == "sqlite":
            return sa.URL.create("sqlite", database=conn.host or conn.schema or None)
        return sa.URL.create(DRIVERS[conn_type], username=conn.login or None, password=conn.password or None,
                             host=conn.host or None, port=conn.port or None, database=conn.schema or None)

    def get_conn(self) -> sa.Engine:
        return engine_for(self.sqlalchemy_url())


@lru_cache(maxsize=16)
def engine_for(url: sa.URL) -> sa.Engine:
    """One engine (and pool) per URL per process: task instances run many batches each."""
    return sa.create_engine(url, pool_pre_ping=True)
