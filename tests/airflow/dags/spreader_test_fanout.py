"""Fan-out DAGs (airflow dag files) that the tests run under dag.test().

Each item records when it started, its task instance and try into a SQLite file in AIRFLOW_HOME,
so that tests can check the spacing and that every item ran once.
"""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Context, task

from airflow_spreader.operators.fanout import spread_items

START_DATE = datetime(2024, 1, 1, tzinfo=timezone.utc)
#: Paused when a real scheduler (tests/scheduler) parses this folder, so that the short schedules do not
#: start runs there; dag.test() runs them all the same.
PAUSED = {"start_date": START_DATE, "catchup": False, "is_paused_upon_creation": True}
#: Defer even short waits, so that a run of a few seconds goes through the triggerer and the resume.
# The wake margin absorbs the task's restart after the deferral: ~0.1 s on Airflow 3.3, 1.5-5 s on 3.1.
FAST_DEFER = {"defer_threshold": 2.5, "wake_margin": 2.5}


def starts_path() -> Path:
    return Path(os.environ["AIRFLOW_HOME"]) / "fanout_starts.db"


def record_start(item: Any, context: Context) -> Any:
    """The per-item work: note when it started; the item "boom" then fails."""
    started = time.time()
    ti = context["ti"]
    with sqlite3.connect(starts_path(), timeout=30) as db:
        db.execute("CREATE TABLE IF NOT EXISTS starts (dag_id TEXT, item TEXT, started REAL, map_index INTEGER, "
                   "try_number INTEGER)")
        db.execute("INSERT INTO starts VALUES (?, ?, ?, ?, ?)", (ti.dag_id, str(item), started, ti.map_index,
                                                                 ti.try_number))
    db.close()
    if item == "boom":
        raise RuntimeError("boom went the item")
    return f"done {item}"


@task
def list_items(items: list[str]) -> list[str]:
    return items


with DAG("spreader_test_fanout_spacing", schedule=timedelta(seconds=20), **PAUSED) as spacing:
    # 4 items over the first 80% of 20 s: one every 4 s, all in one task instance deferring between them.
    spread_items(list_items(["a", "b", "c", "d"]), record_start, window=0.8, max_tasks=1, **FAST_DEFER)

with DAG("spreader_test_fanout_each", schedule=timedelta(seconds=6), **PAUSED) as each:
    # 3 items, one task instance each, 2 s apart.
    spread_items(list_items(["p", "q", "r"]), record_start)

with DAG("spreader_test_fanout_empty", schedule="0 */6 * * *", **PAUSED) as empty:
    spread_items(list_items([]), record_start)

with DAG("spreader_test_fanout_failure", schedule=None, **PAUSED) as failure:
    # No schedule: the interval is given; the failure of "boom" must survive the deferral before "y".
    spread_items(list_items(["x", "boom", "y"]), record_start, interval=timedelta(seconds=9), max_tasks=1,
                 **FAST_DEFER)
