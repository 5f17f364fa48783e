"""follow_new_rows under dag.test(): rows inserted above the top between cycles are walked in new passes,
each exactly once, and the chain ends by itself once a look after the last batch finds nothing new."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from tests.airflow.conftest import TABLE, Source
from tests.conftest import TESTS, load_dag_file

pytestmark = pytest.mark.airflow

RATE = {"per_second_on_peak": 7.5, "per_second_off_peak": 7.5}


def run_cycle(source: Source) -> tuple[str, str]:
    run = load_dag_file(TESTS / "airflow" / "dags" / "spreader_test_dags.py").sqlite_backfill.test()
    return str(run.state), str(run.run_id)


def xcom(source: Source, run_id: str, task_id: str, key: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        value = session.scalar(sa.select(XComModel.value).where(
            XComModel.dag_id == source.dag_id, XComModel.run_id == run_id, XComModel.task_id == task_id,
            XComModel.key == key))
    return json.loads(value) if isinstance(value, str) else value


def insert(source: Source, first: int, last: int) -> None:
    with source.engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {TABLE} (id, counter) VALUES (:id, 0)"),
                     [{"id": i} for i in range(first, last + 1)])


@pytest.mark.parametrize("source", ["sqlite"], indirect=True)
def test_rows_inserted_above_the_top_between_cycles_are_processed_exactly_once(source: Source) -> None:
    source.create(200)
    source.set_config(batch_size=20, duration=2, max_tasks_per_cycle=4, follow_new_rows=True, **RATE)
    looks, chain = [], []
    bursts: list[tuple[int, int] | None] = [(201, 260), (261, 300), None]  # two bursts, then nothing new
    for burst in bursts:
        state, run_id = run_cycle(source)
        assert state == "success"
        looks.append(xcom(source, run_id, "plan", "cycle")["look"])
        chain.append(xcom(source, run_id, "next_cycle", "return_value"))
        if burst is not None:
            insert(source, *burst)
    state, run_id = run_cycle(source)
    assert state == "success"
    looks.append(xcom(source, run_id, "plan", "cycle")["look"])
    final = xcom(source, run_id, "next_cycle", "return_value")

    # The first walk ends at 200 and hands over (no summary) to a cycle that looks; each look at the
    # bottom finds the burst inserted since; the last finds nothing and the chain ends with its account.
    assert looks == ["not-at-bottom", "extended", "extended", "caught-up"]
    assert chain == [None, None, None]
    assert final is not None and (final["passes"], final["ids"], final["rows"]) == (3, 300, 300)
    progress = source.tracker.progress()
    assert progress.finished and progress.looked_for_new_rows
    assert (progress.passes, progress.max_id, progress.total_ids, progress.batches_done) == (3, 300, 300, 15)
    assert source.counters() == {i: 1 for i in range(1, 301)}


@pytest.mark.parametrize("source", ["sqlite"], indirect=True)
def test_in_rows_batching_new_sparse_rows_above_the_top_are_walked_in_rows_exactly_once(source: Source) -> None:
    old = [i * 10**9 for i in range(1, 101)]  # 100 rows over 10^11 ids
    new = [10**11 + i * 10**9 for i in range(1, 41)]  # 40 more above the top, once the first walk is over
    source.create_keys(old)
    source.set_config(batch_size=10, duration=2, max_tasks_per_cycle=4, follow_new_rows=True, batching="rows",
                      **RATE)
    inserted = False
    for _ in range(6):
        state, _ = run_cycle(source)
        assert state == "success"
        progress = source.tracker.progress()
        if not inserted and progress.exhausted:
            insert_keys = [{"id": k} for k in new]
            with source.engine.begin() as conn:
                conn.execute(sa.text(f"INSERT INTO {TABLE} (id, counter) VALUES (:id, 0)"), insert_keys)
            inserted = True
        elif progress.finished and progress.looked_after_last_batch:
            break
    progress = source.tracker.progress()
    assert inserted and progress.finished and progress.passes == 2
    assert progress.batches_done == 10 + 4  # rows per batch in both passes, not 10^10 ids a batch
    assert source.counters() == dict.fromkeys(old + new, 1)
