"""The done-ledger when ranges are cut differently (a restore after a batch-size change), and work that commits."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_spreader.sql.ledger import Ledger, LedgerKey, RangeAlreadyDone, WorkCommitted, uncovered
from tests.sql.conftest import MakeTable, unique_name

Counters = Callable[[str], dict[int, int]]


def bump(connection: sa.Connection, table: str, begin_id: int, end_id: int) -> int:
    t = sa.table(table, sa.column("id"), sa.column("counter"))
    return connection.execute(sa.update(t).where(t.c.id.between(begin_id, end_id))
                              .values(counter=t.c.counter + 1)).rowcount


def run(engine: sa.Engine, ledger: Ledger, table: str, begin_id: int, end_id: int,
        calls: list[tuple[int, int]] | None = None) -> int | None:
    """What a batch does: one transaction, the work for each sub-range the ledger does not show done."""
    def work(begin: int, end: int) -> int:
        if calls is not None:
            calls.append((begin, end))
        return bump(connection, table, begin, end)

    with engine.begin() as connection:
        return ledger.run(connection, LedgerKey("b", "g1", begin_id, end_id), work)


def test_uncovered_sub_ranges() -> None:
    assert uncovered(801, 1000, [(801, 900)]) == [(901, 1000)]
    assert uncovered(801, 1000, [(701, 850), (901, 950)]) == [(851, 900), (951, 1000)]
    assert uncovered(801, 1000, [(1, 800), (1001, 2000)]) == [(801, 1000)]
    assert uncovered(801, 1000, [(801, 900), (901, 1000)]) == []
    assert uncovered(1, 10, []) == [(1, 10)]


def test_a_re_cut_range_runs_only_its_ids_not_yet_recorded(engine: sa.Engine, ledger: Ledger,
                                                           make_table: MakeTable, counters: Counters) -> None:
    """Issue 13.1: 801-900 committed at batch size 100; after a restore at 200, 801-1000 ran whole-skipped."""
    table = make_table(range(1, 1001))
    assert run(engine, ledger, table, 801, 900) == 100
    calls: list[tuple[int, int]] = []
    assert run(engine, ledger, table, 801, 1000, calls) == 100
    assert calls == [(901, 1000)]
    assert set(counters(table)[i] for i in range(801, 1001)) == {1}
    with pytest.raises(RangeAlreadyDone) as caught:
        run(engine, ledger, table, 801, 1000)
    assert caught.value.rows == 200, "the skip reports the rows of every sub-range recorded in it"


def test_work_that_commits_itself_fails_the_batch_and_is_not_skipped_on_retry(
        engine: sa.Engine, ledger: Ledger, make_table: MakeTable, counters: Counters) -> None:
    """Issue 13.5: the early commit must not commit a ledger row that makes the retry skip the range."""
    table = make_table(range(1, 21))

    def committing(connection: sa.Connection) -> Callable[[int, int], int]:
        def work(begin: int, end: int) -> int:
            bump(connection, table, begin, begin)
            connection.commit()
            raise RuntimeError("the rest of the work failed")
        return work

    with pytest.raises((WorkCommitted, RuntimeError)), engine.begin() as connection:
        ledger.run(connection, LedgerKey("b", "g1", 1, 10), committing(connection))
    calls: list[tuple[int, int]] = []
    assert run(engine, ledger, table, 1, 10, calls) == 10, "the retry ran the range again"
    assert calls == [(1, 10)]

    def commits_then_returns(connection: sa.Connection) -> Callable[[int, int], int]:
        def work(begin: int, end: int) -> int:
            rows = bump(connection, table, begin, end)
            connection.commit()
            return rows
        return work

    with (pytest.raises(WorkCommitted, match="the work committed the batch's transaction itself"),
          engine.begin() as connection):
        ledger.run(connection, LedgerKey("b", "g1", 11, 20), commits_then_returns(connection))
    assert run(engine, ledger, table, 11, 20) == 10, "no ledger row was committed early"


@settings(max_examples=10, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.tuples(st.integers(1, 60), st.integers(1, 25)), min_size=1, max_size=6))
def test_any_sequence_of_cuts_does_every_id_exactly_once(engine: sa.Engine, make_table: MakeTable,
                                                         counters: Counters,
                                                         cuts: list[tuple[int, int]]) -> None:
    """Ranges cut at random batch sizes from random points, some run, then all of it re-cut: once each."""
    ledger = Ledger(unique_name("ledger"))
    ledger.ensure(engine)
    try:
        table = make_table(range(1, 61))
        for top, size in cuts:
            with contextlib.suppress(RangeAlreadyDone):
                run(engine, ledger, table, max(1, top - size + 1), top)
        top = 60
        while top >= 1:  # the restore's walk from the top at a batch size of 7
            with contextlib.suppress(RangeAlreadyDone):
                run(engine, ledger, table, max(1, top - 6), top)
            top -= 7
        assert set(counters(table).values()) == {1}
    finally:
        ledger.table.drop(engine, checkfirst=True)
