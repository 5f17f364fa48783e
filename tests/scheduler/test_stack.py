"""End-to-end test of AirflowStack: real scheduler, dag-processor, triggerer and api-server (one start).

Run alone: ``.venv/bin/python -m pytest -m scheduler tests/scheduler/test_stack.py`` (about 1.5 min on 2
cores). The tests run in file order and share one stack; the last one stops it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from devtools.stack import AirflowStack

pytestmark = pytest.mark.scheduler

DAG_ID = "spreader_stack_smoke"
POOL = "spreader_stack_smoke_pool"
MARKER_ENV = "SPREADER_STACK_TEST_MARKERS"

DAG_FILE = textwrap.dedent(
    f'''
    """Tiny airflow dag for tests/scheduler/test_stack.py: a task, then a mapped task in a pool."""
    import os
    from pathlib import Path

    from airflow.sdk import dag, get_current_context, task


    @dag(dag_id="{DAG_ID}", schedule=None, catchup=False)
    def spreader_stack_smoke():
        @task
        def prepare() -> str:
            out = Path(os.environ["{MARKER_ENV}"])
            out.mkdir(parents=True, exist_ok=True)
            return str(out)

        @task(pool="{POOL}")
        def mark(n: int, out: str) -> int:
            ti = get_current_context()["ti"]
            Path(out, f"mark-{{ti.map_index}}").write_text(str(n))
            return n

        mark.partial(out=prepare()).expand(n=[1, 2, 3])


    spreader_stack_smoke()
    '''
)


@pytest.fixture(scope="module")
def marker_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("markers") / "out"


@pytest.fixture(scope="module")
def stack(
    airflow_stack_factory: Callable[..., AirflowStack], tmp_path_factory: pytest.TempPathFactory, marker_dir: Path
) -> AirflowStack:
    dags = tmp_path_factory.mktemp("dags")
    (dags / "spreader_stack_smoke.py").write_text(DAG_FILE)
    return airflow_stack_factory(dags, env={MARKER_ENV: str(marker_dir)}, parallelism=4)


def test_mapped_run_in_pool(stack: AirflowStack, marker_dir: Path) -> None:
    print(f"stack timings (s): {stack.timings}")
    client = stack.client
    assert client.set_pool(POOL, 2)["slots"] == 2
    client.wait_for_dag(DAG_ID, timeout=120)
    run_id = client.trigger(DAG_ID, conf={"note": "stack test"})
    assert client.wait_for_run(DAG_ID, run_id, timeout=180) == "success"

    assert sorted(p.name for p in marker_dir.iterdir()) == ["mark-0", "mark-1", "mark-2"]
    assert sorted(p.read_text() for p in marker_dir.iterdir()) == ["1", "2", "3"]

    tis = client.task_instances(DAG_ID, run_id)
    assert sorted((ti["task_id"], ti["map_index"]) for ti in tis) == [
        ("mark", 0),
        ("mark", 1),
        ("mark", 2),
        ("prepare", -1),
    ]
    assert all(ti["state"] == "success" and ti["start_date"] and ti["end_date"] for ti in tis)
    assert {ti["pool"] for ti in tis if ti["task_id"] == "mark"} == {POOL}
    assert [r["dag_run_id"] for r in client.dag_runs(DAG_ID)] == [run_id]


def test_pause_unpause(stack: AirflowStack) -> None:
    client = stack.client
    client.wait_for_dag(DAG_ID)
    assert client.pause(DAG_ID)["is_paused"] is True
    assert client.is_paused(DAG_ID) is True  # GET /api/v2/dags/{id}
    assert client.unpause(DAG_ID)["is_paused"] is False
    assert client.is_paused(DAG_ID) is False


def test_pools_and_variables(stack: AirflowStack) -> None:
    client = stack.client
    client.set_pool(POOL, 5, include_deferred=True)
    pool = client.get_pool(POOL)
    assert pool is not None
    assert (pool["slots"], pool["include_deferred"]) == (5, True)
    assert client.get_pool("no_such_pool") is None
    assert client.set_pool("default_pool", 64)["slots"] == 64  # the default pool takes the masked PATCH too

    assert client.get_variable("spreader_stack_var") is None
    client.set_variable("spreader_stack_var", "one")
    client.set_variable("spreader_stack_var", {"batch": 2})
    assert client.get_variable("spreader_stack_var") == '{"batch": 2}'
    cli = stack.airflow_cli("variables", "get", "spreader_stack_var")
    assert cli.stdout.strip().splitlines()[-1] == '{"batch": 2}'


def test_stop_leaves_no_process(stack: AirflowStack) -> None:
    procs = stack.alive_processes()
    roots = {p.pid for p in stack.processes.values()}
    assert roots <= {p.pid for p in procs}
    stack.stop()
    stack.stop()  # idempotent
    assert not stack.running
    assert stack.alive_processes() == []
    assert [p.pid for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
