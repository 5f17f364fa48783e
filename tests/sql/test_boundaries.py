"""``"rows"`` batching's boundary query on SQLite, PostgreSQL and MariaDB: sparse, signed, gaps, edges."""

from __future__ import annotations

import itertools
import math
import random

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_spreader.core.carving import ranges_from_tops
from airflow_spreader.core.planner import IdRange
from airflow_spreader.sql.boundaries import RowCarver, check_key_indexed, read_tops, tops_statement
from airflow_spreader.sql.row_estimate import estimate_rows
from airflow_spreader.sql.table import SourceTable, TableError, inspect_table
from tests.sql.conftest import MakeTable, unique_name

#: Snowflake-style ids: milliseconds since an epoch in the high bits, a worker and a sequence below.
SNOWFLAKES = sorted({(1_700_000_000_000 + random.Random(7).randrange(10**9)) << 22 | seq
                     for seq in range(300)} | {(1_710_000_000_000 + i * 997) << 22 for i in range(200)})
SIGNED = sorted({random.Random(3 + i).randint(-2**63, 2**63 - 1) for i in range(400)} | {-2**63, 2**63 - 1, -1, 0, 1})


def expected_tops(keys: list[int], cursor: int, low: int, batch_size: int, count: int) -> list[int]:
    below = sorted((k for k in keys if low <= k <= cursor), reverse=True)[:count * batch_size + 1]
    return below[::batch_size]


def walk(engine: sa.Engine, table: SourceTable, batch_size: int, count: int) -> list[IdRange]:
    """Every range of a whole backfill, cycle after cycle, as the tracker would commit them."""
    bounds = inspect_table(engine, table)
    if bounds.min_id is None or bounds.max_id is None:
        return RowCarver(engine, table, batch_size)(0, 1, count)  # an empty table is started as 0 < 1: nothing
    carve, cursor, ranges = RowCarver(engine, table, batch_size), bounds.max_id, []
    while cursor >= bounds.min_id:
        fresh = carve(cursor, bounds.min_id, count)
        assert 1 <= len(fresh) <= count
        ranges += fresh
        cursor = fresh[-1].begin_id - 1
    return ranges


def assert_partition(keys: list[int], ranges: list[IdRange], batch_size: int, top: int, bottom: int) -> None:
    """Contiguous from ``top`` to ``bottom``, every key in exactly one range, at most batch_size rows each."""
    assert ranges[0].end_id == top and ranges[-1].begin_id == bottom
    assert all(a.begin_id == b.end_id + 1 for a, b in itertools.pairwise(ranges))
    held = [[k for k in keys if r.begin_id <= k <= r.end_id] for r in ranges]
    assert sorted(k for part in held for k in part) == sorted(keys)
    assert all(1 <= len(part) <= batch_size for part in held)
    assert len(ranges) == math.ceil(len(keys) / batch_size)


@pytest.mark.parametrize("keys", [SNOWFLAKES, SIGNED], ids=["snowflake", "signed"])
def test_tops_are_every_batch_sizeth_key_down_from_the_cursor(engine: sa.Engine, make_table: MakeTable,
                                                              keys: list[int]) -> None:
    table = SourceTable(make_table(keys, big=True))
    for cursor, batch_size, count in [(keys[-1], 7, 5), (keys[250], 1, 3), (keys[-1] - 1, 50, 20), (keys[9], 4, 2)]:
        tops = read_tops(engine, table, below=cursor, above=keys[0], batch_size=batch_size, count=count)
        assert tops == expected_tops(keys, cursor, keys[0], batch_size, count)
        assert len(tops) <= count + 1


def test_a_boundary_exactly_at_the_cursor_and_gaps_between_batches(engine: sa.Engine, make_table: MakeTable) -> None:
    keys = [1, 2, 3, 1000, 1001, 1002, 10**6, 10**6 + 1, 10**6 + 2, 5 * 10**9]
    table = SourceTable(make_table(keys, big=True))
    carve = RowCarver(engine, table, 3)
    # The cursor sits on a key: the first range ends there; the empty gaps belong to the range above them.
    assert carve(10**6 + 2, 1, 2) == [IdRange(1003, 10**6 + 2), IdRange(4, 1002)]
    # Above the highest key the first range still starts at the cursor: nothing between is left out.
    assert carve(6 * 10**9, 1, 1) == [IdRange(10**6 + 1, 6 * 10**9)]  # 5e9, 10**6+2, 10**6+1


def test_fewer_rows_than_a_cycle_reach_down_to_the_bottom(engine: sa.Engine, make_table: MakeTable) -> None:
    table = SourceTable(make_table([-50, -7, 3, 40, 41]))
    assert RowCarver(engine, table, 2)(100, -80, 10) == [IdRange(4, 100), IdRange(-49, 3), IdRange(-80, -50)]
    assert RowCarver(engine, table, 5)(41, -50, 1) == [IdRange(-50, 41)]  # exactly one full batch: finished


def test_an_empty_table_or_nothing_below_the_cursor_gives_one_range_to_the_bottom(
        engine: sa.Engine, make_table: MakeTable) -> None:
    empty = SourceTable(make_table([]))
    assert read_tops(engine, empty, below=10, above=1, batch_size=5, count=3) == []
    assert RowCarver(engine, empty, 5)(10, 1, 3) == [IdRange(1, 10)]
    assert walk(engine, empty, 5, 3) == []
    table = SourceTable(make_table([500]))
    assert RowCarver(engine, table, 5)(499, 100, 3) == [IdRange(100, 499)]  # the walk ends in one batch


@pytest.mark.parametrize("batch_size, count", [(1, 1), (3, 4), (10, 7), (64, 2)])
def test_a_whole_walk_partitions_sparse_signed_keys(engine: sa.Engine, make_table: MakeTable,
                                                    batch_size: int, count: int) -> None:
    keys = SIGNED
    table = SourceTable(make_table(keys, big=True))
    ranges = walk(engine, table, batch_size, count)
    assert_partition(keys, ranges, batch_size, keys[-1], keys[0])


def test_the_query_reads_only_the_key_and_quotes_the_names(engine: sa.Engine, tables: sa.MetaData) -> None:
    name = unique_name("Odd Name")
    odd = sa.Table(name, tables, sa.Column("Key Col", sa.BigInteger, primary_key=True, autoincrement=False),
                   sa.Column("payload", sa.Text))
    odd.create(engine)
    with engine.begin() as conn:
        conn.execute(odd.insert(), [{"Key Col": k, "payload": "x"} for k in (5, 9, 12)])
    table = SourceTable(name, "Key Col")
    assert read_tops(engine, table, below=12, above=0, batch_size=2, count=5) == [12, 5]
    compiled = str(tops_statement(table, below=12, above=0, batch_size=2, count=5).compile(engine))
    assert "payload" not in compiled and "*" not in compiled.replace("count *", "")


def test_a_key_without_an_index_is_refused_naming_the_column(engine: sa.Engine, tables: sa.MetaData) -> None:
    plain = sa.Table(unique_name(), tables, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("seq", sa.BigInteger), sa.Column("code", sa.BigInteger))
    sa.Index(f"ix_{plain.name}_code", plain.c.code)
    plain.create(engine)
    with pytest.raises(TableError, match=r"key column 'seq' of table .* has no index.*allow_unindexed_key"):
        check_key_indexed(engine, SourceTable(plain.name, "seq"))
    check_key_indexed(engine, SourceTable(plain.name, "id"))  # the primary key
    check_key_indexed(engine, SourceTable(plain.name, "code"))  # a plain index


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.sets(st.integers(-2**63, 2**63 - 1), max_size=60).map(sorted),
       batch_size=st.integers(1, 9), count=st.integers(1, 6))
def test_batches_partition_the_keys_exactly(keys: list[int], batch_size: int, count: int) -> None:
    """Property, on a real SQLite table: the ranges of a whole walk hold each key once, <= batch_size each."""
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        if keys:
            conn.execute(sa.text("INSERT INTO t (id) VALUES (:id)"), [{"id": k} for k in keys])
    ranges = walk(engine, SourceTable("t"), batch_size, count)
    if keys:
        assert_partition(keys, ranges, batch_size, keys[-1], keys[0])
    else:
        assert ranges == []
    engine.dispose()


@given(tops=st.lists(st.integers(0, 30), max_size=12).map(lambda t: sorted(t, reverse=True)),
       count=st.integers(1, 5))
def test_repeated_tops_of_a_key_that_is_not_unique_still_cover_the_cursor_to_the_next(tops: list[int],
                                                                                     count: int) -> None:
    tops = tops[:count + 1]
    ranges = ranges_from_tops(30, 0, tops, count)
    assert ranges[0].end_id == 30 and 1 <= len(ranges) <= count
    assert all(a.begin_id == b.end_id + 1 for a, b in itertools.pairwise(ranges))
    if len(tops) <= count:
        assert ranges[-1].begin_id == 0
    else:  # the rows of the last top read are all left to the next cycle, or all taken now
        assert ranges[-1].begin_id in (tops[-1] + 1, tops[-1])


def test_a_composite_primary_key_without_a_key_is_refused_listing_its_columns(engine: sa.Engine,
                                                                              tables: sa.MetaData) -> None:
    pair = sa.Table(unique_name(), tables, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                    sa.Column("part", sa.Integer, primary_key=True, autoincrement=False))
    pair.create(engine)
    with pytest.raises(TableError, match=r"composite primary key \(id, part\) and no key= was given.*key='id'"):
        inspect_table(engine, SourceTable(pair.name, explicit_key=False))
    assert inspect_table(engine, SourceTable(pair.name, "id")).is_empty  # a key named explicitly is walked


def test_the_rows_estimate_comes_from_the_statistics_or_a_count(engine: sa.Engine, make_table: MakeTable) -> None:
    table = SourceTable(make_table(SIGNED, big=True))
    assert estimate_rows(engine, SourceTable(make_table([]))) == 0
    if engine.dialect.name == "sqlite":
        assert estimate_rows(engine, table) == len(SIGNED)  # no statistics: counted
        return
    with engine.begin() as conn:  # what autovacuum / InnoDB's background statistics would do
        conn.execute(sa.text(f"ANALYZE {'TABLE ' if engine.dialect.name != 'postgresql' else ''}{table.name}"))
    assert abs(estimate_rows(engine, table) - len(SIGNED)) <= len(SIGNED) // 2


def test_rows_inserted_below_the_cursor_in_ranges_not_yet_planned_are_visited(engine: sa.Engine,
                                                                             make_table: MakeTable) -> None:
    keys = [10, 20, 30, 40, 50, 60]
    name = make_table(keys)
    table = SourceTable(name)
    carve = RowCarver(engine, table, 2)
    first = carve(60, 10, 1)
    assert first == [IdRange(41, 60)]
    late = [15, 35, 39]  # inserted after the first cycle, below its cursor
    with engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {name} (id, counter) VALUES (:id, 0)"), [{"id": k} for k in late])
    rest, cursor = [], first[-1].begin_id - 1
    while cursor >= 10:
        rest += carve(cursor, 10, 2)
        cursor = rest[-1].begin_id - 1
    assert_partition(sorted([10, 20, 30, 40, *late]), rest, 2, 40, 10)
