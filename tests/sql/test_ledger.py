"""The done-ledger on SQLite, PostgreSQL and MariaDB: a range's work commits once, whatever runs it again."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from airflow_spreader.sql import SourceTable, TableError
from airflow_spreader.sql.ledger import Ledger, LedgerKey, RangeAlreadyDone
from tests.sql.conftest import POSTGRES_URL, MakeTable

Counters = Callable[[str], dict[int, int]]


def key(begin_id: int = 11, end_id: int = 20, generation: str = "g1") -> LedgerKey:
    return LedgerKey("users_backfill", generation, begin_id, end_id)


def bump(connection: sa.Connection, table: str, begin_id: int, end_id: int) -> int:
    t = sa.table(table, sa.column("id"), sa.column("counter"))
    return connection.execute(sa.update(t).where(t.c.id.between(begin_id, end_id))
                              .values(counter=t.c.counter + 1)).rowcount


def run_once(engine: sa.Engine, ledger: Ledger, table: str, k: LedgerKey) -> int:
    """What a batch does: the ledger row first, then the work, in one transaction."""
    with engine.begin() as connection:
        ledger.enter(connection, k)
        rows = bump(connection, table, k.begin_id, k.end_id)
        ledger.set_rows(connection, k, rows)
        return rows


def test_a_range_whose_work_committed_is_not_run_again(engine: sa.Engine, ledger: Ledger,
                                                         make_table: MakeTable, counters: Counters) -> None:
    table = make_table(range(1, 31))
    assert run_once(engine, ledger, table, key()) == 10
    with pytest.raises(RangeAlreadyDone) as caught:
        run_once(engine, ledger, table, key())
    assert caught.value.rows == 10, "the skipped run still reports the rows the first run changed"
    assert {i for i, n in counters(table).items() if n == 1} == set(range(11, 21))
    assert set(counters(table).values()) == {0, 1}


def test_work_that_rolled_back_leaves_no_mark(engine: sa.Engine, ledger: Ledger, make_table: MakeTable,
                                              counters: Counters) -> None:
    table = make_table(range(1, 31))
    with pytest.raises(ZeroDivisionError), engine.begin() as connection:
        ledger.enter(connection, key())
        bump(connection, table, 11, 20)
        _ = 1 / 0
    assert set(counters(table).values()) == {0}
    assert run_once(engine, ledger, table, key()) == 10  # the retry runs it, once
    assert sum(counters(table).values()) == 10


def test_each_generation_and_range_has_its_own_mark(engine: sa.Engine, ledger: Ledger, make_table: MakeTable,
                                                    counters: Counters) -> None:
    table = make_table(range(1, 31))
    run_once(engine, ledger, table, key(11, 20, "g1"))
    run_once(engine, ledger, table, key(21, 30, "g1"))
    run_once(engine, ledger, table, key(11, 20, "g2"))  # the backfill was reset and runs again
    other = LedgerKey("another_backfill", "g1", 11, 20)
    run_once(engine, ledger, table, other)
    counts = counters(table)
    assert [counts[i] for i in (1, 11, 21)] == [0, 3, 1]


def test_a_concurrent_holder_of_the_same_range_waits_then_skips(engine: sa.Engine, ledger: Ledger,
                                                                 make_table: MakeTable, counters: Counters) -> None:
    """A lease that expired under a slow batch gives its range to a second holder: never both commit."""
    table = make_table(range(1, 31))
    first_entered, outcome = threading.Event(), {}

    def second() -> None:
        first_entered.wait(5)
        started = time.monotonic()
        try:
            run_once(engine, ledger, table, key())
            outcome["second"] = "ran"
        except RangeAlreadyDone:
            outcome["second"] = "skipped"
        outcome["waited"] = time.monotonic() - started

    thread = threading.Thread(target=second)
    thread.start()
    with engine.begin() as connection:
        ledger.enter(connection, key())
        first_entered.set()
        bump(connection, table, 11, 20)
        time.sleep(1.0)  # the second holder is now blocked on the ledger row
    thread.join(10)
    assert outcome["second"] == "skipped"
    assert outcome["waited"] > 0.5, "the second holder did not wait for the first to commit"
    assert sum(counters(table).values()) == 10


def test_ensure_is_idempotent_and_leaves_rows_alone(engine: sa.Engine, ledger: Ledger, make_table: MakeTable) -> None:
    table = make_table(range(1, 31))
    run_once(engine, ledger, table, key())
    ledger.ensure(engine)
    with pytest.raises(RangeAlreadyDone):
        run_once(engine, ledger, table, key())


def test_ledger_names_follow_the_table_rules() -> None:
    with pytest.raises(TableError, match="table name must be a non-empty string"):
        Ledger("")
    assert Ledger("audit.spreader_ledger").table.schema == "audit"
    assert SourceTable(Ledger().name).table_name == "spreader_ledger"


@pytest.mark.postgres
def test_a_ledger_that_may_not_be_created_says_what_to_do() -> None:
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    role = f"spreader_noddl_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN"))
        conn.execute(sa.text(f"CREATE SCHEMA {role}_s"))
    limited = sa.create_engine(sa.make_url(POSTGRES_URL).set(username=role))
    try:
        with pytest.raises(TableError) as caught:
            Ledger(f"{role}_s.spreader_ledger").ensure(limited)
        message = str(caught.value)
        assert f"cannot create the ledger table '{role}_s.spreader_ledger'" in message
        assert "permission denied" in message
        assert "ledger_table=None" in message
    finally:
        limited.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {role}_s CASCADE"))
            conn.execute(sa.text(f"DROP ROLE {role}"))
        admin.dispose()
