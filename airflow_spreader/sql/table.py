"""The source table of a backfill: its validation, its id bounds, and safe per-range SQL constructs.

Table and column names come from users (DAG arguments, Variables), so they only ever reach SQL as
identifiers quoted by SQLAlchemy, never formatted into a statement: a name such as
``t; DROP TABLE x; --`` is looked up as a (missing) table and nothing else runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from airflow_spreader.core.keys import TEXT_MIN, TEXT_TOP, UuidKeyError, form_of, from_key, is_uuid_image, to_key
from airflow_spreader.errors import SpreaderError

__all__ = ["SourceTable", "TableBounds", "TableError", "inspect_table", "key_image", "range_clause", "read_max",
           "sa_table", "safe_url"]

#: URL query parameters whose names contain these words are left out of messages.
SECRET_WORDS = ("pass", "secret", "token")

KEY_MIN, KEY_MAX = -2**63, 2**63 - 1  # keys the tracker and the done-ledger (signed BIGINT) hold exactly


class TableError(SpreaderError, ValueError):
    """The source table cannot be backfilled as configured; the message says which table and why."""


@dataclass(frozen=True)
class SourceTable:
    """A table walked by its ``key`` column (integers, UUIDs or text); ``name`` may be ``schema.table``."""

    name: str
    key: str = "id"
    #: False when the user named no key (``id`` is assumed): a composite primary key is then refused.
    explicit_key: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or self.name.endswith("."):
            raise TableError(f"table name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.key, str) or not self.key.strip():
            raise TableError(f"key column of table {self.name!r} must be a non-empty string, got {self.key!r}")

    @property
    def schema(self) -> str | None:
        """The part before the last dot, or None: the connection's default schema."""
        schema, dot, _ = self.name.rpartition(".")
        return schema if dot and schema else None

    @property
    def table_name(self) -> str:
        """The name without its schema."""
        return self.name.rpartition(".")[2] if self.schema else self.name


@dataclass(frozen=True)
class TableBounds:
    """The smallest and largest key of a table (a UUID key as its integer image, core/keys.py); both None
    when it is empty. A text key's bounds are the handles TEXT_MIN and TEXT_TOP, ``top_text`` its MAX."""

    min_id: int | None
    max_id: int | None
    top_text: str | None = None

    @property
    def is_empty(self) -> bool:
        return self.min_id is None or self.max_id is None

    @property
    def id_span(self) -> int:
        """How many ids lie between the bounds, inclusive (0 when empty): the work ahead, gaps included."""
        if self.min_id is None or self.max_id is None:
            return 0
        return self.max_id - self.min_id + 1


def safe_url(url: sa.URL) -> str:
    """The URL without its password, fit for messages and logs."""
    query = {k: v for k, v in url.query.items() if not any(word in k.lower() for word in SECRET_WORDS)}
    bare = sa.URL.create(url.drivername, username=url.username, host=url.host, port=url.port,
                         database=url.database, query=query)
    return bare.render_as_string(hide_password=True)


@lru_cache(maxsize=256)
def sa_table(table: SourceTable) -> sa.TableClause:
    """A lightweight ``sqlalchemy.table()`` with the key column; SQLAlchemy quotes both names when compiled.

    Equal SourceTables give the same construct, so ``sa_table(t).c.id`` and ``range_clause(t, ...)``
    name one FROM element (two constructs would make a cartesian product). Do not mutate it.
    """
    return sa.table(table.table_name, sa.column(table.key), schema=table.schema)


def range_clause(table: SourceTable, begin_id: int, end_id: int) -> sa.ColumnElement[bool]:
    """``key BETWEEN :begin AND :end`` (both inclusive), with the ids as bound parameters (a UUID key's
    images as the values the driver returned)."""
    begin, end = _as_id(begin_id, "begin_id"), _as_id(end_id, "end_id")
    if begin > end:
        raise ValueError(f"range of table {table.name!r} is empty: begin_id {begin} > end_id {end}")
    return sa_table(table).c[table.key].between(to_key(begin), to_key(end))


def inspect_table(bind: sa.Engine | sa.Connection, table: SourceTable) -> TableBounds:
    """Check that ``table`` exists with an integer, UUID or text ``key``, then return MIN and MAX of the key.

    MIN and MAX of an indexed key (the primary key) are two index lookups, so this is cheap even
    on a billion-row table. Raises TableError for a missing table or column, a key that is neither an
    integer, a UUID nor text, or a database that cannot be reached. Text whose MIN and MAX are not both
    UUIDs (of one form) is a text key: its bounds are handles (``TableBounds.top_text``).
    """
    if isinstance(bind, sa.Connection):
        return _inspect(bind, table)
    try:
        conn = bind.connect()
    except sa.exc.DBAPIError as error:
        raise _connect_error(bind.url, error) from error
    with conn:
        return _inspect(conn, table)


def _inspect(conn: sa.Connection, table: SourceTable) -> TableBounds:
    url = conn.engine.url
    try:
        integer = _check_key(conn, table)
        key = sa_table(table).c[table.key]  # one table construct, or the FROM lists it twice
        row: tuple[Any, Any]
        if integer:
            low, high = conn.execute(sa.select(sa.func.min(key), sa.func.max(key))).one()
            row = (low, high)
        else:  # PostgreSQL has no MIN(uuid): the first and last index entries instead
            row = (conn.execute(sa.select(key).order_by(key).limit(1)).scalar(),
                   conn.execute(sa.select(key).order_by(key.desc()).limit(1)).scalar())
    except sa.exc.DBAPIError as error:
        if error.connection_invalidated:
            raise _connect_error(url, error) from error
        raise
    low, high = row
    if low is None or high is None:
        return TableBounds(None, None)
    if isinstance(low, str) and isinstance(high, str) and not _both_uuids(table, low, high):
        return TableBounds(TEXT_MIN, TEXT_TOP, top_text=high)  # a text key, ordered by the database
    if not _is_whole(low):  # a UUID key: its max (with letters, almost surely) sets the form of all the others
        top = key_image(table, high, "max")
        return TableBounds(key_image(table, low, "min", like=top), top)
    for value in (int(low), int(high)):
        _check_range(table, value, "max" if value == int(high) else "min")
    return TableBounds(int(low), int(high))


def key_image(table: SourceTable, value: Any, which: str, like: int | None = None) -> int:
    """The tracker's integer for a key value read from the table: an integer as is, a UUID as its image
    (core/keys.py) in the form of ``like`` (the key's bound). TableError for any other value."""
    if _is_whole(value):
        return int(value)
    try:
        return from_key(value, None if like is None or not is_uuid_image(like) else form_of(like))
    except UuidKeyError as error:
        raise TableError(f"key column {table.key!r} of table {table.name!r} has {which} value: {error}") from None


def _both_uuids(table: SourceTable, low: str, high: str) -> bool:
    """True when MIN and MAX are UUIDs in one form: the key is walked as UUIDs, else as text."""
    try:
        key_image(table, low, "min", like=key_image(table, high, "max"))
    except TableError:
        return False
    return True


def read_max(conn: sa.Connection, table: SourceTable) -> int | None:
    """MAX of the key now (None for an empty table): one index lookup, without the checks of
    :func:`inspect_table`, which the first cycle made. For ``follow_new_rows``, at the bottom of each pass."""
    high = conn.execute(sa.select(sa.func.max(sa_table(table).c[table.key]))).scalar()
    if high is None:
        return None
    _check_range(table, int(high), "max")  # integer keys only: follow_new_rows refuses a UUID key
    return int(high)


def _check_range(table: SourceTable, value: int, which: str) -> None:
    if not KEY_MIN <= value <= KEY_MAX:  # e.g. BIGINT UNSIGNED above 2^63-1: the ledger's BIGINT cannot hold it
        raise TableError(f"key column {table.key!r} of table {table.name!r} has {which} value {value}, "
                         f"outside the signed 64-bit range {KEY_MIN}..{KEY_MAX} that the backfill supports")


def _check_key(conn: sa.Connection, table: SourceTable) -> bool:
    """Reflect the table's columns; raise TableError unless the key exists and may hold integers or UUIDs.
    True for an integer type."""
    url = safe_url(conn.engine.url)
    inspector = sa.inspect(conn)
    try:
        found = inspector.has_table(table.table_name, schema=table.schema)
        columns = inspector.get_columns(table.table_name, schema=table.schema) if found else []
    except sa.exc.NoSuchTableError:
        found = False
    except sa.exc.DBAPIError as error:
        if error.connection_invalidated:
            raise
        # e.g. an unknown schema on SQLite ("unknown database"), or no privilege to see the table
        raise TableError(f"table {table.name!r} not found in {url}: {_first_line(error)}") from error
    if not found:
        raise TableError(f"table {table.name!r} not found in {url}")
    by_name = {column["name"]: column for column in columns}
    if not table.explicit_key:
        primary = inspector.get_pk_constraint(table.table_name, schema=table.schema).get("constrained_columns") or []
        if len(primary) > 1:
            raise TableError(f"table {table.name!r} has a composite primary key ({', '.join(primary)}) and no key= "
                             f"was given: name the integer column to walk by, e.g. key={primary[0]!r}")
    if table.key not in by_name:
        raise TableError(f"key column {table.key!r} not found in table {table.name!r}; "
                         f"its columns are: {', '.join(by_name)}")
    key_type = by_name[table.key]["type"]
    if not _is_integer(key_type) and not _may_hold_uuid(key_type):
        raise TableError(f"key column {table.key!r} of table {table.name!r} has type {_type_name(key_type, conn)}, "
                         "neither an integer nor a UUID type (uuid, CHAR(36)/text, BINARY(16)): id ranges need one")
    return _is_integer(key_type)


def _is_integer(type_: Any) -> bool:
    """INTEGER, BIGINT, SMALLINT..., and NUMERIC/DECIMAL with scale 0 (whole numbers, e.g. DECIMAL(20, 0))."""
    if isinstance(type_, sa.Integer):
        return True
    return isinstance(type_, sa.Numeric) and not isinstance(type_, sa.Float) and type_.scale == 0


def _may_hold_uuid(type_: Any) -> bool:
    """PostgreSQL uuid, text (CHAR, VARCHAR, TEXT) and binary (BINARY, VARBINARY, BLOB): their values are
    checked to be UUIDs when read (``key_image``)."""
    return isinstance(type_, (sa.Uuid, sa.String, sa.types._Binary))


def _is_whole(value: Any) -> bool:
    """An integer as a driver returns one (int, or a Decimal of a DECIMAL(20, 0) key)."""
    return isinstance(value, (int, Decimal))


def _type_name(type_: Any, conn: sa.Connection) -> str:
    try:
        return str(type_.compile(dialect=conn.dialect))
    except Exception:  # an unknown reflected type cannot always be compiled back
        return repr(type_)


def _as_id(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    return value


def _first_line(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error
    text = str(original).strip()
    return text.splitlines()[0].strip() if text else type(original).__name__


def _connect_error(url: sa.URL, error: sa.exc.DBAPIError) -> TableError:
    message = _first_line(error)
    if url.password:
        message = message.replace(str(url.password), "***")
    return TableError(f"cannot connect to source database {safe_url(url)}: {message}")
