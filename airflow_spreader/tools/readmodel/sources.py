"""Where the console and the page read and write: Redis for a backfill's state, Airflow's metadata DB for the rest.

Redis is ``--redis-url``, else ``$REDIS_URL``, else the Airflow connection ``--redis-conn-id``
through :class:`~airflow_spreader.hooks.spreader.SpreaderHook`, as the tasks reach it. Outside a
task Airflow's SDK only sees connections in ``AIRFLOW_CONN_*`` variables and secrets backends, so
a connection kept in the metadata DB is looked up server side and handed to the hook as it is
(nothing is written to the process environment: the page runs inside the api-server).

The console runs where Airflow is installed and configured, like the ``airflow`` CLI: it reads
and writes the Variable ``spreader__<dag_id>`` and reads whether the DAG is paused with Airflow's
server-side models (the metadata DB). Tasks may not do that; an operator's tool may. When the DB
cannot be reached, the first error is remembered and every later read reports it instead of
raising, so that ``status`` still shows what Redis knows.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis

from airflow_spreader.core.config import ConfigError, SpreadConfig
from airflow_spreader.core.names import config_variable
from airflow_spreader.errors import SpreaderError

T = TypeVar("T")


class SourceError(SpreaderError):
    """A place cannot be read or written; the console tells it as one line with ``exit_code``, the page as 503."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def one_line(error: BaseException) -> str:
    """``Type: first line of the message``: enough to act on, never a traceback."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


@dataclass(frozen=True, slots=True)
class Lookup(Generic[T]):
    """A value read from Airflow, or why there is none (``problem``); both None: it does not exist."""

    value: T | None = None
    problem: str | None = None


class RedisSource:
    """The Redis holding the trackers, connected on first use and checked with a PING."""

    def __init__(self, url: str | None, conn_id: str) -> None:
        self.url = url or os.environ.get("REDIS_URL") or None
        self.conn_id = conn_id
        self._client: redis.Redis | None = None

    @property
    def where(self) -> str:
        """Where Redis is, for messages; a password in the URL is masked."""
        if self.url is None:
            return f"Airflow connection {self.conn_id!r}"
        parts = urlsplit(self.url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return urlunsplit(parts._replace(netloc=netloc))
        return self.url

    def client(self) -> redis.Redis:
        if self._client is None:
            client = self._connect()
            try:
                client.ping()
            except redis.RedisError as error:
                raise SourceError(f"cannot reach Redis at {self.where}: {one_line(error)}") from error
            self._client = client
        return self._client

    def _connect(self) -> redis.Redis:
        if self.url is not None:
            try:
                return redis.Redis.from_url(self.url, socket_connect_timeout=5, socket_timeout=30)
            except ValueError as error:
                raise SourceError(f"bad Redis URL {self.where}: {error}", exit_code=2) from error
        # Imported on use: with a Redis URL the console never pays for importing Airflow.
        from airflow_spreader.compat import AirflowNotFoundException  # noqa: PLC0415
        from airflow_spreader.hooks.spreader import SpreaderHook  # noqa: PLC0415

        try:
            return self._hook_client(SpreaderHook(self.conn_id))
        except AirflowNotFoundException:
            pass
        return self._hook_client(SpreaderHook(self.conn_id, connection=self._metadata_db_connection()))

    @staticmethod
    def _hook_client(hook: Any) -> redis.Redis:
        client: redis.Redis = hook.get_conn()
        return client

    def _metadata_db_connection(self) -> Any:
        try:
            from airflow.models.connection import Connection  # noqa: PLC0415, TID251 - server side, on use

            return Connection.get_connection_from_secrets(self.conn_id)
        except Exception as error:
            raise SourceError(f"no Redis: pass --redis-url or set REDIS_URL, or define the Airflow connection "
                              f"{self.conn_id!r} ({one_line(error)})") from error


class AirflowSource:
    """Airflow's metadata DB through its server-side models; unreachable means Redis only.

    ``airflow.models`` is imported on use (it sets up the ORM), and only here: the console is not a task.
    """

    def __init__(self) -> None:
        self.unreachable: str | None = None
        self._probed = False

    def _attempt(self, read: Any) -> Lookup[Any]:
        if not self._probed:
            self._probed = True
            self._guard(self._probe)
        if self.unreachable:
            return Lookup(problem=self.unreachable)
        return self._guard(read)

    def _guard(self, read: Any) -> Lookup[Any]:
        try:
            return Lookup(read())
        except Exception as error:  # any failure to reach the DB: report it, never crash status
            self.unreachable = f"Airflow metadata DB unreachable ({one_line(error)})"
            return Lookup(problem=self.unreachable)

    @staticmethod
    def _probe() -> None:
        """Query the DAG table once: Variable.get logs a DB error and answers "no such Variable"."""
        from airflow.models.dag import DagModel  # noqa: PLC0415, TID251 - server side, on use
        from airflow.utils.session import create_session  # noqa: PLC0415
        from sqlalchemy import select  # noqa: PLC0415

        with create_session() as session:
            session.execute(select(DagModel.dag_id).limit(1)).all()

    def variable(self, key: str) -> Lookup[str]:
        def read() -> str | None:
            from airflow.models.variable import Variable  # noqa: PLC0415, TID251 - server side, on use

            value: str | None = Variable.get(key, default_var=None)
            return value

        return self._attempt(read)

    def config(self, dag_id: str) -> Lookup[SpreadConfig]:
        """The configuration in force, or why it is not available (missing, invalid, unreachable)."""
        key = config_variable(dag_id)
        raw = self.variable(key)
        if raw.problem:
            return Lookup(problem=raw.problem)
        if raw.value is None:
            return Lookup(problem=f"no Variable {key} (the DAG's first run creates it)")
        try:
            return Lookup(SpreadConfig.from_json(raw.value))
        except ConfigError as error:
            return Lookup(problem=f"Variable {key}: {error}")

    def write_variable(self, key: str, text: str) -> None:
        """Replace an existing Variable's value, keeping its description."""
        from airflow.models.variable import Variable  # noqa: PLC0415, TID251 - server side, on use

        try:
            Variable.update(key, text)
        except Exception as error:
            raise SourceError(f"could not write the Variable {key}: {one_line(error)}") from error

    def delete_variable(self, key: str) -> Lookup[bool]:
        """Delete a Variable if it exists: whether it did, or why the DB could not be reached."""
        def delete() -> bool:
            from airflow.models.variable import Variable  # noqa: PLC0415, TID251 - server side, on use

            return bool(Variable.delete(key) > 0)

        return self._attempt(delete)

    def active_runs(self, dag_id: str) -> Lookup[list[str]]:
        """The run ids of the DAG's runs now queued or running (a resume must not start a second chain)."""
        def read() -> list[str]:
            from airflow.models.dagrun import DagRun  # noqa: PLC0415, TID251 - server side, on use
            from airflow.utils.session import create_session  # noqa: PLC0415
            from airflow.utils.state import DagRunState  # noqa: PLC0415
            from sqlalchemy import select  # noqa: PLC0415

            with create_session() as session:
                return list(session.scalars(select(DagRun.run_id).where(
                    DagRun.dag_id == dag_id, DagRun.state.in_([DagRunState.QUEUED, DagRunState.RUNNING]))))

        return self._attempt(read)

    def trigger(self, dag_id: str) -> str:
        """Create a manual run of the DAG as ``airflow dags trigger`` does (server side); its run id."""
        from getpass import getuser  # noqa: PLC0415

        from airflow.api.common.trigger_dag import trigger_dag  # noqa: PLC0415 - server side, on use
        from airflow.utils.types import DagRunTriggeredByType  # noqa: PLC0415

        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(2, 1)  # Airflow logs "creating dag run" on stdout, whatever its loggers hold: keep --json clean
        try:
            run = trigger_dag(dag_id, triggered_by=DagRunTriggeredByType.CLI, triggering_user_name=getuser())
        except Exception as error:
            raise SourceError(f"could not trigger the DAG {dag_id}: {one_line(error)}") from error
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        if run is None:
            raise SourceError(f"could not trigger the DAG {dag_id}: Airflow created no run")
        return str(run.run_id)

    def is_paused(self, dag_id: str) -> Lookup[bool]:
        def read() -> bool | None:
            from airflow.models.dag import DagModel  # noqa: PLC0415, TID251 - server side, on use

            dag = DagModel.get_dagmodel(dag_id)
            return None if dag is None else bool(dag.is_paused)

        found = self._attempt(read)
        if found.problem is None and found.value is None:
            return Lookup(problem=f"no DAG {dag_id!r} in Airflow (not parsed yet, or another --dag-id)")
        return found


    def source_engine(self, conn_id: str) -> Any:
        """A SQLAlchemy engine for the source connection ``conn_id`` (environment first, then the metadata DB),
        for previews that read the source table; a SourceError says why there is none."""
        from airflow_spreader.compat import AirflowNotFoundException  # noqa: PLC0415
        from airflow_spreader.hooks.source import SourceDatabaseHook  # noqa: PLC0415

        try:
            try:
                return SourceDatabaseHook(conn_id).get_conn()
            except AirflowNotFoundException:
                from airflow.models.connection import Connection  # noqa: PLC0415, TID251 - server side, on use

                stored = Connection.get_connection_from_secrets(conn_id)
                return SourceDatabaseHook(conn_id, connection=stored).get_conn()
        except Exception as error:
            raise SourceError(f"cannot reach the source connection {conn_id!r}: {one_line(error)}") from error


class NoAirflow(AirflowSource):
    """Reads nothing from Airflow, so that a Redis-only answer never pays for importing it (``--redis-only``)."""

    REASON = "Airflow not read (--redis-only)"

    def _attempt(self, read: Any) -> Lookup[Any]:
        return Lookup(problem=self.REASON)


def shadowing_env_var(key: str) -> str | None:
    """An ``AIRFLOW_VAR_*`` environment variable that hides the Variable ``key`` here, if any."""
    name = f"AIRFLOW_VAR_{key.upper()}"
    return name if name in os.environ else None
