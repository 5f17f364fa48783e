"""The road to scale: the drills' backfill DAG on CeleryExecutor with two Celery workers, exactly once.

A real Airflow (scheduler, dag-processor, triggerer, api-server) with ``CeleryExecutor`` and two Celery
workers ``w1`` and ``w2`` (4 slots each) on this machine: broker in Redis (database 5 of ``REDIS_URL``'s
server, flushed first; the embedded Redis without ``REDIS_URL``), Celery results and Airflow's metadata in
a fresh PostgreSQL database, the tracker in Redis, the source table in PostgreSQL. The DAG is
``drill_celery``, built like the drills' ``drill_a`` (same factory, the drills' operator deferring waits
over 2 s instead of 10 s) on its own table. The rate (0.4 batches a second, 8 batches a cycle in 8 task
instances: the last ones start their batch 12.5 to 17.5 s after the cycle begins) makes batch task
instances defer to the triggerer and come back as new Celery workloads, as they do at production rates.
Checked: every id processed exactly once (a counter per row), every DAG run of the chain succeeded, both
workers executed batch task instances (each worker's log names the task instances it ran), and some batch
task instance came back from a deferral.
Run alone: ``.venv/bin/python -m pytest -m scheduler tests/scheduler/test_celery.py`` (about 2 minutes).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from urllib.parse import urlparse, urlunparse

import pytest
import redis
import sqlalchemy as sa

from airflow_spreader.state.tracker import Tracker
from devtools.components import DEFAULT_COMPONENTS, celery_worker
from devtools.stack import AirflowStack
from tests.airflow.conftest import redis_connection
from tests.conftest import TESTS
from tests.scheduler.conftest import drill_source_env
from tests.scheduler.test_drills import Drill

pytestmark = [pytest.mark.scheduler, pytest.mark.postgres]

DAG_ID = "drill_celery"
WORKERS = ("w1", "w2")
BROKER_DB = 5
ROWS = 3200
# "[<celery task id>] Executing workload in Celery: ExecuteTask(... ti=TaskInstance(... task_id='batches', ...))"
WORKLOAD = re.compile(r"Executing workload in Celery: .*")


def broker_url(redis_url: str) -> str:
    """Database BROKER_DB of the tracker's Redis server (another if the tracker uses that one), flushed: a
    broker left over from an earlier run is dropped."""
    parsed = urlparse(redis_url)
    db = BROKER_DB if parsed.path.strip("/") != str(BROKER_DB) else BROKER_DB + 1
    url = urlunparse(parsed._replace(path=f"/{db}", query=""))
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture(scope="module")
def stack(airflow_stack_factory, metadata_db: str, redis_url: str) -> Iterator[AirflowStack]:  # type: ignore[no-untyped-def]
    """Stopped at the end of the module, before its metadata database is dropped."""
    stack: AirflowStack = airflow_stack_factory(
        TESTS / "scheduler" / "dags",
        executor="CeleryExecutor",
        components=(*DEFAULT_COMPONENTS, *(celery_worker(name, concurrency=4) for name in WORKERS)),
        parallelism=12,
        sql_alchemy_conn=metadata_db,
        env={
            "AIRFLOW__CELERY__BROKER_URL": broker_url(redis_url),
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{metadata_db}",
            "AIRFLOW_CONN_REDIS_DEFAULT": redis_connection(redis_url),
            **drill_source_env(),
        },
    )
    yield stack
    stack.stop()


def executed_batches(stack: AirflowStack, worker: str) -> list[tuple[str, int, int]]:
    """(run_id, map_index, try_number) of each ``batches`` workload of DAG_ID that ``worker``'s log says it ran
    (a task instance that deferred and resumed shows twice with the same try)."""
    log = (stack.log_dir / f"celery-worker-{worker}.log").read_text(errors="replace")
    found = []
    for line in WORKLOAD.findall(log):
        fields = dict(re.findall(r"\b(task_id|dag_id|run_id|map_index|try_number)=(-?\d+|'[^']*')", line))
        if fields.get("dag_id") == f"'{DAG_ID}'" and fields.get("task_id") == "'batches'":
            found.append((fields["run_id"].strip("'"), int(fields["map_index"]), int(fields["try_number"])))
    return found


def test_a_backfill_on_celery_with_two_workers_completes_exactly_once(
    stack: AirflowStack, pg: sa.Engine, redis_url: str
) -> None:
    print(f"stack timings (s): {stack.timings}")
    drill = Drill(DAG_ID, stack, pg, Tracker(DAG_ID, redis.Redis.from_url(redis_url)))
    drill.prepare(rows=ROWS, pool=8, batch_size=200, per_second=0.4, duration=20, max_tasks_per_cycle=8)
    started = time.monotonic()
    stack.client.trigger(DAG_ID)
    drill.finish(timeout=150)
    elapsed = time.monotonic() - started

    assert drill.counters() == {1: ROWS}, "some id was not processed exactly once"
    progress = drill.tracker.progress()
    assert (progress.finished, progress.ids_done, progress.batches_failed, progress.in_flight) == (True, ROWS, 0, 0)
    runs = stack.client.dag_runs(DAG_ID)
    assert len(runs) >= 2 and {run["state"] for run in runs} == {"success"}, runs

    batch_tis = {(run["dag_run_id"], ti["map_index"]): ti for run in runs
                 for ti in stack.client.task_instances(DAG_ID, run["dag_run_id"])
                 if ti["task_id"] == "batches" and ti["map_index"] >= 0}  # the last run's cycle has none
    assert batch_tis and {ti["state"] for ti in batch_tis.values()} == {"success"}
    assert {ti.get("executor") for ti in batch_tis.values()} <= {None, "CeleryExecutor"}
    by_worker = {worker: executed_batches(stack, worker) for worker in WORKERS}
    workloads = Counter(workload for found in by_worker.values() for workload in found)
    resumed = {workload for workload, count in workloads.items() if count > 1}
    on_both = {w for w in resumed if all(any(w == f for f in by_worker[worker]) for worker in WORKERS)}
    print(f"{ROWS} rows in {elapsed:.0f} s over {len(runs)} runs, {len(batch_tis)} batch task instances; "
          f"workloads per worker: {({worker: len(found) for worker, found in by_worker.items()})}; "
          f"resumed after deferral: {len(resumed)} ({len(on_both)} on the other worker)")
    assert all(by_worker.values()), f"a worker ran no batch: {by_worker}"
    assert {(run_id, index) for run_id, index, _ in workloads} == set(batch_tis), \
        "the workers' logs do not account for every batch task instance"
    assert resumed, "no batch task instance deferred and came back through Celery"
    drill.tracker.reset()  # leave the shared Redis as it was
