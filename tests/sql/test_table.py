"""SourceTable on SQLite, PostgreSQL and MariaDB: bounds, validation messages, and identifier quoting."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from airflow_spreader.core.keys import TEXT_MIN, TEXT_TOP
from airflow_spreader.sql import SourceTable, TableBounds, TableError, inspect_table, range_clause, sa_table
from airflow_spreader.state.tracker import Tracker
from tests.conftest import MARIADB_URL, POSTGRES_URL

MakeTable = Callable[..., str]
T = datetime.fromtimestamp(1_800_000_000, tz=timezone.utc)



def default_schema(engine: sa.Engine) -> str:
    """The schema unqualified names live in: main, public, or the MariaDB database."""
    return {"sqlite": "main", "postgresql": "public"}.get(engine.dialect.name) or str(engine.url.database)


def fresh(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def table_names(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_bounds_of_a_table(engine: sa.Engine, make_table: MakeTable) -> None:
    name = make_table(range(3, 11))
    assert inspect_table(engine, SourceTable(name)) == TableBounds(3, 10)
    assert not inspect_table(engine, SourceTable(name)).is_empty
    assert inspect_table(engine, SourceTable(name)).id_span == 8


def test_bounds_of_an_empty_table(engine: sa.Engine, make_table: MakeTable) -> None:
    bounds = inspect_table(engine, SourceTable(make_table()))
    assert bounds == TableBounds(None, None)
    assert bounds.is_empty
    assert bounds.id_span == 0


def test_bounds_of_a_table_with_gaps_and_big_ids(engine: sa.Engine, make_table: MakeTable) -> None:
    name = make_table([2, 50, 1000, 2**40 + 7], big=True)
    bounds = inspect_table(engine, SourceTable(name))
    assert bounds == TableBounds(2, 2**40 + 7)
    assert type(bounds.min_id) is int and type(bounds.max_id) is int


def test_bounds_through_an_open_connection_see_its_own_rows(engine: sa.Engine, make_table: MakeTable) -> None:
    name = make_table([5])
    with engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {conn.dialect.identifier_preparer.quote(name)} (id, counter) "
                             "VALUES (9, 0)"))
        assert inspect_table(conn, SourceTable(name)) == TableBounds(5, 9)
        assert conn.in_transaction()  # the caller's transaction is left alone


def test_a_schema_qualified_name(engine: sa.Engine, make_table: MakeTable) -> None:
    name = make_table([4, 8])
    qualified = SourceTable(f"{default_schema(engine)}.{name}")
    assert (qualified.schema, qualified.table_name) == (default_schema(engine), name)
    assert inspect_table(engine, qualified) == TableBounds(4, 8)


@pytest.mark.postgres
def test_a_table_in_another_schema_on_postgres() -> None:
    engine = sa.create_engine(POSTGRES_URL)
    schema, name = fresh("spreader_schema"), fresh("Items")  # mixed case: only found when quoted
    try:
        with engine.begin() as conn:
            conn.execute(sa.schema.CreateSchema(schema))
            table = sa.Table(name, sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), schema=schema)
            table.create(conn)
            conn.execute(table.insert(), [{"id": 6}, {"id": 60}])
        assert inspect_table(engine, SourceTable(f"{schema}.{name}")) == TableBounds(6, 60)
        with pytest.raises(TableError, match="not found"):
            inspect_table(engine, SourceTable(name))  # not on the search_path
        with pytest.raises(TableError, match="not found"):
            inspect_table(engine, SourceTable(f"{schema}.{name.lower()}"))
    finally:
        with engine.begin() as conn:
            conn.execute(sa.schema.DropSchema(schema, cascade=True, if_exists=True))
        engine.dispose()


def test_a_missing_schema_is_a_missing_table(engine: sa.Engine, make_table: MakeTable) -> None:
    name = make_table([1])
    with pytest.raises(TableError, match=rf"^table 'no_such_schema\.{name}' not found in "):
        inspect_table(engine, SourceTable(f"no_such_schema.{name}"))


def test_a_missing_table_names_the_table_and_the_database(engine: sa.Engine) -> None:
    with pytest.raises(TableError) as raised:
        inspect_table(engine, SourceTable("t; DROP TABLE x; --"))
    assert str(raised.value) == f"table 't; DROP TABLE x; --' not found in {engine.url.render_as_string()}"


@pytest.mark.parametrize("template", [
    "t; DROP TABLE {canary}; --",
    't"; DROP TABLE {canary}; --',
    "t`; DROP TABLE {canary}; --",
    "t'; DROP TABLE {canary}; --",
    "{canary}; DROP TABLE {canary}",
    "{canary}` WHERE 1=0; DROP TABLE `{canary}",
], ids=["plain", "double-quote", "backtick", "single-quote", "suffix", "backtick-suffix"])
def test_injected_names_are_unknown_tables_and_run_nothing(
    engine: sa.Engine, make_table: MakeTable, template: str
) -> None:
    canary = make_table([1, 2], name=fresh("canary"))
    evil = SourceTable(template.format(canary=canary))
    with pytest.raises(TableError, match=r"^table .* not found in "):
        inspect_table(engine, evil)
    with pytest.raises(TableError, match=r"not found in table"):
        inspect_table(engine, SourceTable(canary, key=f"id FROM {canary}; DROP TABLE {canary}; --"))
    # The helpers quote too: running them against the evil name fails as a missing table.
    with pytest.raises(sa.exc.DBAPIError), engine.begin() as conn:
        conn.execute(sa.select(sa_table(evil).c.id).where(range_clause(evil, 1, 2)))
    assert canary in table_names(engine)
    assert inspect_table(engine, SourceTable(canary)) == TableBounds(1, 2)


def test_a_text_key_that_is_not_a_uuid_is_bounded_by_handles_and_its_top_text(
        engine: sa.Engine, tables: sa.MetaData) -> None:
    table = sa.Table(fresh("codes"), tables, sa.Column("code", sa.String(40), primary_key=True),
                     sa.Column("label", sa.Text))
    table.create(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"code": "AB-1"}, {"code": "ZZ-9"},
                                      {"code": "0190c8a4-7e1f-4c7b-9a44-3f2d1e0b5a6c"}])
    assert inspect_table(engine, SourceTable(table.name, key="code")) == TableBounds(TEXT_MIN, TEXT_TOP, "ZZ-9")


def test_a_key_neither_integer_nor_uuid_names_its_type(engine: sa.Engine, tables: sa.MetaData) -> None:
    table = sa.Table(fresh("stamps"), tables, sa.Column("at", sa.DateTime, primary_key=True))
    table.create(engine)
    with pytest.raises(TableError) as raised:
        inspect_table(engine, SourceTable(table.name, key="at"))
    assert str(raised.value).startswith(f"key column 'at' of table '{table.name}' has type ")
    assert str(raised.value).endswith("neither an integer nor a UUID type (uuid, CHAR(36)/text, BINARY(16)): id "
                                      "ranges need one")


@pytest.mark.parametrize("column_type, accepted", [
    (sa.SmallInteger(), True),
    (sa.BigInteger(), True),
    (sa.Numeric(20, 0), True),
    (sa.Numeric(10, 2), False),
    (sa.Float(), False),
    (sa.DateTime(), False),
], ids=["smallint", "bigint", "numeric-20-0", "numeric-10-2", "float", "datetime"])
def test_which_key_types_are_integers(
    engine: sa.Engine, tables: sa.MetaData, column_type: sa.types.TypeEngine[object], accepted: bool
) -> None:
    table = sa.Table(fresh("typed"), tables, sa.Column("pk", sa.Integer, primary_key=True),
                     sa.Column("k", column_type))
    table.create(engine)
    if accepted:
        with engine.begin() as conn:
            conn.execute(table.insert(), [{"pk": 1, "k": 7}, {"pk": 2, "k": 12}])
        bounds = inspect_table(engine, SourceTable(table.name, key="k"))
        assert bounds == TableBounds(7, 12) and type(bounds.max_id) is int
    else:
        with pytest.raises(TableError, match=r"^key column 'k' of table '.*' has type .*, neither an integer nor"):
            inspect_table(engine, SourceTable(table.name, key="k"))


def test_a_missing_key_column_lists_the_columns(engine: sa.Engine, make_table: MakeTable) -> None:
    name = make_table([1])
    with pytest.raises(TableError) as raised:
        inspect_table(engine, SourceTable(name, key="item_id"))
    assert str(raised.value) == f"key column 'item_id' not found in table '{name}'; its columns are: id, counter"


@pytest.mark.parametrize("url, shown", [
    ("postgresql+psycopg2://spreader:s3cr3t-pw@127.0.0.1:1/test", "postgresql+psycopg2://spreader@127.0.0.1:1/test"),
    ("mysql+pymysql://spreader:s3cr3t-pw@127.0.0.1:1/test", "mysql+pymysql://spreader@127.0.0.1:1/test"),
    ("sqlite:////nonexistent-dir-spreader/source.db", "sqlite:////nonexistent-dir-spreader/source.db"),
], ids=["postgres", "mariadb", "sqlite"])
def test_an_unreachable_database_is_one_clear_line_without_the_password(url: str, shown: str) -> None:
    engine = sa.create_engine(url, connect_args={"connect_timeout": 5} if "127.0.0.1" in url else {})
    with pytest.raises(TableError) as raised:
        inspect_table(engine, SourceTable("items"))
    message = str(raised.value)
    assert message.startswith(f"cannot connect to source database {shown}: ")
    assert len(message) > len(f"cannot connect to source database {shown}: ") + 3
    assert "\n" not in message
    assert "s3cr3t" not in message and "***" not in message
    assert isinstance(raised.value.__cause__, sa.exc.DBAPIError)
    engine.dispose()


def test_source_table_is_a_frozen_value() -> None:
    table = SourceTable("public.items")
    assert table == SourceTable("public.items", "id")
    assert hash(table) == hash(SourceTable("public.items"))
    assert (table.schema, table.table_name, table.key) == ("public", "items", "id")
    assert (SourceTable("items").schema, SourceTable("items").table_name) == (None, "items")
    with pytest.raises(dataclasses.FrozenInstanceError):
        table.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize("name, key", [("", "id"), ("  ", "id"), ("items", ""), ("public.", "id")])
def test_blank_names_are_rejected(name: str, key: str) -> None:
    with pytest.raises(TableError, match="non-empty string"):
        SourceTable(name, key)


@pytest.mark.parametrize("dialect, expected", [
    (postgresql.dialect, 'FROM public."Items; DROP TABLE x" WHERE public."Items; DROP TABLE x"."Key" BETWEEN'),
    (mysql.dialect, "FROM public.`Items; DROP TABLE x` WHERE public.`Items; DROP TABLE x`.`Key` BETWEEN"),
    (sqlite.dialect, 'FROM public."Items; DROP TABLE x" WHERE public."Items; DROP TABLE x"."Key" BETWEEN'),
], ids=["postgres", "mariadb", "sqlite"])
def test_helpers_quote_identifiers_and_bind_the_ids(dialect: Callable[[], sa.Dialect], expected: str) -> None:
    table = SourceTable("public.Items; DROP TABLE x", key="Key")
    statement: sa.Select[Any] = (sa.select(sa.literal_column("1")).select_from(sa_table(table))
                                 .where(range_clause(table, 10, 19)))
    compiled = statement.compile(dialect=dialect())
    assert expected in " ".join(str(compiled).split())
    assert "10" not in str(compiled) and sorted(compiled.params.values()) == [10, 19]


def test_range_clause_is_inclusive(engine: sa.Engine, make_table: MakeTable) -> None:
    name = make_table(range(1, 11))
    table = SourceTable(name)
    with engine.connect() as conn:
        ids = conn.execute(sa.select(sa_table(table).c.id).where(range_clause(table, 3, 5))
                           .order_by(sa_table(table).c.id)).scalars().all()
        single = conn.execute(sa.select(sa_table(table).c.id).where(range_clause(table, 10, 10))).scalars().all()
    assert ids == [3, 4, 5]
    assert single == [10]


def test_range_clause_rejects_reversed_or_non_integer_bounds() -> None:
    with pytest.raises(ValueError, match="begin_id 5 > end_id 4"):
        range_clause(SourceTable("items"), 5, 4)
    with pytest.raises(TypeError, match="begin_id must be an int"):
        range_clause(SourceTable("items"), "1; DROP TABLE x", 4)  # type: ignore[arg-type]


@pytest.mark.parametrize("ids", [
    [-2**63, -2**63 + 1, 2**63 - 2, 2**63 - 1],  # the signed 64-bit extremes
    [-149, -50, -1, 0, 7],  # negative keys
], ids=["extremes", "negative"])
def test_64_bit_extreme_and_negative_keys_are_read_exactly(engine: sa.Engine, make_table: MakeTable,
                                                          ids: list[int]) -> None:
    bounds = inspect_table(engine, SourceTable(make_table(ids, big=True)))
    assert bounds == TableBounds(min(ids), max(ids))
    assert bounds.id_span == max(ids) - min(ids) + 1


@pytest.mark.mariadb
def test_an_unsigned_key_above_the_signed_range_is_refused_by_name() -> None:
    engine = sa.create_engine(MARIADB_URL)
    name = fresh("unsigned")
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {name} (id BIGINT UNSIGNED PRIMARY KEY)"))
        conn.execute(sa.text(f"INSERT INTO {name} (id) VALUES (1), ({2**63 + 5})"))
    try:
        with pytest.raises(TableError) as raised:
            inspect_table(engine, SourceTable(name))
        assert str(raised.value) == (
            f"key column 'id' of table {name!r} has max value {2**63 + 5}, outside the signed 64-bit range "
            f"{-2**63}..{2**63 - 1} that the backfill supports")
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {name}"))
        engine.dispose()


@pytest.mark.parametrize("ids", [
    [-2**63, -2**63 + 3, -2**63 + 40],
    [2**63 - 41, 2**63 - 5, 2**63 - 1],
    [-149, -100, -50, -1, 0, 20],
], ids=["low-extreme", "high-extreme", "negative"])
def test_the_tracker_backfills_inspected_64_bit_and_negative_keys_exactly_once(
        engine: sa.Engine, make_table: MakeTable, tracker: Tracker, ids: list[int]) -> None:
    name = make_table(ids, big=True)
    bounds = inspect_table(engine, SourceTable(name))
    assert bounds.min_id is not None and bounds.max_id is not None
    tracker.start(max_id=bounds.max_id, min_id=bounds.min_id)
    table = sa.table(name, sa.column("id"), sa.column("counter"))
    while batches := tracker.claim_cycle(batch_size=9, per_second=1, duration=4, begin_at=T,
                                         lease_seconds=600).batches:
        for batch in batches:
            assert tracker.begin(batch) == "run"
            with engine.begin() as conn:
                conn.execute(table.update().where(table.c.id.between(batch.begin_id, batch.end_id))
                             .values(counter=table.c.counter + 1))
            assert tracker.complete(batch) == "done"
    with engine.connect() as conn:
        assert dict(conn.execute(sa.select(table.c.id, table.c.counter)).tuples().all()) == dict.fromkeys(ids, 1)
    assert tracker.progress().finished and tracker.progress().ids_done == bounds.id_span
