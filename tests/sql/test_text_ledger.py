"""The text ledger on SQLite, PostgreSQL (ICU) and MariaDB (case-insensitive): a text key's ranges are recorded
by their text bounds, and a range cut otherwise (a restore with another batch size) runs each row once."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from airflow_spreader.sql.collation import column_collation
from airflow_spreader.sql.ledger import LedgerKey, RangeAlreadyDone, WorkCommitted
from airflow_spreader.sql.table import SourceTable, TableError, sa_table
from airflow_spreader.sql.text_keys import text_range_clause
from airflow_spreader.sql.text_ledger import TextLedger, TextRange, text_gaps
from tests.sql.conftest import KeyedTable, unique_name
from tests.sql.test_text_walk import KEYS as MANY_KEYS

#: Keys that collations order unlike Python: case-insensitive, accents, '_' and ' ', mixed case. Unique under
#: MariaDB's utf8mb4_general_ci (accent- and case-insensitive) too.
KEYS = ["a", "B", "c", "é", "_x", " a", "Apple", "banana", "Cherry", "d_1", "d 1", "D2", "zz", "Zy", "ä0", "e1",
        "_", "x-y", "xy", "0"]
#: Per backend: a key column type whose order is not Python's, and one in another collation (the refusal).
COLUMNS = {
    "sqlite": ("TEXT COLLATE NOCASE", "TEXT"),
    "postgresql": ('TEXT COLLATE "en-x-icu"', 'TEXT COLLATE "C"'),
    "mysql": ("VARCHAR(40)", "VARCHAR(40) COLLATE utf8mb4_bin"),
}
KEY = LedgerKey("texts_backfill", "g1", 100, 120)
Ranges = list[tuple[str | None, str]]


@pytest.fixture
def make_texts(engine: sa.Engine, keyed_table: KeyedTable) -> Callable[..., SourceTable]:
    def make(keys: list[str] = KEYS, other: bool = False) -> SourceTable:
        return keyed_table(COLUMNS[engine.dialect.name][1 if other else 0], keys, "texts")

    return make


@pytest.fixture
def ledger(engine: sa.Engine) -> Iterator[TextLedger]:
    ledger = TextLedger(unique_name("ledger"))
    yield ledger
    ledger.table.drop(engine, checkfirst=True)


def ascending(engine: sa.Engine, table: SourceTable) -> list[str]:
    """The keys in the database's order (the collation's), lowest first."""
    with engine.connect() as conn:
        return list(conn.execute(sa.text(f"SELECT id FROM {table.name} ORDER BY id")).scalars())


def cut(keys: list[str], size: int) -> Ranges:
    """The walk's ranges of ``size`` rows, top down: ``(low, high]`` by the keys in the database's order."""
    ranges: Ranges = []
    for top in range(len(keys) - 1, -1, -size):
        ranges.append((keys[top - size] if top - size >= 0 else None, keys[top]))
    return ranges


def held(engine: sa.Engine, table: SourceTable, low: str | None, high: str) -> set[str]:
    key = sa_table(table).c[table.key]
    with engine.connect() as conn:
        return set(conn.execute(sa.select(key).where(text_range_clause(table, low, high))).scalars())


class Runs:
    """Runs ranges through the ledger, each work adding 1 to its rows' counter; checks each call's bounds."""

    def __init__(self, engine: sa.Engine, ledger: TextLedger, table: SourceTable) -> None:
        self.engine, self.ledger, self.table = engine, ledger, table
        self.calls: list[tuple[str, str]] = []

    def bump(self, conn: sa.Connection, begin: str, end: str) -> int:
        self.calls.append((begin, end))
        return int(conn.execute(sa.text(f"UPDATE {self.table.name} SET counter = counter + 1 "
                                        "WHERE id >= :b AND id <= :e"), {"b": begin, "e": end}).rowcount)

    def run(self, low: str | None, high: str | None, key: LedgerKey = KEY) -> int | None:
        before = len(self.calls)
        with self.engine.begin() as conn:
            rows = self.ledger.run(conn, key, self.table, low, high, lambda b, e: self.bump(conn, b, e))
        if high is not None:
            inside = held(self.engine, self.table, low, high)
            for begin, end in self.calls[before:]:  # a gap never reaches outside the asked range
                assert {begin, end} <= inside, (low, high, begin, end)
        return rows

    def run_or_done(self, low: str | None, high: str) -> int | None:
        try:
            return self.run(low, high)
        except RangeAlreadyDone as done:
            return done.rows

    def counters(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {k: n for k, n in conn.execute(sa.text(f"SELECT id, counter FROM {self.table.name}"))}


def test_gaps_are_the_parts_between_the_recorded_ranges_in_their_order() -> None:
    assert text_gaps("b", "k", []) == [("b", "k")]
    assert text_gaps(None, "k", [TextRange("a", "c", 2), TextRange("e", "g", 1), TextRange("j", "m", 3, False)]) \
        == [(None, "a"), ("c", "e"), ("g", "j"), ("m", "k")]
    assert text_gaps("b", "k", [TextRange(None, "d", 2)]) == [("d", "k")], "no gap below 'below all'"


def test_nothing_recorded_runs_the_whole_range_once_in_the_collations_order(
        engine: sa.Engine, ledger: TextLedger, make_texts: Callable[..., SourceTable]) -> None:
    table = make_texts()
    ledger.ensure(engine, table)
    keys = ascending(engine, table)
    assert keys != sorted(KEYS), "the collation orders them unlike Python: the test can tell"
    runs = Runs(engine, ledger, table)
    assert runs.run(None, keys[9]) == 10  # below all keys: no lower bound
    assert runs.calls == [(keys[0], keys[9])]
    assert ledger.recorded(engine, KEY.backfill, KEY.generation) == [TextRange(None, keys[9], 10)]
    with pytest.raises(RangeAlreadyDone) as caught:
        runs.run(None, keys[9])
    assert caught.value.rows == 10
    assert runs.run(keys[9], keys[-1]) == 10
    assert runs.counters() == dict.fromkeys(keys, 1)


def test_a_range_cut_otherwise_runs_only_its_parts_not_recorded(
        engine: sa.Engine, ledger: TextLedger, make_texts: Callable[..., SourceTable]) -> None:
    table = make_texts()
    ledger.ensure(engine, table)
    k = ascending(engine, table)
    runs = Runs(engine, ledger, table)
    runs.run(k[2], k[5])  # rows 3-5 and 9-10 were done before the loss
    runs.run(k[8], k[10])
    assert runs.run(k[0], k[12]) == 7, "rows 1-2, 6-8 and 11-12 are left"
    assert runs.calls[2:] == [(k[1], k[2]), (k[6], k[8]), (k[11], k[12])]
    runs.run(k[15], k[17])
    assert runs.run(k[13], k[16]) == 2, "rows 14-15: recorded 16-17 overlaps it from above"
    assert runs.calls[-1] == (k[14], k[15])
    with pytest.raises(RangeAlreadyDone) as caught:  # fully covered by four recorded ranges, one reaching below
        runs.run(k[3], k[12])
    assert caught.value.rows == 3 + 3 + 2 + 2, "the rows of the recorded ranges whose high lies in it"
    assert runs.run(None, k[-1]) == 4, "rows 0, 13, 18 and 19"
    assert runs.counters() == dict.fromkeys(k, 1)
    recorded = ledger.recorded(engine, KEY.backfill, KEY.generation)
    highs = [k[i] for i in (0, 2, 5, 8, 10, 12, 13, 15, 17, 19)]
    assert [r.high for r in recorded] == highs
    assert [r.low for r in recorded] == [None, *highs[:-1]], "disjoint, and covering every row"


@pytest.mark.parametrize("first, second", [(3, 5), (7, 2), (16, 16), (10, 1)])
def test_a_restore_with_another_batch_size_does_every_row_once(
        engine: sa.Engine, ledger: TextLedger, make_texts: Callable[..., SourceTable], first: int,
        second: int) -> None:
    table = make_texts(MANY_KEYS)
    ledger.ensure(engine, table)
    keys = ascending(engine, table)
    runs = Runs(engine, ledger, table)
    before = cut(keys, first)
    for low, high in random.Random(first * second).sample(before, len(before) // 2):  # out of order, then lost
        runs.run(low, high)
    for low, high in cut(keys, second):  # the restore's new cut
        runs.run_or_done(low, high)
    assert runs.counters() == dict.fromkeys(keys, 1)
    recorded = ledger.recorded(engine, KEY.backfill, KEY.generation)
    assert sum(r.rows or 0 for r in recorded) == len(keys)
    for below, above in itertools.pairwise(recorded):  # disjoint, and each holds rows: no gap left between them
        assert above.low is not None and held(engine, table, below.high, above.low) == set()


def test_a_range_with_no_row_records_nothing_and_a_generation_has_its_own_rows(
        engine: sa.Engine, ledger: TextLedger, make_texts: Callable[..., SourceTable]) -> None:
    table = make_texts()
    ledger.ensure(engine, table)
    k = ascending(engine, table)
    runs = Runs(engine, ledger, table)
    assert runs.run(k[4], k[4]) == 0 and runs.run(None, None) == 0  # (x, x], and under "below all"
    assert runs.run(k[5], k[3]) == 0
    assert runs.calls == [] and ledger.recorded(engine, KEY.backfill, KEY.generation) == []
    assert runs.run(k[3], k[4]) == 1, "an empty range took no high of another"
    assert runs.run(k[3], k[4], LedgerKey(KEY.backfill, "g2", 1, 2)) == 1
    assert runs.counters()[k[4]] == 2


def test_the_ledger_compares_in_the_key_columns_collation_and_refuses_another(
        engine: sa.Engine, ledger: TextLedger, make_texts: Callable[..., SourceTable]) -> None:
    table, other = make_texts(), make_texts(other=True)
    ledger.ensure(engine, table)
    ledger.ensure(engine, table)  # idempotent
    wanted = column_collation(engine, table)
    assert column_collation(engine, SourceTable(ledger.table_name, "high")) == wanted
    assert column_collation(engine, SourceTable(ledger.table_name, "low")) == wanted
    with pytest.raises(TableError) as caught:
        ledger.ensure(engine, other)
    found = column_collation(engine, other)
    message = str(caught.value)
    assert f"compares in collation {wanted or '(the database default)'!r}" in message
    assert f"is in {found or '(the database default)'!r}" in message
    assert "ledger_table=" in message and f"drop {ledger.table_name}" in message


def test_the_collations_are_read_from_the_catalog(engine: sa.Engine, make_texts: Callable[..., SourceTable]) -> None:
    found = tuple(column_collation(engine, make_texts(other=o)) for o in (False, True))
    if engine.dialect.name == "mysql":  # a column declared without one has the database's
        with engine.connect() as conn:
            default = conn.execute(sa.text("SELECT @@collation_database")).scalar()
        assert found == (default, "utf8mb4_bin")
    else:
        assert found == {"sqlite": ("NOCASE", "BINARY"), "postgresql": ("en-x-icu", "C")}[engine.dialect.name]


def test_work_that_commits_the_transaction_itself_is_refused_and_records_nothing(
        engine: sa.Engine, ledger: TextLedger, make_texts: Callable[..., SourceTable]) -> None:
    table = make_texts()
    ledger.ensure(engine, table)
    k = ascending(engine, table)
    runs = Runs(engine, ledger, table)

    def committing(conn: sa.Connection, begin: str, end: str) -> int:
        rows = runs.bump(conn, begin, end)
        conn.commit()
        return rows

    with pytest.raises(WorkCommitted, match="the work committed the batch's transaction itself"), \
            engine.begin() as conn:
        ledger.run(conn, KEY, table, k[0], k[5], lambda b, e: committing(conn, b, e))
    assert ledger.recorded(engine, KEY.backfill, KEY.generation) == []
    assert runs.run(k[0], k[5]) == 5, "the retry runs it again (the early commit is done twice)"


def test_a_concurrent_holder_of_the_same_range_waits_then_skips(
        engine: sa.Engine, ledger: TextLedger, make_texts: Callable[..., SourceTable]) -> None:
    """A lease that expired under a slow batch gives its range to a second holder: never both commit."""
    table = make_texts()
    ledger.ensure(engine, table)
    k = ascending(engine, table)
    runs = Runs(engine, ledger, table)
    working, outcome = threading.Event(), {}

    def second() -> None:
        working.wait(5)
        started = time.monotonic()
        try:
            runs.run(k[2], k[12])
            outcome["second"] = "ran"
        except RangeAlreadyDone as done:
            outcome["second"], outcome["rows"] = "skipped", done.rows
        outcome["waited"] = time.monotonic() - started

    def slow(conn: sa.Connection, begin: str, end: str) -> int:
        rows = runs.bump(conn, begin, end)
        working.set()
        time.sleep(1.0)  # the second holder is now blocked on the ledger (SQLite) or on the rows
        return rows

    thread = threading.Thread(target=second)
    thread.start()
    with engine.begin() as conn:
        ledger.run(conn, KEY, table, k[2], k[12], lambda b, e: slow(conn, b, e))
    thread.join(15)
    assert outcome["second"] == "skipped" and outcome["rows"] == 10
    assert outcome["waited"] > 0.5, "the second holder did not wait for the first to commit"
    assert runs.counters() == {key: 1 if key in k[3:13] else 0 for key in k}


def test_sqlite_collations_are_read_from_the_declared_schema() -> None:
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(sa.text("""CREATE TABLE "My Items" (
            "Key Col"\tVARCHAR(20) NOT NULL COLLATE "nocase" PRIMARY KEY,
            note TEXT DEFAULT 'x COLLATE RTRIM, y' CHECK (length(note) < 9),
            [code] TEXT COLLATE RTRIM, plain TEXT, UNIQUE (plain, code))"""))
    found = {key: column_collation(engine, SourceTable("My Items", key)) for key in ("Key Col", "note", "code",
                                                                                     "PLAIN", "absent")}
    assert found == {"Key Col": "NOCASE", "note": "BINARY", "code": "RTRIM", "PLAIN": "BINARY", "absent": None}
    engine.dispose()
