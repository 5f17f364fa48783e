"""A halted backfill under a real scheduler: an invalid Variable ends the chain, ``status`` says so, and after
``config --replace`` one ``resume`` finishes the backfill exactly once.

Run alone: ``.venv/bin/python -m pytest -m scheduler tests/scheduler/test_backfill_scheduler_halt.py``.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_spreader.core.names import config_variable
from airflow_spreader.state.tracker import Tracker
from devtools.stack import AirflowStack
from tests.airflow.conftest import TABLE
from tests.scheduler import test_backfill_scheduler as base

pytestmark = pytest.mark.scheduler

DAG_ID = base.DAG_ID
GOOD = {"batch_size": 50, "duration": 4, "per_second_on_peak": 5, "per_second_off_peak": 5, "max_tasks_per_cycle": 4}
# The stack of test_backfill_scheduler.py, reused as it is (same dags, source and Redis): this module runs right
# after it (file order), so no second Airflow start.
source_db = base.source_db
stack = base.stack
tracker = base.tracker


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
    stack.client.wait_for_dag(DAG_ID, timeout=120)
    earlier = {run["dag_run_id"] for run in base.wait_for_runs(stack)}  # the other module's runs, if it ran first
    stack.client.trigger(DAG_ID)
    until(lambda: tracker.is_started() and tracker.progress().cycles >= 1, "the first cycle", stack)
    stack.client.set_variable(config_variable(DAG_ID), '{"batch_size": 50,')  # broken before the next plan
    until(lambda: tracker.halt() is not None, "the halt", stack)
    runs = base.wait_for_runs(stack, excluding=earlier)
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
