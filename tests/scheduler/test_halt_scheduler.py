"""A halted backfill under a real scheduler: an invalid Variable ends the chain, ``status`` says so, and after
``config --replace`` one ``resume`` finishes the backfill exactly once.

Run alone: ``.venv/bin/python -m pytest -m scheduler tests/scheduler/test_halt_scheduler.py``.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import sqlalchemy as sa

from airflow_spreader.core.names import config_variable
from airflow_spreader.state.tracker import Tracker
from devtools.stack import AirflowStack
from tests.airflow.conftest import TABLE, redis_connection
from tests.conftest import TESTS
from tests.scheduler import test_backfill_scheduler as base

pytestmark = pytest.mark.scheduler

DAG_ID = base.DAG_ID
source_db = base.source_db
#: A Redis database of its own: the dag.test() tests use (and reset) a tracker of the same name in the default one.
PRIVATE_DB = 13
GOOD = {"batch_size": 50, "duration": 4, "per_second_on_peak": 5, "per_second_off_peak": 5, "max_tasks_per_cycle": 4}


@pytest.fixture(scope="module")
def private_redis(redis_url: str) -> str:
    return urlunsplit(urlsplit(redis_url)._replace(path=f"/{PRIVATE_DB}"))


@pytest.fixture(scope="module")
def stack(airflow_stack_factory, source_db: Path, private_redis: str) -> AirflowStack:  # type: ignore[no-untyped-def]
    return airflow_stack_factory(TESTS / "airflow" / "dags", parallelism=8, env={
        "AIRFLOW_CONN_SPREADER_TEST_SQLITE": json.dumps({"conn_type": "sqlite", "host": str(source_db)}),
        "AIRFLOW_CONN_REDIS_DEFAULT": redis_connection(private_redis),
        "REDIS_URL": private_redis,  # for the console run with the stack's environment
    })


@pytest.fixture
def tracker(private_redis: str) -> Iterator[Tracker]:
    tracker = Tracker(DAG_ID, redis.Redis.from_url(private_redis))
    tracker.reset()
    yield tracker
    tracker.reset()


def console(stack: AirflowStack, *args: str) -> subprocess.CompletedProcess[str]:
    """``airflow-spreader *args`` where Airflow is installed, with the stack's configuration."""
    return subprocess.run([str(stack.bin_dir / "airflow-spreader"), *args], env=stack.environment(),
                          capture_output=True, text=True, timeout=120, check=False)


def status(stack: AirflowStack) -> dict[str, Any]:
    result = console(stack, "status", DAG_ID, "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def until(condition: Any, what: str, stack: AirflowStack, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{stack.log_tails()}"
        time.sleep(0.2)


def test_an_invalid_variable_halts_the_chain_and_one_resume_finishes_it_exactly_once(
        stack: AirflowStack, tracker: Tracker, source_db: Path) -> None:
    engine = base.make_table(source_db, 2000)
    stack.client.set_pool(DAG_ID, 2)
    stack.client.set_variable(config_variable(DAG_ID), json.dumps(GOOD))
    stack.client.trigger(DAG_ID)
    until(lambda: tracker.is_started() and tracker.progress().cycles >= 1, "the first cycle", stack)
    stack.client.set_variable(config_variable(DAG_ID), '{"batch_size": 50,')  # broken before the next plan
    until(lambda: tracker.halt() is not None, "the halt", stack)
    runs = base.wait_for_runs(stack)
    assert "failed" in {run["state"] for run in runs}
    assert not tracker.progress().finished

    halted = status(stack)
    assert halted["state"] == "halted"
    assert halted["halt"]["reason"].startswith("ConfigError: invalid spreader configuration: not valid JSON")
    assert halted["eta"]["state"] == "unknown" and halted["eta"]["reason"].startswith("halted: the last plan failed")
    text = console(stack, "status", DAG_ID)
    assert f"{DAG_ID}  halted" in text.stdout and f"airflow-spreader resume {DAG_ID}" in text.stdout

    refused = console(stack, "resume", DAG_ID)
    assert refused.returncode == 2 and "not resumed: Variable" in refused.stderr, refused.stderr
    assert console(stack, "config", DAG_ID, "--set", "batch_size=50").returncode == 2  # --set cannot: --replace
    replaced = console(stack, "config", DAG_ID, "--replace", json.dumps(GOOD))
    assert replaced.returncode == 0, replaced.stderr

    resumed = console(stack, "resume", DAG_ID, "--json")
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["triggered"] and result["halted"].startswith("ConfigError")
    assert tracker.halt() is None
    until(lambda: tracker.progress().finished, "the backfill to finish", stack, timeout=240)
    base.wait_for_runs(stack)
    with engine.connect() as conn:
        counters = dict(conn.execute(sa.text(f"SELECT counter, COUNT(*) FROM {TABLE} GROUP BY counter")).all())
    assert counters == {1: 2000}
    assert status(stack)["state"] == "done"
