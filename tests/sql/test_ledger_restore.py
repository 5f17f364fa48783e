"""Issue 13.1 end to end: a restore after a batch-size change, with a real Tracker on real Redis (and in "rows"
batching, issue 14)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import sqlalchemy as sa

from airflow_spreader.core.carving import Carve
from airflow_spreader.sql.boundaries import RowCarver
from airflow_spreader.sql.ledger import Ledger, LedgerKey, RangeAlreadyDone
from airflow_spreader.sql.table import SourceTable
from airflow_spreader.state.records import ClaimedBatch
from airflow_spreader.state.tracker import Tracker
from tests.conftest import ManualClock
from tests.sql.conftest import MakeTable

T = datetime(2027, 1, 4, 12, tzinfo=timezone.utc)


def claim(tracker: Tracker, batch_size: int, batches: int, carve: Carve | None = None) -> list[ClaimedBatch]:
    return tracker.claim_cycle(batch_size=batch_size, per_second=batches, duration=1, begin_at=T,
                               lease_seconds=600, carve=carve).batches


def run_batch(engine: sa.Engine, ledger: Ledger, tracker: Tracker, table: str, batch: ClaimedBatch) -> None:
    """What the batch operator does, without Airflow."""
    assert tracker.begin(batch) == "run"
    t = sa.table(table, sa.column("id"), sa.column("counter"))
    key = LedgerKey(tracker.name, tracker.generation() or "", batch.begin_id, batch.end_id)
    try:
        with engine.begin() as connection:
            rows = ledger.run(connection, key, lambda b, e: connection.execute(
                sa.update(t).where(t.c.id.between(b, e)).values(counter=t.c.counter + 1)).rowcount)
    except RangeAlreadyDone as done:
        rows = done.rows
    tracker.complete(batch, rows)


def test_a_restore_after_a_batch_size_change_does_every_id_once(
        engine: sa.Engine, ledger: Ledger, tracker: Tracker, clock: ManualClock, make_table: MakeTable,
        counters: Callable[[str], dict[int, int]]) -> None:
    table = make_table(range(1, 1001))
    tracker.start(max_id=1000, min_id=1)
    generation = tracker.generation()
    first, second = claim(tracker, 100, 2)
    assert (first.begin_id, second.begin_id) == (901, 801)
    assert tracker.begin(first) == "run"  # its worker dies: 901-1000 never commits
    run_batch(engine, ledger, tracker, table, second)
    (third,) = claim(tracker, 200, 1)  # batch_size changed to 200
    assert (third.begin_id, third.end_id) == (601, 800)
    run_batch(engine, ledger, tracker, table, third)
    low_water = tracker.low_water_mark()
    assert low_water == 1000

    tracker.reset()  # Redis loses its data; restore from the checkpoint
    tracker.start(max_id=low_water, min_id=1, generation=generation)
    while not tracker.progress().finished:
        for batch in claim(tracker, 200, 3):
            run_batch(engine, ledger, tracker, table, batch)
        clock.advance(1)
    counts = counters(table)
    assert [i for i, n in counts.items() if n != 1] == [], "901-1000 must run once, the rest not again"


def test_in_rows_batching_a_restore_recarves_from_the_low_water_mark_and_does_every_row_once(
        engine: sa.Engine, ledger: Ledger, tracker: Tracker, clock: ManualClock, make_table: MakeTable,
        counters: Callable[[str], dict[int, int]]) -> None:
    """The checkpoint's mark in "rows" batching is a range's top key; the carve after the restore reads the
    index from there, with another batch size, and the ledger skips the parts done before the loss."""
    keys = [k * 999_999_937 for k in range(1, 1001)]  # 1000 rows over 10^12 ids
    table = make_table(keys, big=True)
    rows_of = {size: RowCarver(engine, SourceTable(table), size) for size in (100, 200)}
    tracker.start(max_id=keys[-1], min_id=keys[0])
    generation = tracker.generation()
    first, second = claim(tracker, 100, 2, rows_of[100])
    assert (first.begin_id, first.end_id, second.end_id) == (keys[899] + 1, keys[-1], keys[899])
    assert tracker.begin(first) == "run"  # its worker dies: the top 100 rows never commit
    run_batch(engine, ledger, tracker, table, second)
    (third,) = claim(tracker, 200, 1, rows_of[200])  # batch_size changed to 200 rows
    assert (third.begin_id, third.end_id) == (keys[599] + 1, keys[799])
    run_batch(engine, ledger, tracker, table, third)
    low_water = tracker.low_water_mark()
    assert low_water == keys[-1], "the killed range holds the mark at the top"

    tracker.reset()  # Redis loses its data; restore from the checkpoint's mark and bounds
    tracker.start(max_id=low_water, min_id=keys[0], generation=generation)
    cycles = 0
    while not tracker.progress().finished:
        for batch in claim(tracker, 200, 3, rows_of[200]):  # 200 rows a range: over 901-1000 and 801-900
            run_batch(engine, ledger, tracker, table, batch)
        clock.advance(1)
        cycles += 1
    assert [k for k, n in counters(table).items() if n != 1] == [], "the top 100 rows once, the rest not again"
    assert (cycles, tracker.progress().batches_done) == (2, 5)
