"""Issue 13.1 end to end: a restore after a batch-size change, with a real Tracker on real Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from airflow_spreader.sql.ledger import Ledger, LedgerKey, RangeAlreadyDone
from airflow_spreader.state.records import ClaimedBatch
from airflow_spreader.state.tracker import Tracker
from tests.conftest import ManualClock
from tests.sql.conftest import MakeTable, unique_name

T = datetime(2027, 1, 4, 12, tzinfo=timezone.utc)


@pytest.fixture
def ledger(engine: sa.Engine) -> Iterator[Ledger]:
    ledger = Ledger(unique_name("ledger"))
    ledger.ensure(engine)
    yield ledger
    ledger.table.drop(engine, checkfirst=True)


def claim(tracker: Tracker, batch_size: int, batches: int) -> list[ClaimedBatch]:
    return tracker.claim_cycle(batch_size=batch_size, per_second=batches, duration=1, begin_at=T,
                               lease_seconds=600).batches


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
