"""Issue 13 item 3 under dag.test(): a plan task that fails after its claim gets the same cycle on its retry."""

from __future__ import annotations

import pytest

from tests.airflow.conftest import Source
from tests.conftest import TESTS, load_dag_file

pytestmark = pytest.mark.airflow


@pytest.mark.parametrize("source", ["plan_retry"], indirect=True)
def test_a_plan_retried_after_its_claim_runs_the_claimed_cycle_exactly_once(source: Source) -> None:
    source.create(300)
    source.set_config(batch_size=10, duration=2, max_tasks_per_cycle=4, per_second_on_peak=7.5,
                      per_second_off_peak=7.5)
    dag = load_dag_file(TESTS / "airflow" / "dags" / "spreader_test_dags.py").plan_retry_backfill
    run = dag.test()
    assert str(run.state) == "success"
    plan = next(ti for ti in run.get_task_instances() if ti.task_id == "plan")
    assert plan.try_number == 2, "the first try failed after its claim"
    progress = source.tracker.progress()
    assert progress.cycles == 1, "the retry claimed no second cycle"
    assert (progress.batches_planned, progress.batches_done, progress.in_flight) == (15, 15, 0), \
        "no claimed range is left idle until its lease"
    counters = source.counters()
    assert {i for i, n in counters.items() if n == 1} == set(range(151, 301))
    assert {i for i, n in counters.items() if n == 0} == set(range(1, 151))
