"""Source tables on real databases: SQLite in tmp_path, and the PostgreSQL and MariaDB servers.

The servers are shared by concurrent test runs, so every table gets a unique name and is dropped
afterwards. An unreachable server fails the test: it is never skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_spreader.sql.ledger import Ledger
from airflow_spreader.sql.table import SourceTable
from tests.conftest import MARIADB_URL, POSTGRES_URL

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
]

#: make_table(ids, name=None) -> the new table's name, with columns id (integer primary key) and counter.
MakeTable = Callable[..., str]
#: keyed_table(column_type, keys, prefix) -> a new table: id of that SQL type (primary key) holding ``keys``,
#: and counter 0 for each.
KeyedTable = Callable[..., SourceTable]


def unique_name(prefix: str = "items") -> str:
    """Tables are unique per test: several runs may share a server."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def backend_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'source.db'}"
    return POSTGRES_URL if backend == "postgres" else MARIADB_URL


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    url = backend_url(request.param, tmp_path)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as error:
        engine.dispose()
        pytest.fail(f"{request.param} server at {sa.make_url(url).render_as_string()} is unreachable: {error}")
    yield engine
    engine.dispose()


@pytest.fixture
def tables(engine: sa.Engine) -> Iterator[sa.MetaData]:
    """Tables created on ``engine`` by a test; all dropped at teardown."""
    metadata = sa.MetaData()
    yield metadata
    metadata.drop_all(engine, checkfirst=True)


@pytest.fixture
def make_table(engine: sa.Engine, tables: sa.MetaData) -> MakeTable:
    def make(ids: Iterable[int] = (), name: str | None = None, big: bool = False) -> str:
        table = sa.Table(
            name or unique_name(), tables,
            sa.Column("id", sa.BigInteger if big else sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("counter", sa.Integer, nullable=False, server_default="0"),
        )
        table.create(engine)
        rows = [{"id": i, "counter": 0} for i in ids]
        if rows:
            with engine.begin() as conn:
                conn.execute(table.insert(), rows)
        return table.name

    return make


@pytest.fixture
def counters(engine: sa.Engine) -> Callable[[str], dict[int, int]]:
    """counters(name) -> {id: counter} of every row of table ``name``."""
    def read(name: str) -> dict[int, int]:
        table = sa.table(name, sa.column("id"), sa.column("counter"))
        with engine.connect() as conn:
            return {int(i): int(c) for i, c in conn.execute(sa.select(table.c.id, table.c.counter))}

    return read


@pytest.fixture
def keyed_table(engine: sa.Engine) -> Iterator[KeyedTable]:
    """Tables keyed by a column of a type the test names (UUID, text in a collation), dropped at teardown."""
    made: list[str] = []

    def make(column: str, keys: Iterable[Any], prefix: str = "keys") -> SourceTable:
        name = unique_name(prefix)
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE TABLE {name} (id {column} PRIMARY KEY, counter INTEGER NOT NULL)"))
            conn.execute(sa.text(f"INSERT INTO {name} (id, counter) VALUES (:id, 0)"), [{"id": k} for k in keys])
        made.append(name)
        return SourceTable(name)

    yield make
    with engine.begin() as conn:
        for name in made:
            conn.execute(sa.text(f"DROP TABLE {name}"))


@pytest.fixture
def ledger(engine: sa.Engine) -> Iterator[Ledger]:
    """An integer done-ledger of its own, created, dropped at teardown."""
    ledger = Ledger(unique_name("ledger"))
    ledger.ensure(engine)
    yield ledger
    ledger.table.drop(engine, checkfirst=True)
