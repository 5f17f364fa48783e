"""Read one health signal through its Airflow connection: thin, one query (or call) per kind.

Each reader returns a number or raises; the caller turns a raise into a failed check, which counts as
unhealthy. The queries run with a short statement timeout on PostgreSQL, so a stuck server fails the
check instead of hanging the batch task.
"""

from __future__ import annotations

import importlib
import statistics
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from airflow_spreader.core.governor_config import Signal
from airflow_spreader.errors import SpreaderError
from airflow_spreader.hooks.source import SourceDatabaseHook

#: Milliseconds a health query may take on PostgreSQL before the check fails.
STATEMENT_TIMEOUT_MS = 5000

#: Seconds behind the primary. Zero while the replica has replayed all it received, so an idle primary
#: does not make the lag grow; otherwise the age of the last replayed commit (or of the server's start, if
#: none was replayed yet).
POSTGRES_REPLICA_LAG = """
SELECT pg_is_in_recovery(),
       CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
            ELSE GREATEST(0, EXTRACT(EPOCH FROM clock_timestamp()
                 - COALESCE(pg_last_xact_replay_timestamp(), pg_postmaster_start_time()))) END
"""
#: Sessions running a query now, other than this probe's own (and not the replication senders).
POSTGRES_ACTIVE = ("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() "
                   "AND backend_type = 'client backend'")


class NotAReplica(SpreaderError, RuntimeError):
    """replica_lag's connection reaches a server that replicates from no primary."""


def _postgres(connection: sa.Connection) -> bool:
    return connection.dialect.name == "postgresql"


def _guard(connection: sa.Connection) -> None:
    if _postgres(connection):
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")


def replica_lag(connection: sa.Connection) -> float:
    """Seconds the replica is behind (PostgreSQL streaming; MariaDB/MySQL Seconds_Behind_Master/Source)."""
    if _postgres(connection):
        in_recovery, lag = connection.execute(sa.text(POSTGRES_REPLICA_LAG)).one()
        if not in_recovery:
            raise NotAReplica("the server is not in recovery (a primary, not a streaming replica)")
        return float(lag)
    try:
        row = connection.exec_driver_sql("SHOW REPLICA STATUS").mappings().first()
    except sa.exc.DBAPIError:  # before MySQL 8.0.22 / MariaDB 10.5.1
        row = connection.exec_driver_sql("SHOW SLAVE STATUS").mappings().first()
    if row is None:
        raise NotAReplica("SHOW REPLICA STATUS is empty: the server replicates from no primary")
    for column in ("Seconds_Behind_Source", "Seconds_Behind_Master"):
        if column in row:
            if row[column] is None:  # replication stopped or broken: the lag is unknown
                raise NotAReplica(f"{column} is NULL: replication is not running")
            return float(row[column])
    raise NotAReplica("SHOW REPLICA STATUS has no Seconds_Behind_Source/Master column")


def active_sessions(connection: sa.Connection) -> float:
    """PostgreSQL sessions in state 'active' / MySQL Threads_running, the probe's own not counted."""
    if _postgres(connection):
        return float(connection.execute(sa.text(POSTGRES_ACTIVE)).scalar_one())
    row = connection.exec_driver_sql("SHOW GLOBAL STATUS LIKE 'Threads_running'").one()
    return max(0.0, float(row[1]) - 1)  # this probe's own thread is running


def probe_latency(connection: sa.Connection, query: str, samples: int) -> float:
    """The median of ``samples`` timings of ``query``, in milliseconds."""
    timings = []
    for _ in range(samples):
        began = time.perf_counter()
        connection.execute(sa.text(query)).all()
        timings.append((time.perf_counter() - began) * 1000)
    return float(statistics.median(timings))


def committed_probe_latency(engine: sa.Engine, query: str, samples: int) -> float:
    """The median of ``samples`` timings of ``query`` each in its own transaction, to the end of its commit:
    what a production write pays, WAL flush included (a backfill's big writes delay it; a read does not see
    that)."""
    timings = []
    with engine.connect() as connection:
        for _ in range(samples):
            began = time.perf_counter()
            with connection.begin():
                _guard(connection)
                connection.execute(sa.text(query))
            timings.append((time.perf_counter() - began) * 1000)
    return float(statistics.median(timings))


def scalar(connection: sa.Connection, query: str) -> float:
    """The one number the query returns."""
    value = connection.execute(sa.text(query)).scalar_one()
    if value is None:
        raise ValueError(f"the query returned NULL: {query[:100]}")
    return float(value)


def import_callable(path: str) -> Callable[[], Any]:
    """The function at ``package.module.function`` or ``package.module:function``."""
    module_name, _, attribute = path.replace(":", ".").rpartition(".")
    function = getattr(importlib.import_module(module_name), attribute)
    if not callable(function):
        raise TypeError(f"{path} is a {type(function).__name__}, not a function")
    return function  # type: ignore[no-any-return]


def read(signal: Signal) -> float:
    """Read ``signal`` once; raises when the check fails."""
    if signal.kind == "callable":
        assert signal.callable is not None
        value = import_callable(signal.callable)()
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{signal.callable}() returned {value!r}, not a number")
        return float(value)
    assert signal.conn_id is not None
    engine = SourceDatabaseHook(signal.conn_id).get_conn()
    if signal.kind == "probe_latency" and signal.commit:
        assert signal.query is not None
        return committed_probe_latency(engine, signal.query, signal.samples)
    with engine.begin() as connection:
        _guard(connection)
        if signal.kind == "replica_lag":
            return replica_lag(connection)
        if signal.kind == "active_sessions":
            return active_sessions(connection)
        assert signal.query is not None
        if signal.kind == "probe_latency":
            return probe_latency(connection, signal.query, signal.samples)
        return scalar(connection, signal.query)
