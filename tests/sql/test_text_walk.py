"""Text keys on SQLite, PostgreSQL (ICU) and MariaDB (case-insensitive): the walk follows the database's
collation, every row falls in exactly one range, bisection isolates a poison row, restarts keep the map."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from airflow_spreader.core.keys import TEXT_MIN, TEXT_TOP, is_text_image
from airflow_spreader.core.planner import IdRange
from airflow_spreader.sql.table import SourceTable, sa_table
from airflow_spreader.sql.text_keys import key_at, read_text_rows, text_range_clause
from airflow_spreader.state.checkpoint import Checkpoint
from airflow_spreader.state.quarantine import Quarantine
from airflow_spreader.state.records import ClaimedBatch
from airflow_spreader.state.skip import SkipError, skip_range
from airflow_spreader.state.text_keys import TextCarver, TextKeys, TextKeyStore
from airflow_spreader.state.tracker import Tracker
from tests.conftest import ManualClock
from tests.sql.conftest import KeyedTable

#: Keys whose order differs between bytes and a collation ('B' < 'a' in bytes, 'é' after 'z'), plus more,
#: unique under a case- and accent-insensitive collation (MariaDB's default) thanks to their number.
_RNG = random.Random(14)
_HEADS = ["", " ", "_", "-", "0", "a", "A", "z", "Z", "é", "É", "ä", "Ø", "ß"]
KEYS = ["a", "B", "c", "é", "_x", " a"] + [
    f"{_RNG.choice(_HEADS)}{''.join(_RNG.choices('abcXYZéü_ -', k=_RNG.randrange(0, 6)))}{i:03d}" for i in range(150)]
#: Per backend, the key column types: the default collation and one that is not byte order.
COLUMNS = {
    "sqlite": ["TEXT", "TEXT COLLATE NOCASE"],
    "postgresql": ['TEXT COLLATE "en-x-icu"', "VARCHAR(40)"],
    "mysql": ["VARCHAR(40)"],  # utf8mb4_general_ci: 'a' = 'A', 'e' = 'é'
}


@pytest.fixture
def text_tables(keyed_table: KeyedTable) -> Callable[[str], SourceTable]:
    return lambda column: keyed_table(column, KEYS, "texts")


def db_order(engine: sa.Engine, table: SourceTable) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(f"SELECT id FROM {table.name} ORDER BY id DESC")).scalars())


class TextBackfill:
    """Cycles claimed with a TextCarver and batches run by hand: each batch adds 1 to its rows' counter."""

    def __init__(self, tracker: Tracker, clock: ManualClock, engine: sa.Engine, table: SourceTable,
                 batch_size: int, poison: frozenset[str] = frozenset()) -> None:
        self.tracker, self.clock, self.engine, self.table = tracker, clock, engine, table
        self.store = TextKeyStore(tracker)
        self.keys = TextKeys(self.store, engine, table)
        self.carver = TextCarver(self.keys, batch_size)
        self.quarantine = Quarantine(tracker)
        self.poison, self.batch_size = poison, batch_size
        self.order: list[str] = []  # the keys as the batches touched them, batch after batch
        self.batches = 0
        self.most_texts = 0  # the most texts Redis held after a claim

    def start(self) -> None:
        top = db_order(self.engine, self.table)[0]
        max_id, min_id = self.store.begin(top)
        self.tracker.start(max_id, min_id)

    def claim(self, per_second: int = 5) -> list[ClaimedBatch]:
        claim = self.tracker.claim_cycle(batch_size=self.batch_size, per_second=per_second, duration=1,
                                         lease_seconds=60, carve=self.carver,
                                         begin_at=datetime.fromtimestamp(self.clock(), timezone.utc))
        self.carver.mint_planned()
        self.most_texts = max(self.most_texts, len(self.store.entries()))
        self.clock.advance(1)
        return claim.batches

    def run(self, batch: ClaimedBatch) -> None:
        assert self.tracker.begin(batch) == "run"
        self.batches += 1
        low, high = self.keys.bounds(batch.id_range)
        key = sa_table(self.table).c[self.table.key]
        with self.engine.begin() as conn:  # a range under "below all" holds nothing
            held = [] if high is None else list(conn.execute(
                sa.select(key).where(text_range_clause(self.table, low, high)).order_by(key.desc())).scalars())
            if set(held) & self.poison:
                conn.rollback()
                self.quarantine.fail(batch, "PoisonRow", final=True)
                return
            if held:
                conn.execute(sa.text(f"UPDATE {self.table.name} SET counter = counter + 1 WHERE id IN :ids")
                             .bindparams(sa.bindparam("ids", expanding=True)), {"ids": held})
        self.order += held
        self.tracker.complete(batch, len(held))
        self.quarantine.after_done(batch)

    def until_done(self, cycles: int = 80) -> None:
        for _ in range(cycles):
            batches = self.claim()
            if not batches and self.tracker.in_flight_count() == 0:
                return
            for batch in batches:
                self.run(batch)
        raise AssertionError(f"not done after {cycles} cycles: {self.tracker.progress()}")

    def counters(self) -> Counter[str]:
        with self.engine.connect() as conn:
            return Counter({k: c for k, c in conn.execute(sa.text(f"SELECT id, counter FROM {self.table.name}"))})


@pytest.mark.parametrize("batch_size", [3, 16])
def test_a_text_walk_follows_the_collation_and_touches_every_row_once(
        engine: sa.Engine, text_tables: Callable[[str], SourceTable], tracker: Tracker, clock: ManualClock,
        batch_size: int) -> None:
    orders = []
    for column in COLUMNS[engine.dialect.name]:
        table = text_tables(column)
        orders.append(db_order(engine, table))
        backfill = TextBackfill(tracker, clock, engine, table, batch_size)
        backfill.start()
        backfill.until_done()
        assert backfill.order == db_order(engine, table), column  # top-down in the database's own order
        assert set(backfill.counters().values()) == {1}, column
        assert backfill.batches <= -(-len(KEYS) // batch_size) + 1, column  # + the empty one that ends the walk
        assert tracker.progress().finished
        # the texts of done ranges are forgotten: O(ranges not done), not O(batches)
        assert backfill.most_texts <= 5 + 3 and len(backfill.store.entries()) <= 3
        tracker.reset()
    # the first collation of PostgreSQL and MariaDB, SQLite's NOCASE are not code point order: the test can tell
    assert orders[0 if engine.dialect.name != "sqlite" else 1] != sorted(KEYS, reverse=True)


def test_rows_inserted_below_the_cursor_are_visited_and_above_the_top_are_not(
        engine: sa.Engine, text_tables: Callable[[str], SourceTable], tracker: Tracker, clock: ManualClock) -> None:
    table = text_tables(COLUMNS[engine.dialect.name][0])
    backfill = TextBackfill(tracker, clock, engine, table, batch_size=10)
    backfill.start()
    for batch in backfill.claim(per_second=3):
        backfill.run(batch)
    order = db_order(engine, table)
    top, passed = order[0], order[29]  # 3 batches of 10 are done
    with engine.begin() as conn:  # between planned ranges, and below the table's first MIN; above its MAX
        with engine.connect() as read:
            bottom = read.execute(sa.text(f"SELECT id FROM {table.name} ORDER BY id LIMIT 1")).scalar_one()
        conn.execute(sa.text(f"INSERT INTO {table.name} (id, counter) VALUES (:id, 0)"),
                     [{"id": f"{bottom[:-3]}{bottom[-3:]}0"}, {"id": " "}, {"id": f"{top}zz"},
                      {"id": f"{passed}0"}])
    backfill.until_done()
    counts = backfill.counters()
    assert counts[f"{top}zz"] == 0 and counts[f"{passed}0"] == 0  # above the top, in a passed range
    assert {k: c for k, c in counts.items() if k not in (f"{top}zz", f"{passed}0")} == dict.fromkeys(
        [k for k in counts if k not in (f"{top}zz", f"{passed}0")], 1)


def test_a_poison_row_is_isolated_by_bisection_at_a_row_of_the_database(
        engine: sa.Engine, text_tables: Callable[[str], SourceTable], tracker: Tracker, clock: ManualClock) -> None:
    table = text_tables(COLUMNS[engine.dialect.name][0])
    poison = frozenset({"é"} if engine.dialect.name != "mysql" else {"_x"})
    backfill = TextBackfill(tracker, clock, engine, table, batch_size=16, poison=poison)
    backfill.start()
    backfill.until_done()
    [kept] = backfill.quarantine.quarantined()
    assert backfill.store.label(kept.key) == next(iter(poison))  # the handle of one row: its text
    assert backfill.keys.bounds(IdRange(kept.key, kept.key))[1] == next(iter(poison))
    counts = backfill.counters()
    assert counts[next(iter(poison))] == 0 and set(c for k, c in counts.items() if k not in poison) == {1}
    assert backfill.batches <= -(-len(KEYS) // 16) + 1 + 2 * 4 + 1  # two pieces a level, log2(16) levels


def test_the_store_and_its_reads(engine: sa.Engine, text_tables: Callable[[str], SourceTable],
                                 tracker: Tracker) -> None:
    table = text_tables(COLUMNS[engine.dialect.name][0])
    order = db_order(engine, table)
    rows = read_text_rows(engine, table, below=order[3], batch_size=5, count=2)
    assert rows.tops == [order[3], order[8], order[13]] and rows.read == 11
    assert read_text_rows(engine, table, below=order[-2], batch_size=5, count=2).read == 2
    assert key_at(engine, table, low=order[9], high=order[3], offset=2) == order[5]
    assert key_at(engine, table, low=order[6], high=order[3], offset=3) is None
    store = TextKeyStore(tracker)
    assert store.begin(order[0]) == (TEXT_TOP, TEXT_MIN) and is_text_image(TEXT_TOP)
    store.mint({TEXT_TOP - 10: order[10]})
    store.mint({TEXT_TOP - 10: "other"})  # the first text wins
    assert store.value(TEXT_TOP - 10) == (True, order[10]) and store.value(TEXT_TOP - 5) == (False, None)
    keys = TextKeys(store, engine, table)
    assert keys.text_of(TEXT_TOP - 4) == order[4]  # read from the rows below the handle above, then minted
    assert store.value(TEXT_TOP - 4) == (True, order[4])
    assert store.range_label(IdRange(TEXT_TOP - 9, TEXT_TOP - 4)) == f"({order[10]}..{order[4]}]"
    assert keys.bounds(IdRange(TEXT_MIN, TEXT_TOP - 11)) == (None, order[11])


def test_a_checkpoint_of_a_text_key_restores_its_text_and_the_same_ranges(
        engine: sa.Engine, text_tables: Callable[[str], SourceTable], tracker: Tracker, clock: ManualClock) -> None:
    table = text_tables(COLUMNS[engine.dialect.name][0])
    backfill = TextBackfill(tracker, clock, engine, table, batch_size=10)
    backfill.start()
    planned = backfill.claim(per_second=5)
    for batch in planned[:2]:
        backfill.run(batch)
    saved = Checkpoint.of(tracker, datetime.fromtimestamp(clock(), timezone.utc))
    assert saved is not None and saved.text_key and saved.low_water == planned[2].end_id
    assert saved.low_water_text == db_order(engine, table)[20]  # the top of the third batch, never run
    tracker.reset()  # Redis lost everything, the map of texts too
    assert backfill.store.entries() == {}
    Checkpoint.from_json(saved.to_json()).restore(tracker)
    assert tracker.generation() == saved.generation  # the text ledger records ranges by texts: it skips by them
    again = backfill.claim(per_second=3)
    assert [b.id_range for b in again] == [b.id_range for b in planned[2:]]  # the same handles, rows unchanged
    for batch in again:
        backfill.run(batch)
    backfill.until_done()
    assert set(backfill.counters().values()) == {1}
    with pytest.raises(SkipError, match="its key holds text"):
        skip_range(tracker, TEXT_MIN)
