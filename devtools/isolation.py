"""Databases of its own for one test process, so that several can share the machine's servers side by side.

Two users of it: CI's matrix legs (``.ci/isolate.py``, each leg a whole suite at once) and the workers of
``pytest -n`` (``tests/conftest.py``: ``make test`` runs the tests that need no scheduler in two workers).
Each gets afresh-created PostgreSQL and MariaDB databases and a Redis database number of its own, so that
their fixed table names and backfill namespaces never meet.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa

#: Redis databases a server has by default (``databases 16``).
REDIS_DATABASES = 16


def fresh_database(url: str, name: str) -> str:
    """``url`` pointed at database ``name``, dropped and created again on that server."""
    server = sa.make_url(url)
    engine = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            quoted = engine.dialect.identifier_preparer.quote(name)
            force = " WITH (FORCE)" if engine.dialect.name == "postgresql" else ""
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted}{force}"))
            conn.execute(sa.text(f"CREATE DATABASE {quoted}"))
    finally:
        engine.dispose()
    return server.set(database=name).render_as_string(hide_password=False)


def redis_database(url: str, db: int) -> str:
    """``url`` with its database number replaced by ``db`` (scheme, host, port, credentials, query kept)."""
    if not 0 <= db < REDIS_DATABASES:
        raise ValueError(f"Redis database {db} is out of range: a server has databases 0..{REDIS_DATABASES - 1}")
    return urlunsplit(urlsplit(url)._replace(path=f"/{db}"))


def redis_database_of(url: str) -> int:
    """The database number of a Redis URL (0 when it names none)."""
    path = urlsplit(url).path.strip("/")
    return int(path) if path.isdigit() else 0


def worker_index(worker: str) -> int:
    """The number of an xdist worker id (``gw0`` -> 0)."""
    if not worker.startswith("gw") or not worker[2:].isdigit():
        raise ValueError(f"not a pytest-xdist worker id: {worker!r} (expected gw0, gw1, ...)")
    return int(worker[2:])
