"""Verification before "done" and the Asset event, under dag.test() (issue 16, parts 2 and 4).

A work that silently leaves rows undone is caught by ``pending``: the final run fails "incomplete" with the
ranges, and emits no Asset event; ``redo-pending`` plans exactly those ranges again, the next cycles do
them and count again, and the backfill finishes, verified, with one Asset event, which queues a run of
the DAG scheduled on it, once.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_spreader.core.planner import IdRange
from airflow_spreader.state.verification import Verification
from airflow_spreader.tools import cli, cli_status
from airflow_spreader.tools.readmodel.sources import NoAirflow
from airflow_spreader.tools.readmodel.status import gather
from tests.airflow.conftest import Source
from tests.conftest import AIRFLOW_HOME, TESTS, load_dag_file

pytestmark = pytest.mark.airflow

#: 10 batches of 10 ids a cycle; verification spans of 2 batches (20 ids): 10 count queries, one cycle.
CONFIG = {"batch_size": 10, "duration": 1, "per_second_on_peak": 10, "per_second_off_peak": 10,
          "max_tasks_per_cycle": 2}
ASSET_URI = "airflow-spreader://spreader_test_verify/"
DOWNSTREAM = "spreader_test_downstream"


def dags() -> Any:
    return load_dag_file(TESTS / "airflow" / "dags" / "spreader_test_verify.py")


def run_cycle(dag: Any) -> str:
    return str(dag.test().state)


def asset_events() -> int:
    """The Asset events recorded for the backfill's default Asset (server side: the test is not a task)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        return int(session.scalar(sa.select(sa.func.count()).select_from(AssetEvent).join(
            AssetModel, AssetModel.id == AssetEvent.asset_id).where(AssetModel.uri == ASSET_URI)) or 0)


def queued_downstream_runs() -> int:
    """The downstream DAG's AssetDagRunQueue entries: the scheduler makes a run of each."""
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session

    with create_session() as session:
        return int(session.scalar(sa.select(sa.func.count()).select_from(AssetDagRunQueue).where(
            AssetDagRunQueue.target_dag_id == DOWNSTREAM)) or 0)


def forget_downstream_queue() -> None:
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session

    with create_session() as session:
        session.execute(sa.delete(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id == DOWNSTREAM))


def forget_queued_runs(dag_id: str) -> None:
    """dag.test() leaves the runs the chain triggered queued (a scheduler would have run them)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    with create_session() as session:
        session.execute(sa.delete(DagRun).where(DagRun.dag_id == dag_id, DagRun.state == DagRunState.QUEUED))


def skip_rows(*ids: int) -> None:
    """The work leaves these rows undone (and says nothing); no ids: the work is fixed."""
    flag = AIRFLOW_HOME / "skip-rows"
    if ids:
        flag.write_text(" ".join(map(str, ids)))
    else:
        flag.unlink(missing_ok=True)


@pytest.mark.parametrize("source", ["verify"], indirect=True)
def test_rows_left_undone_fail_the_run_incomplete_and_redo_pending_completes_them(
        source: Source, redis_url: str, capfd: pytest.CaptureFixture[str]) -> None:
    dag = dags().verify_backfill
    source.create(200)
    source.set_config(**CONFIG)
    skip_rows(33, 34, 150)
    forget_downstream_queue()
    events_before = asset_events()
    try:
        assert run_cycle(dag) == "success"  # ids 101-200
        assert run_cycle(dag) == "success"  # ids 1-100: every range done, the chain starts the counting cycle
        assert source.tracker.progress().finished
        capfd.readouterr()
        assert run_cycle(dag) == "failed", "the final run fails: rows are pending"
        log = capfd.readouterr()
        assert ("Backfill 'spreader_test_verify' incomplete: 3 rows pending in these ranges: 150-150 (1), 33-34 (2); "
                "fix the work, then `airflow-spreader redo-pending spreader_test_verify`") in log.out + log.err

        state = Verification(source.tracker).state()
        assert state.incomplete and state.pending_rows == 3
        assert [(p.begin_id, p.end_id, p.rows) for p in state.pending] == [(150, 150, 1), (33, 34, 2)]
        status = gather(source.tracker, NoAirflow(), source.dag_id, source.tracker.progress().started_at, 15)
        assert status.state == "incomplete"
        assert status.to_dict()["verification"]["pending_rows"] == 3
        assert "3 rows pending in these ranges: 150-150 (1), 33-34 (2)" in status.verification_text
        text = cli_status.render(status)
        assert text.startswith(f"{source.dag_id}  incomplete")
        assert f"verified  incomplete: 3 rows pending in these ranges: 150-150 (1), 33-34 (2); fix the work, then " \
               f"airflow-spreader redo-pending {source.dag_id}" in text
        assert asset_events() == events_before and queued_downstream_runs() == 0, "an incomplete run emitted"

        skip_rows()  # the work is fixed
        forget_queued_runs(source.dag_id)
        capfd.readouterr()
        assert cli.main(["redo-pending", source.dag_id, "--redis-url", redis_url, "--json"]) == 0
        out = capfd.readouterr().out  # in-process, Airflow's "creating dag run" log line comes first
        answer = json.loads(out[out.index("{\n"):])
        assert (answer["pending_rows"], answer["batches"], answer["pass"]) == (3, 2, 1)
        assert answer["triggered"], "the chain had ended: redo-pending triggers the DAG, as resume does"
        assert set(source.tracker.in_flight()) == {IdRange(33, 34), IdRange(150, 150)}, "exactly those ranges"
        assert cli.main(["redo-pending", source.dag_id, "--redis-url", redis_url]) == 1, "not verified yet"

        assert run_cycle(dag) == "success"  # the two ranges, then the chain starts counting again
        assert run_cycle(dag) == "success"  # counted: nothing pending, finished
        assert Verification(source.tracker).state().verified
        assert set(source.counters().values()) == {1}, "every row done exactly once, the pending ones too"
        assert asset_events() == events_before + 1
        assert queued_downstream_runs() == 1, "the DAG scheduled on the backfill's Asset is queued"

        assert run_cycle(dag) == "success"  # a run after the end finds it finished: no second event
        assert asset_events() == events_before + 1
    finally:
        skip_rows()


@pytest.mark.parametrize("source", ["bad_pending"], indirect=True)
def test_a_pending_predicate_that_does_not_run_on_the_table_plans_nothing(source: Source) -> None:
    source.create(20)
    source.set_config(**CONFIG)
    assert run_cycle(dags().bad_pending_backfill) == "failed"
    assert not source.tracker.is_started(), "nothing planned"
    halt = source.tracker.halt()
    assert halt is not None and "pending 'no_such_column IS NULL' does not run on table 'spreader_items'" in halt[0]
    assert "no such column: no_such_column" in halt[0]


def test_the_finished_task_carries_the_default_asset_or_the_users() -> None:
    from airflow.sdk import Asset

    from airflow_spreader.dag_factory import backfill_asset, backfill_dag

    def work(connection: Any, begin_id: int, end_id: int) -> None:
        return None

    own = backfill_dag("spreader_asset_default", table="t", source_conn_id="c", work=work)
    assert own.task_dict["finished"].outlets == [backfill_asset("spreader_asset_default")]
    assert own.task_dict["finished"].upstream_task_ids == {"next_cycle"}
    assert backfill_asset("users").uri == "airflow-spreader://users/" and backfill_asset("users").name == \
        "airflow-spreader://users"
    theirs = Asset("s3://lake/users")
    assert backfill_dag("spreader_asset_given", table="t", source_conn_id="c", work=work,
                        asset=theirs).task_dict["finished"].outlets == [theirs]
    with pytest.raises(TypeError, match=r"asset must be an airflow\.sdk\.Asset, got str"):
        backfill_dag("spreader_asset_bad", table="t", source_conn_id="c", work=work, asset="s3://lake/users")
    with pytest.raises(ValueError, match="pending_span_batches must be an integer >= 1, got 0"):
        backfill_dag("spreader_asset_bad", table="t", source_conn_id="c", work=work, pending="x = 0",
                     pending_span_batches=0)
