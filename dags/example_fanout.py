"""Fan-out example (an airflow DAG file): sync 120 accounts every 6 hours, one every 3 minutes.

Started together, the 120 syncs would hit the database and the rate-limited API in one burst at the
top of each interval. ``spread_items`` starts account i at ``i * 6 h / 120`` after the run begins,
each task instance deferred (holding no worker slot) until its time. Change the schedule and the
spacing follows.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from airflow.sdk import DAG, task

from airflow_spreader.compat import CronTriggerTimetable  # airflow.sdk from Airflow 3.2, airflow.timetables before
from airflow_spreader.operators.fanout import spread_items

log = logging.getLogger(__name__)


def sync_account(account_id: str) -> str:
    """The per-account work (here it only logs). Make it idempotent: a retry runs it again."""
    log.info("Syncing account %s", account_id)
    return account_id


with DAG(
    "example_fanout",
    # No start_date and run_immediately=timedelta(0): unpausing waits for the next tick. (With a
    # start_date and catchup=False Airflow starts the tick just past at once: a six-hour run that, with
    # max_active_runs=1, would hold back a manual trial run.)
    schedule=CronTriggerTimetable("0 */6 * * *", timezone="UTC", run_immediately=timedelta(0)),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=True,  # an example: unpause it to try it (it would otherwise run in `make demo`)
    tags=["airflow-spreader", "fan-out"],
    doc_md=__doc__,
) as dag:

    @task
    def list_accounts() -> list[str]:
        """The accounts that need a sync (a real DAG would query them)."""
        return [f"acct-{number:04d}" for number in range(1, 121)]

    # 12 task instances of 10 accounts each (account j, j+12, j+24, ...: 36 minutes apart, deferred in
    # between), lighter on the scheduler than 120 instances; each account still starts at its own time.
    # Options: window=0.8 (spread over the first 80% of the interval), max_per_second=0.5 (a hard cap),
    # interval="0 */6 * * *" or a timedelta (instead of the schedule's), pool=..., retries=...
    # A manual run can be compressed: airflow dags trigger example_fanout --conf '{"spread_over": 600}'
    spread_items(list_accounts(), sync_account, task_id="sync_accounts", max_tasks=12)
