"""The pending predicate on real databases: one query per span gives the count and the pending keys' bounds."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from airflow_spreader.sql.pending import Pending, PendingCount, PendingError, check_pending, count_pending
from airflow_spreader.sql.table import SourceTable
from tests.sql.conftest import MakeTable


def mark_done(engine: sa.Engine, name: str, ids: list[int]) -> None:
    table = sa.table(name, sa.column("id"), sa.column("counter"))
    with engine.begin() as conn:
        conn.execute(sa.update(table).where(table.c.id.in_(ids)).values(counter=1))


def test_a_where_fragment_counts_the_pending_rows_of_a_span_with_their_bounds(
        engine: sa.Engine, make_table: MakeTable) -> None:
    name = make_table(range(1, 101))
    mark_done(engine, name, [i for i in range(1, 101) if i not in (12, 17, 18, 95)])
    pending = Pending(SourceTable(name), "counter = 0")
    check_pending(engine, pending)
    assert count_pending(engine, pending, 1, 50) == PendingCount(3, 12, 18)
    assert count_pending(engine, pending, 51, 100) == PendingCount(1, 95, 95)
    assert count_pending(engine, pending, 19, 94) == PendingCount(0, None, None)


def test_a_sqlalchemy_clause_on_the_users_own_table_construct_names_one_table(
        engine: sa.Engine, make_table: MakeTable) -> None:
    name = make_table(range(1, 21))
    mark_done(engine, name, list(range(1, 11)))
    items = sa.table(name, sa.column("id"), sa.column("counter"))
    pending = Pending(SourceTable(name), items.c.counter == 0)
    check_pending(engine, pending)
    assert count_pending(engine, pending, 1, 20) == PendingCount(10, 11, 20)


@pytest.mark.parametrize("fragment", ["no_such_column IS NULL", "counter IS"])
def test_a_fragment_that_does_not_run_on_the_table_is_one_clear_error(
        engine: sa.Engine, make_table: MakeTable, fragment: str) -> None:
    name = make_table(range(1, 5))
    with pytest.raises(PendingError, match=f"pending '{fragment}' does not run on table '{name}'"):
        check_pending(engine, Pending(SourceTable(name), fragment))


@pytest.mark.parametrize("bad", ["", "  ", 42, None])
def test_a_predicate_that_is_neither_text_nor_a_clause_is_refused_at_once(bad: object) -> None:
    with pytest.raises(PendingError, match="pending must be an SQL WHERE fragment"):
        Pending(SourceTable("users"), bad)  # type: ignore[arg-type]
