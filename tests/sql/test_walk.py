"""walk_table on SQLite, PostgreSQL and MariaDB: half-open ascending steps, one transaction per step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_spreader.sql import SourceTable, TableError, WalkSummary, walk_table

# A walk that never ends (a step that does not advance) must fail, not hang the suite.
pytestmark = pytest.mark.timeout(120)

MakeTable = Callable[..., str]
Counters = Callable[[str], dict[int, int]]


def quoted(engine: sa.Engine, name: str) -> str:
    """The test writes its own SQL, so it quotes the table name itself."""
    return engine.dialect.identifier_preparer.quote(name)


def increment(name: str) -> Callable[[sa.Connection, int, int], int]:
    """Work that adds 1 to the counter of every row of the step; returns the rows changed."""
    items = sa.table(name, sa.column("id"), sa.column("counter"))

    def work(conn: sa.Connection, lower: int, upper: int) -> int:
        assert conn.in_transaction()
        result = conn.execute(sa.update(items).where(items.c.id >= lower, items.c.id < upper)
                              .values(counter=items.c.counter + 1))
        return int(result.rowcount)

    return work


def test_a_callable_visits_every_row_exactly_once(engine: sa.Engine, make_table: MakeTable,
                                                  counters: Counters) -> None:
    name = make_table(range(1, 101))
    summary = walk_table(engine, SourceTable(name), 7, increment(name))
    assert counters(name) == {i: 1 for i in range(1, 101)}
    assert (summary.steps, summary.rows, summary.lower, summary.upper) == (15, 100, 1, 106)
    assert summary.seconds >= 0


def test_steps_are_half_open_and_ascending(engine: sa.Engine, make_table: MakeTable, counters: Counters) -> None:
    name = make_table(range(1, 11))
    calls: list[tuple[int, int]] = []
    progress: list[tuple[int, int]] = []

    def work(conn: sa.Connection, lower: int, upper: int) -> int:
        calls.append((lower, upper))
        return increment(name)(conn, lower, upper)

    summary = walk_table(engine, SourceTable(name), 3, work, on_step=lambda lo, up: progress.append((lo, up)))
    assert calls == [(1, 4), (4, 7), (7, 10), (10, 13)]
    assert progress == calls
    assert summary == WalkSummary(steps=4, rows=10, lower=1, upper=13, seconds=summary.seconds)
    assert set(counters(name).values()) == {1}


def test_an_sql_statement_with_lower_and_upper(engine: sa.Engine, make_table: MakeTable,
                                               counters: Counters) -> None:
    name = make_table(range(1, 11))
    sql = f"UPDATE {quoted(engine, name)} SET counter = counter + 1 WHERE id >= :lower AND id < :upper"
    summary = walk_table(engine, SourceTable(name), 3, sql)
    assert (summary.steps, summary.rows) == (4, 10)
    assert counters(name) == {i: 1 for i in range(1, 11)}
    # A prepared text() construct works the same way.
    summary = walk_table(engine, SourceTable(name), 4, sa.text(sql))
    assert (summary.steps, summary.rows) == (3, 10)
    assert counters(name) == {i: 2 for i in range(1, 11)}


def test_ids_with_gaps(engine: sa.Engine, make_table: MakeTable, counters: Counters) -> None:
    ids = [3, 4, 5, 50, 51, 999, 1000, 2**33]
    name = make_table(ids, big=True)
    calls: list[tuple[int, int]] = []

    def work(conn: sa.Connection, lower: int, upper: int) -> int:
        calls.append((lower, upper))
        return increment(name)(conn, lower, upper)

    summary = walk_table(engine, SourceTable(name), 2**30, work)
    assert calls == [(3 + k * 2**30, 3 + (k + 1) * 2**30) for k in range(8)]
    assert (summary.steps, summary.rows) == (8, len(ids))
    assert counters(name) == dict.fromkeys(ids, 1)


def test_a_step_bigger_than_the_table(engine: sa.Engine, make_table: MakeTable, counters: Counters) -> None:
    name = make_table(range(5, 10))
    calls: list[tuple[int, int]] = []

    def work(conn: sa.Connection, lower: int, upper: int) -> int:
        calls.append((lower, upper))
        return increment(name)(conn, lower, upper)

    summary = walk_table(engine, SourceTable(name), 1000, work)
    assert calls == [(5, 1005)]
    assert (summary.steps, summary.rows, summary.lower, summary.upper) == (1, 5, 5, 1005)
    assert set(counters(name).values()) == {1}


def test_step_of_one_visits_each_id(engine: sa.Engine, make_table: MakeTable) -> None:
    name = make_table([7, 8, 10])
    calls: list[tuple[int, int]] = []
    walk_table(engine, SourceTable(name), 1, lambda conn, lo, up: calls.append((lo, up)))
    assert calls == [(7, 8), (8, 9), (9, 10), (10, 11)]


@pytest.mark.parametrize("step", [0, -3, True, 2.5, "3"])
def test_an_invalid_step_is_rejected_before_any_work(engine: sa.Engine, make_table: MakeTable,
                                                     step: Any) -> None:
    name = make_table(range(1, 4))
    calls: list[int] = []
    with pytest.raises(ValueError, match=f"step must be an int >= 1, got {step!r}"):
        walk_table(engine, SourceTable(name), step, lambda conn, lo, up: calls.append(lo))
    assert calls == []


def test_a_failing_step_keeps_earlier_steps_and_rolls_itself_back(
    engine: sa.Engine, make_table: MakeTable, counters: Counters
) -> None:
    name = make_table(range(1, 11))
    done: list[tuple[int, int]] = []

    def work(conn: sa.Connection, lower: int, upper: int) -> int:
        rows = increment(name)(conn, lower, upper)
        if lower == 7:
            raise RuntimeError("boom in step 3")
        return rows

    with pytest.raises(RuntimeError, match="boom in step 3") as raised:
        walk_table(engine, SourceTable(name), 3, work, on_step=lambda lo, up: done.append((lo, up)))
    assert done == [(1, 4), (4, 7)]
    assert counters(name) == {**{i: 1 for i in range(1, 7)}, **{i: 0 for i in range(7, 11)}}
    notes = getattr(raised.value, "__notes__", None)
    if notes is not None:  # Python >= 3.11 says where to resume
        assert any("resume with min_id=7" in note for note in notes)
    # Resuming from the failed step finishes the walk, every row exactly once.
    walk_table(engine, SourceTable(name), 3, increment(name), min_id=7)
    assert counters(name) == {i: 1 for i in range(1, 11)}


def test_a_failing_sql_step_is_rolled_back(engine: sa.Engine, make_table: MakeTable, counters: Counters) -> None:
    name = make_table(range(1, 11))
    # Row 8 fails the third step (7..9) with a NOT NULL violation, after row 7 was updated.
    sql = (f"UPDATE {quoted(engine, name)} SET counter = CASE WHEN id = 8 THEN NULL ELSE counter + 1 END "
           "WHERE id >= :lower AND id < :upper")
    with pytest.raises(sa.exc.DBAPIError):
        walk_table(engine, SourceTable(name), 3, sql)
    assert counters(name) == {**{i: 1 for i in range(1, 7)}, **{i: 0 for i in range(7, 11)}}


def test_an_empty_table_takes_no_step(engine: sa.Engine, make_table: MakeTable) -> None:
    calls: list[int] = []
    summary = walk_table(engine, SourceTable(make_table()), 10, lambda conn, lo, up: calls.append(lo))
    assert calls == []
    assert (summary.steps, summary.rows, summary.lower, summary.upper) == (0, 0, None, None)


def test_an_unknown_table_runs_no_work(engine: sa.Engine, make_table: MakeTable) -> None:
    canary = make_table([1])
    calls: list[int] = []
    with pytest.raises(TableError, match=r"^table 't; DROP TABLE x; --' not found in "):
        walk_table(engine, SourceTable("t; DROP TABLE x; --"), 10, lambda conn, lo, up: calls.append(lo))
    with pytest.raises(TableError, match="key column 'nope' not found"):
        walk_table(engine, SourceTable(canary, key="nope"), 10, lambda conn, lo, up: calls.append(lo))
    assert calls == []


def test_explicit_bounds_stop_at_max_id(engine: sa.Engine, make_table: MakeTable, counters: Counters) -> None:
    name = make_table(range(1, 11))
    calls: list[tuple[int, int]] = []

    def work(conn: sa.Connection, lower: int, upper: int) -> int:
        calls.append((lower, upper))
        return increment(name)(conn, lower, upper)

    summary = walk_table(engine, SourceTable(name), 3, work, min_id=4, max_id=8)
    assert calls == [(4, 7), (7, 9)]  # the last step is cut at max_id + 1
    assert (summary.lower, summary.upper, summary.rows) == (4, 9, 5)
    assert counters(name) == {i: 1 if 4 <= i <= 8 else 0 for i in range(1, 11)}
    assert walk_table(engine, SourceTable(name), 3, work, min_id=9, max_id=8).steps == 0


def test_row_counts_unknown_when_work_does_not_say(engine: sa.Engine, make_table: MakeTable) -> None:
    name = make_table(range(1, 6))
    items = sa.table(name, sa.column("id"), sa.column("counter"))
    assert walk_table(engine, SourceTable(name), 2, lambda conn, lo, up: None).rows is None
    # A returned result counts its rowcount.
    summary = walk_table(engine, SourceTable(name), 2, lambda conn, lo, up: conn.execute(
        sa.update(items).where(items.c.id >= lo, items.c.id < up).values(counter=items.c.counter + 1)))
    assert summary.rows == 5


def test_malformed_work_is_rejected_before_any_query(make_table: MakeTable, engine: sa.Engine) -> None:
    name = make_table([1])
    with pytest.raises(ValueError, match="missing :upper"):
        walk_table(engine, SourceTable(name), 10, f"UPDATE {quoted(engine, name)} SET counter = 1 WHERE id >= :lower")
    with pytest.raises(ValueError, match="missing :lower, :upper in"):
        walk_table(engine, SourceTable(name), 10, f"UPDATE {quoted(engine, name)} SET counter = 1")
    with pytest.raises(TypeError, match="work must be a callable"):
        walk_table(engine, SourceTable(name), 10, 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="min_id must be an int"):
        walk_table(engine, SourceTable(name), 10, lambda conn, lo, up: None, min_id="1")  # type: ignore[arg-type]


def test_an_unreachable_database_runs_no_work() -> None:
    engine = sa.create_engine("postgresql+psycopg2://postgres:hunter2@127.0.0.1:1/test",
                              connect_args={"connect_timeout": 5})
    calls: list[int] = []
    with pytest.raises(TableError, match=r"^cannot connect to source database postgresql\+psycopg2://postgres@"):
        walk_table(engine, SourceTable("items"), 10, lambda conn, lo, up: calls.append(lo))
    assert calls == []
    engine.dispose()
