"""The done-ledger under dag.test(): a batch killed between its commit and Redis's mark is not run again."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from airflow_spreader.sql.ledger import DEFAULT_LEDGER_TABLE
from tests.airflow.conftest import Source, sparse_keys
from tests.airflow.test_backfill_dag import run_cycle
from tests.conftest import AIRFLOW_HOME

pytestmark = pytest.mark.airflow

CONFIG = {"batch_size": 10, "duration": 1, "per_second_on_peak": 8, "per_second_off_peak": 8,
          "lease_seconds": 1, "max_tasks_per_cycle": 1}


def kill_the_next_batch_after_its_commit() -> None:
    (AIRFLOW_HOME / "die-after-commit").touch()


def run_until_finished(source: Source, cycles: int = 4) -> None:
    """The killed ranges come back once their lease (1 s) is over: one cycle or two later."""
    for _ in range(cycles):
        run_cycle(source)
        if source.tracker.progress().finished:
            return
    raise AssertionError(f"not finished after {cycles} more cycles: {source.tracker.progress()}")


@pytest.mark.parametrize("source", ["dies"], indirect=True)
@pytest.mark.parametrize("batching", ["ids", "rows"])
def test_a_batch_killed_after_its_commit_is_skipped_when_its_range_comes_back(source: Source, batching: str) -> None:
    keys = sparse_keys(40) if batching == "rows" else list(range(1, 41))  # "rows": 40 keys over 10^12 ids
    source.create_keys(keys)
    source.set_config(**CONFIG, batching=batching)
    kill_the_next_batch_after_its_commit()

    assert run_cycle(source) == "failed"  # the task instance died after the commit of the top 10 rows
    assert [source.counters()[k] for k in keys[-10:]] == [1] * 10
    assert source.tracker.progress().batches_done == 0, "Redis never heard of the commit"

    run_until_finished(source)  # every range is planned again once its lease is over, with the same bounds
    progress = source.tracker.progress()
    assert source.counters() == dict.fromkeys(keys, 1), "the range killed after its commit ran twice"
    assert (progress.batches_done, progress.ids_done, progress.rows_done) == (4, keys[-1] - keys[0] + 1, 40)


@pytest.mark.parametrize("source", ["dies_unledgered"], indirect=True)
def test_without_the_ledger_such_a_batch_is_run_again(source: Source) -> None:
    """The counterpart: ``ledger_table=None`` is at least once, and creates nothing in the source database."""
    source.create(40)
    source.set_config(**CONFIG)
    kill_the_next_batch_after_its_commit()

    assert run_cycle(source) == "failed"
    run_until_finished(source)
    counts = source.counters()
    assert {i for i, n in counts.items() if n == 2} == set(range(31, 41))
    assert {i for i, n in counts.items() if n == 1} == set(range(1, 31))
    assert DEFAULT_LEDGER_TABLE not in sa.inspect(source.engine).get_table_names()


@pytest.mark.parametrize("source", ["sqlite"], indirect=True)
def test_the_first_cycle_creates_the_ledger_in_the_source_database(source: Source) -> None:
    with source.engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {DEFAULT_LEDGER_TABLE}"))
    source.create(30)
    source.set_config(**{**CONFIG, "per_second_on_peak": 3, "per_second_off_peak": 3})
    assert run_cycle(source) == "success"
    with source.engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT begin_id, end_id, rows_done FROM {DEFAULT_LEDGER_TABLE} "
                                    "WHERE backfill = :b ORDER BY begin_id"), {"b": source.dag_id}).all()
    assert [tuple(row) for row in rows] == [(1, 10, 10), (11, 20, 10), (21, 30, 10)]


@pytest.mark.parametrize("source", ["sqlite"], indirect=True)
def test_a_batch_that_reads_no_generation_does_not_run(source: Source) -> None:
    """Issue 13 item 4: without a generation its ledger row would be written under "": fail, retryable, nothing done."""
    from datetime import datetime, timezone
    from types import SimpleNamespace

    from airflow_spreader.operators.batch import NoGeneration, SpreadBatchOperator

    source.create(10)
    source.tracker.start(10)
    claim = source.tracker.claim_cycle(batch_size=10, per_second=10, duration=1,
                                       begin_at=datetime.now(timezone.utc), lease_seconds=60)
    source.tracker.redis.hdel(source.tracker.keys.meta, "generation", "started_at")  # what a lost read gives
    assert source.tracker.generation() is None
    calls: list[tuple[int, int]] = []
    operator = SpreadBatchOperator(task_id="batches", batches=[b.to_dict() for b in claim.batches],
                                   backfill=source.dag_id, source_conn_id=source.dag_id, retries=2,
                                   work=lambda connection, begin, end: calls.append((begin, end)))
    ti = SimpleNamespace(run_id="manual", map_index=0, try_number=1)
    with pytest.raises(NoGeneration, match="no generation"):
        operator.execute({"ti": ti})  # type: ignore[typeddict-item]
    assert calls == [] and set(source.counters().values()) == {0}
    if DEFAULT_LEDGER_TABLE in sa.inspect(source.engine).get_table_names():
        with source.engine.connect() as conn:
            assert conn.execute(sa.text(f"SELECT COUNT(*) FROM {DEFAULT_LEDGER_TABLE} "
                                        "WHERE backfill = :b AND generation = ''"), {"b": source.dag_id}).scalar() == 0
    assert source.tracker.progress().batches_done == 0 and len(source.tracker.in_flight()) == 1
