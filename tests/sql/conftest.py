"""Source tables on real databases: SQLite in tmp_path, and the PostgreSQL and MariaDB servers.

The servers are shared by concurrent test runs, so every table gets a unique name and is dropped
afterwards. An unreachable server fails the test: it is never skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import MARIADB_URL, POSTGRES_URL

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
]

#: make_table(ids, name=None) -> the new table's name, with columns id (integer primary key) and counter.
MakeTable = Callable[..., str]


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
