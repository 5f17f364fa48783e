"""UUID keys on SQLite, PostgreSQL and MariaDB: the boundary walk partitions the rows, the ledger holds them."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_spreader.core.keys import form_of, from_key, to_key
from airflow_spreader.sql.boundaries import RowCarver
from airflow_spreader.sql.ledger import Ledger, LedgerKey, RangeAlreadyDone
from airflow_spreader.sql.table import SourceTable, TableError, inspect_table
from tests.sql.conftest import KeyedTable, unique_name
from tests.sql.test_boundaries import assert_partition, walk

_RNG = random.Random(9)
KEYS = sorted({uuid.UUID(int=_RNG.getrandbits(128), version=4) for _ in range(140)}
              | {uuid.UUID(int=i) for i in (0, 1, 2**128 - 1)} | {uuid.UUID(int=0xABC << 64 | i) for i in range(7)})
#: Per backend, the UUID column types (SQL) and how a key is stored in them; a collation that orders
#: differently from bytes where the backend has one (PostgreSQL ICU, MariaDB's default case-insensitive one).
COLUMNS: dict[str, list[tuple[str, Callable[[uuid.UUID], Any]]]] = {
    "sqlite": [("TEXT", str), ("TEXT", lambda k: str(k).upper())],
    "postgresql": [("UUID", str), ('TEXT COLLATE "en-x-icu"', str)],
    "mysql": [("CHAR(36)", str), ("CHAR(36)", lambda k: str(k).upper()), ("BINARY(16)", lambda k: k.bytes)],
}


@pytest.fixture
def uuid_tables(keyed_table: KeyedTable) -> Callable[[str, Callable[[uuid.UUID], Any]], SourceTable]:
    return lambda column, store: keyed_table(column, [store(k) for k in KEYS], "uuids")


def stored_images(engine: sa.Engine, table: SourceTable) -> list[int]:
    with engine.connect() as conn:
        values = list(conn.execute(sa.text(f"SELECT id FROM {table.name}")).scalars())
    form = form_of(max(from_key(v) for v in values))  # a UUID with no letters reads in either case
    return [from_key(v, form) for v in values]


@pytest.mark.parametrize("batch_size, count", [(1, 200), (7, 4), (64, 3)])
def test_a_whole_walk_of_a_uuid_key_partitions_its_rows_in_every_column_type(
        engine: sa.Engine, uuid_tables: Callable[..., SourceTable], batch_size: int, count: int) -> None:
    for column, store in COLUMNS[engine.dialect.name]:
        table = uuid_tables(column, store)
        images = stored_images(engine, table)
        ranges = walk(engine, table, batch_size, count)
        assert_partition(images, ranges, batch_size, max(images), min(images))
        with engine.connect() as conn:  # each range's own SQL holds the rows the images say, in its collation
            held = sum(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table.name} WHERE id BETWEEN :b AND :e"),
                                    {"b": to_key(r.begin_id), "e": to_key(r.end_id)}).scalar_one() for r in ranges)
        assert held == len(KEYS), column


def test_the_bounds_of_a_uuid_key_are_its_images_and_mixed_forms_are_refused(
        engine: sa.Engine, uuid_tables: Callable[..., SourceTable]) -> None:
    column, store = COLUMNS[engine.dialect.name][0]
    table = uuid_tables(column, store)
    bounds = inspect_table(engine, table)
    assert bounds.min_id is not None and bounds.max_id is not None
    assert (bounds.min_id, bounds.max_id) == (min(stored_images(engine, table)), max(stored_images(engine, table)))
    if engine.dialect.name != "postgresql":  # a uuid column has one form; text may mix them
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {table.name} SET id = :upper WHERE id = :lower"),
                         {"upper": str(max(KEYS)).upper() if column != "BINARY(16)" else "short",
                          "lower": store(max(KEYS))})
        with pytest.raises(TableError, match=f"key column 'id' of table '{table.name}' has a value: key value "):
            RowCarver(engine, table, 1)(bounds.max_id, bounds.min_id, len(KEYS))  # every key is a top


def test_the_done_ledger_of_uuid_ranges_holds_them_exactly_and_runs_a_range_once(engine: sa.Engine) -> None:
    ledger = Ledger(unique_name("ledger"), wide=True)
    ledger.ensure(engine)
    try:
        low, high = sorted(from_key(k.bytes) for k in KEYS[:2])
        key = LedgerKey("uuid_backfill", "g1", low, high)
        seen: list[tuple[int, int]] = []
        with engine.begin() as conn:
            assert ledger.run(conn, key, lambda b, e: seen.append((b, e)) or 3) == 3
        with engine.begin() as conn:
            wider = LedgerKey("uuid_backfill", "g1", low - 5, high)
            assert ledger.run(conn, wider, lambda b, e: seen.append((b, e)) or 1) == 1
        assert seen == [(low, high), (low - 5, low - 1)]  # only the uncovered sub-range ran the second time
        with pytest.raises(RangeAlreadyDone) as done, engine.begin() as conn:
            ledger.run(conn, wider, lambda b, e: seen.append((b, e)) or 1)
        assert done.value.rows == 4 and len(seen) == 2
        with engine.connect() as conn:  # the bounds as zero-padded text, exact
            stored = conn.execute(sa.select(ledger.table.c.begin_id, ledger.table.c.end_id)).all()
        assert sorted((int(b), int(e)) for b, e in stored) == [(low - 5, low - 1), (low, high)]
    finally:
        ledger.table.drop(engine, checkfirst=True)
