"""The governor benchmark's machinery: a private PostgreSQL with pgbench, and a real Airflow running the
backfill DAG ``bench/governor_dags``, one phase (a backfill of a given range and configuration) at a time.

The Airflow stack and its Redis run at the lowest CPU priority (``nice 19``): they share this machine's
cores with the database, and what is measured is what the backfill's SQL costs the database, not the
scheduler's Python (in production Airflow does not run on the database's host).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
import redis
import sqlalchemy as sa

from airflow_spreader.state.adapt import AdaptState
from airflow_spreader.state.governor import GovernorState
from airflow_spreader.state.tracker import Tracker
from bench.common import ROOT
from bench.harness import redis_connection
from bench.pgbench_load import Pgbench, Workload, start_server
from devtools.embedded import EmbeddedRedis
from devtools.replica import StreamingPair
from devtools.rest import AirflowApiError
from devtools.stack import AirflowStack

DAG_ID = "spreader_governor_bench"
DAGS = Path(__file__).resolve().parent / "governor_dags"


@dataclass(frozen=True)
class Batch:
    begin_id: int
    end_id: int
    rows: int
    started: float
    ended: float


@dataclass
class Phase:
    """One part of the run: a window of the timeline, and what the backfill did in it (none: baseline)."""

    name: str
    label: str
    per_second: float | None  # batches per second configured (the ceiling for the governor)
    start: float
    end: float
    batches: list[Batch] = field(default_factory=list)
    holds: int = 0
    held_seconds: float = 0.0
    checks: int = 0
    timed_out: bool = False
    reasons: list[str] = field(default_factory=list)  # the governor's hold reasons, oldest first
    factors: list[tuple[float, float]] = field(default_factory=list)  # (epoch, rate factor) as planned

    @property
    def rows(self) -> int:
        return sum(b.rows for b in self.batches)

    @property
    def rows_per_second(self) -> float:
        return self.rows / (self.end - self.start) if self.batches and self.end > self.start else 0.0


def fixed_config(batch_size: int, per_second: float, duration: float, pool: int) -> dict[str, Any]:
    return {"batch_size": batch_size, "duration": duration, "per_second_on_peak": per_second,
            "per_second_off_peak": per_second, "max_tasks_per_cycle": pool, "lease_seconds": 3600}


class GovernorBench:
    """The server, pgbench, Redis and Airflow of one benchmark run; :meth:`backfill` runs one phase."""

    def __init__(self, workdir: Path, scale: int, workload: Workload, pool: int, ports: int | None) -> None:
        self.workdir, self.scale, self.workload, self.pool = workdir, scale, workload, pool
        self.ports = ports
        self.server: StreamingPair | None = None
        self.pgbench: Pgbench | None = None
        self.redis = EmbeddedRedis(port=ports + 1 if ports else None, directory=workdir / "governor-redis")
        self.stack: AirflowStack | None = None
        self.tracker: Tracker | None = None
        self.engine: sa.Engine | None = None

    @property
    def rows(self) -> int:
        return self.scale * 100_000

    def start(self) -> None:
        self.server = start_server(self.ports, self.scale)
        self.engine = sa.create_engine(self.server.primary_url, isolation_level="AUTOCOMMIT")
        url = self.redis.start()
        self.tracker = Tracker(DAG_ID, redis.Redis.from_url(url))
        source = {"conn_type": "postgres", "host": "127.0.0.1", "port": self.server.primary_port,
                  "login": "postgres", "schema": "postgres"}
        self.stack = AirflowStack(self.workdir / "governor-airflow", DAGS, parallelism=self.pool + 4, env={
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "AIRFLOW_CONN_SPREADER_GOVERNOR_BENCH_SOURCE": json.dumps(source),
            "AIRFLOW_CONN_REDIS_DEFAULT": redis_connection(url),
        })
        self.stack.start()
        self.stack.client.wait_for_dag(DAG_ID, timeout=180)
        self.stack.client.unpause(DAG_ID)
        self.stack.client.set_pool(DAG_ID, self.pool)
        for proc in [*self.stack.alive_processes(), psutil.Process(self.redis.process.pid)]:  # type: ignore[union-attr]
            with contextlib.suppress(psutil.Error):
                proc.nice(19)  # children (task processes) inherit it
        self.pgbench = Pgbench(self.server, self.workdir / "pgbench", self.workload).start()

    def stop(self) -> None:
        if self.pgbench is not None:
            self.pgbench.stop()
        with contextlib.suppress(Exception):
            if self.stack is not None:
                self.stack.stop()
        self.redis.stop()
        if self.engine is not None:
            self.engine.dispose()
        if self.server is not None:
            self.server.stop()

    def sql(self, statement: str) -> list[Any]:
        assert self.engine is not None
        with self.engine.connect() as conn:
            result = conn.execute(sa.text(statement))
            return list(result.all()) if result.returns_rows else []

    def settle(self, seconds: float) -> None:
        """A clean start for the next phase: the last one's dead rows vacuumed, its dirty pages written."""
        self.sql("VACUUM pgbench_accounts")
        self.sql("CHECKPOINT")
        time.sleep(seconds)

    def baseline(self, name: str, label: str, seconds: float) -> Phase:
        start = time.time()
        time.sleep(seconds)
        return Phase(name, label, None, start, time.time())

    def backfill(self, name: str, label: str, config: dict[str, Any], rows: int, timeout: float) -> Phase:
        """Run the backfill over ``aid`` 1..rows with ``config`` until it finishes (or ``timeout``)."""
        assert self.stack is not None and self.tracker is not None
        client = self.stack.client
        self.sql("TRUNCATE governor_bench_batches")
        self.tracker.reset()
        self.tracker.start(max_id=min(rows, self.rows), min_id=1)
        client.set_variable(f"spreader__{DAG_ID}", config)
        known = {r["dag_run_id"] for r in client.dag_runs(DAG_ID)}
        client.trigger(DAG_ID)
        deadline = time.monotonic() + timeout
        timed_out = False
        adapt, factors = AdaptState(self.tracker.redis, DAG_ID), list[tuple[str | None, float, float]]()
        while not self.tracker.progress().finished:
            planned = adapt.load()
            if planned is not None and (not factors or planned.planned_for != factors[-1][0]):
                factors.append((planned.planned_for, time.time(), planned.factor))
            if time.monotonic() > deadline:
                timed_out = True
                self.tracker.stop()  # batches not started hand their ranges back
                break
            time.sleep(0.25)
        state = GovernorState(self.tracker.redis, DAG_ID)
        record, history = state.current(), state.history()
        self._end_runs(known, force=timed_out)
        recorded = self.sql("SELECT begin_id, end_id, rows, started, ended FROM governor_bench_batches "
                            "ORDER BY started")
        batches = [Batch(int(b), int(e), int(r), float(s), float(d)) for b, e, r, s, d in recorded]
        start = min((b.started for b in batches), default=time.time())
        end = max((b.ended for b in batches), default=start)
        phase = Phase(name, label, config["per_second_on_peak"], start, end, batches, timed_out=timed_out)
        phase.factors = [(at, factor) for _, at, factor in factors]
        if record is not None:
            phase.holds = state.holds()
            phase.held_seconds, phase.checks = record.held_seconds, record.checks
            phase.reasons = [entry.reason for entry in reversed(history) if entry.decision == "hold"]
        print(f"    {name}: {len(batches)} batches, {phase.rows_per_second:,.0f} rows/s over "
              f"{end - start:.0f} s{' (timed out)' if timed_out else ''}", flush=True)
        return phase

    def _end_runs(self, known: set[str], force: bool, timeout: float = 120.0) -> None:
        """Until every run of this phase has ended; stopped ones (a timeout) are marked failed."""
        assert self.stack is not None
        client = self.stack.client
        deadline = time.monotonic() + (5 if force else timeout)
        while True:
            runs = [r for r in client.dag_runs(DAG_ID) if r["dag_run_id"] not in known]
            active = [r for r in runs if r["state"] not in {"success", "failed"}]
            if not active:
                return
            if time.monotonic() > deadline:
                for run in active:  # best effort: under load the API's database may refuse (HTTP 500)
                    with contextlib.suppress(AirflowApiError):
                        client.request("PATCH", f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run['dag_run_id'], safe='')}",
                                       json_body={"state": "failed"}, params={"update_mask": ["state"]})
                time.sleep(3)
                return
            time.sleep(0.5)


@contextlib.contextmanager
def governor_bench(workdir: Path, scale: int, workload: Workload, pool: int,
                   ports: int | None) -> Iterator[GovernorBench]:
    bench = GovernorBench(workdir, scale, workload, pool, ports)
    try:
        bench.start()
        yield bench
    finally:
        bench.stop()
