"""The end-to-end bench's machinery: a real Airflow stack running bench/dags, one backfill at a time.

A run is set up the way an operator would (pool and Variable through the REST API), on a sub-range of
the table chosen by starting the tracker with those bounds before the first cycle, so that it ends by
itself after the wanted number of cycles. It returns every batch's planned, start and end time (written
by the work into the table), the DAG runs and task instances (REST API), the cycles' plans (XCom), the
CPU seconds of every Airflow process by component, and the private Redis server's CPU.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

import psutil
import redis
import sqlalchemy as sa

from airflow_spreader.state.tracker import Tracker
from bench import workload
from bench.common import ROOT
from devtools.embedded import EmbeddedRedis
from devtools.stack import AirflowStack

DAG_ID = "spreader_bench"
DAGS = Path(__file__).resolve().parent / "dags"
COMPONENTS = ("scheduler", "executor+tasks", "triggerer", "dag-processor", "api-server")


@dataclass(frozen=True)
class Scenario:
    """One backfill: its configuration, its pool, and the ids it covers."""

    name: str
    batch_size: int
    per_second: float
    duration: float
    max_tasks_per_cycle: int
    pool_slots: int
    min_id: int
    max_id: int
    timeout: float = 600.0
    lead_seconds: int | None = None  # None: the default

    @property
    def config(self) -> dict[str, Any]:
        lead = {} if self.lead_seconds is None else {"lead_seconds": self.lead_seconds}
        return {"batch_size": self.batch_size, "duration": self.duration, "per_second_on_peak": self.per_second,
                "per_second_off_peak": self.per_second, "max_tasks_per_cycle": self.max_tasks_per_cycle,
                "lease_seconds": 3600, **lead}

    @property
    def batches(self) -> int:
        return -(-(self.max_id - self.min_id + 1) // self.batch_size)


@dataclass(frozen=True)
class BatchTiming:
    """One batch as its work recorded it (epoch seconds); ``worker`` is its task instance or thread."""

    begin_id: int
    end_id: int
    planned: float | None
    started: float
    finished: float
    worker: str


@dataclass
class Run:
    """What one backfill did, as measured from outside."""

    scenario: Scenario
    triggered: float
    ended: float
    batches: list[BatchTiming]
    runs: list[dict[str, Any]]
    task_instances: list[dict[str, Any]]
    cycles: list[dict[str, Any]]
    cpu: dict[str, float]
    redis_cpu: float
    rows_once: bool
    problems: list[str] = field(default_factory=list)
    peak_tasks: int = 0
    peak_executor_mib: float = 0.0

    @property
    def wall(self) -> float:
        return self.ended - self.triggered


def epoch(value: str | None) -> float | None:
    """An API timestamp (ISO 8601) as epoch seconds."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


class CpuMeter:
    """CPU seconds used so far by a stack's processes, by component.

    Each live process counts its own time plus that of its children it has reaped (``children_*``): a task
    process that exited is counted in its supervisor, or in the scheduler once the worker is reaped. The
    scheduler's own process is "scheduler"; everything under it (LocalExecutor workers, task supervisors,
    task processes) is "executor+tasks". Differences of two snapshots are what ran in between.
    """

    def __init__(self, stack: AirflowStack) -> None:
        self.stack = stack

    def snapshot(self) -> dict[str, float]:
        roots = {proc.pid: name for name, proc in self.stack.processes.items()}
        totals = dict.fromkeys(COMPONENTS, 0.0)
        for proc in self.stack.alive_processes():
            try:
                times = proc.cpu_times()
                chain = [proc.pid] + [p.pid for p in proc.parents()]
            except psutil.Error:
                continue
            root = next((roots[pid] for pid in chain if pid in roots), None)
            own, reaped = times.user + times.system, times.children_user + times.children_system
            if root == "scheduler":
                totals["scheduler" if proc.pid in roots else "executor+tasks"] += own
                totals["executor+tasks"] += reaped
            else:
                totals[root or "executor+tasks"] += own + reaped
        return totals


def redis_connection(url: str) -> str:
    """An Airflow connection (JSON) for the Redis at ``url``."""
    parsed = urlparse(url)
    db = parse_qs(parsed.query).get("db", [parsed.path.strip("/") or "0"])[0]
    return json.dumps({"conn_type": "redis", "host": parsed.hostname or "127.0.0.1", "port": parsed.port or 6379,
                       "password": parsed.password, "extra": {"db": int(db)}})


class BenchStack:
    """Airflow (scheduler, dag-processor, triggerer, api-server; LocalExecutor) plus a private Redis server,
    driving the DAG ``spreader_bench`` over ``spreader_bench_rows`` in the source database."""

    def __init__(self, workdir: Path, source_url: str, metadata_url: str | None, parallelism: int) -> None:
        self.workdir = workdir
        self.source_url = source_url
        self.metadata_url = metadata_url
        self.parallelism = parallelism
        self.engine = sa.create_engine(source_url)
        self.redis = EmbeddedRedis(directory=workdir / "redis")
        self.stack: AirflowStack | None = None
        self.meter: CpuMeter | None = None
        self.tracker: Tracker | None = None
        self.redis_version = "?"
        self.idle_executor_mib = 0.0

    @property
    def metadata_label(self) -> str:
        return "PostgreSQL" if self.metadata_url and self.metadata_url.startswith("postgres") else "SQLite"

    @property
    def airflow(self) -> AirflowStack:
        if self.stack is None:
            raise RuntimeError("the stack is not started")
        return self.stack

    def start(self) -> float:
        """Start Redis and Airflow; return the seconds Airflow took to be healthy and parse the DAG."""
        url = self.redis.start()
        client = redis.Redis.from_url(url)
        self.redis_version = str(client.info("server").get("redis_version"))
        self.tracker = Tracker(DAG_ID, client)
        started = time.monotonic()
        self.stack = AirflowStack(
            self.workdir / "airflow", DAGS, parallelism=self.parallelism, sql_alchemy_conn=self.metadata_url,
            env={
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                "AIRFLOW_CONN_SPREADER_BENCH_SOURCE": json.dumps(
                    {"conn_type": "generic", "extra": {"sqlalchemy_url": self.source_url}}),
                "AIRFLOW_CONN_REDIS_DEFAULT": redis_connection(url),
                "SPREADER_BENCH_ROW_SECONDS": str(workload.ROW_SECONDS),
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            })
        self.stack.start()
        self.meter = CpuMeter(self.stack)
        self.stack.client.wait_for_dag(DAG_ID, timeout=180)
        self.stack.client.unpause(DAG_ID)
        return time.monotonic() - started

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            if self.stack is not None:
                self.stack.stop()
        self.redis.stop()
        self.engine.dispose()

    def cpu(self) -> dict[str, float]:
        assert self.meter is not None
        return self.meter.snapshot()

    def redis_cpu(self) -> float:
        """CPU seconds of the private Redis server so far."""
        assert self.redis.process is not None
        times = psutil.Process(self.redis.process.pid).cpu_times()
        return float(times.user + times.system)

    def executor_memory(self) -> tuple[int, float]:
        """Task processes running now (the scheduler's grandchildren: LocalExecutor worker -> task), and the
        proportional set size (shared pages split between sharers) of the scheduler's whole subtree, in MiB."""
        root = self.airflow.processes.get("scheduler")
        if root is None:
            return 0, 0.0
        try:
            workers = psutil.Process(root.pid).children()
        except psutil.Error:
            return 0, 0.0
        tasks, pss = 0, 0.0
        for worker in workers:
            try:
                children = worker.children()
                pss += worker.memory_full_info().pss
            except psutil.Error:
                continue
            for child in children:
                with contextlib.suppress(psutil.Error):
                    pss += child.memory_full_info().pss
                    tasks += 1
        return tasks, pss / 2**20

    def idle_cpu_rate(self, seconds: float) -> dict[str, float]:
        """CPU seconds per second each component burns with nothing to do (loops, parsing, heartbeats)."""
        self.wait_quiet()
        before, t0 = self.cpu(), time.monotonic()
        time.sleep(seconds)
        after, elapsed = self.cpu(), time.monotonic() - t0
        self.idle_executor_mib = self.executor_memory()[1]
        return {k: max(0.0, after[k] - before[k]) / elapsed for k in COMPONENTS}

    def wait_quiet(self, timeout: float = 300.0) -> None:
        """Until no run of the bench DAG is queued or running (the previous chain has ended)."""
        deadline = time.monotonic() + timeout
        while any(r["state"] in {"queued", "running"} for r in self.airflow.client.dag_runs(DAG_ID)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"runs of {DAG_ID} still active after {timeout:.0f} s")
            time.sleep(1)

    def run(self, scenario: Scenario) -> Run:
        """Run one backfill to its end and collect what it did."""
        assert self.tracker is not None
        client = self.airflow.client
        self.wait_quiet()
        known = {r["dag_run_id"] for r in client.dag_runs(DAG_ID)}
        workload.reset_rows(self.engine)
        self.tracker.reset()
        self.tracker.start(max_id=scenario.max_id, min_id=scenario.min_id)
        client.set_pool(DAG_ID, scenario.pool_slots)
        client.set_variable(f"spreader__{DAG_ID}", scenario.config)
        cpu0, redis0 = self.cpu(), self.redis_cpu()
        triggered = time.time()
        client.trigger(DAG_ID)
        deadline = time.monotonic() + scenario.timeout
        # Poll Redis, not the api-server, while the backfill runs: REST polling would be measured as Airflow CPU.
        peak_tasks, peak_mib, sampled = 0, 0.0, 0.0
        while not self.tracker.progress().finished:
            self._check_deadline(scenario, deadline)
            if time.monotonic() - sampled >= 1.0:
                tasks, mib = self.executor_memory()
                peak_tasks, peak_mib, sampled = max(peak_tasks, tasks), max(peak_mib, mib), time.monotonic()
            time.sleep(0.25)
        while True:  # then the chain's tail (next_cycle, report) until every run has ended
            runs = [r for r in client.dag_runs(DAG_ID) if r["dag_run_id"] not in known]
            if runs and all(r["state"] in {"success", "failed"} for r in runs):
                break
            self._check_deadline(scenario, deadline)
            time.sleep(0.5)
        ended = time.time()
        cpu1, redis1 = self.cpu(), self.redis_cpu()
        runs.sort(key=lambda r: r.get("start_date") or r.get("queued_at") or "")
        tis = [ti for r in runs for ti in client.task_instances(DAG_ID, r["dag_run_id"])]
        cycles = [c for c in (self._cycle(r["dag_run_id"]) for r in runs) if c]
        batches = read_batches(self.engine, scenario.min_id, scenario.max_id, scenario.batch_size)
        rows_once, problems = check_rows(self.engine, scenario.min_id, scenario.max_id)
        problems += [f"run {r['dag_run_id']} {r['state']}" for r in runs if r["state"] != "success"]
        print(f"    {scenario.name}: {len(batches)} batches, {len(runs)} runs in {ended - triggered:.0f} s"
              f"{'; PROBLEMS: ' + '; '.join(problems) if problems else ''}", flush=True)
        return Run(scenario, triggered, ended, batches, runs, tis, cycles,
                   {k: cpu1[k] - cpu0[k] for k in COMPONENTS}, redis1 - redis0, rows_once, problems,
                   peak_tasks=peak_tasks, peak_executor_mib=peak_mib)

    def _check_deadline(self, scenario: Scenario, deadline: float) -> None:
        assert self.tracker is not None
        if time.monotonic() > deadline:
            raise TimeoutError(f"scenario {scenario.name} not finished after {scenario.timeout:.0f} s: "
                               f"{self.tracker.progress()}\n{self.airflow.log_tails(15)}")

    def _cycle(self, run_id: str) -> dict[str, Any] | None:
        path = (f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/plan/xcomEntries/cycle")
        response = self.airflow.client.request("GET", path, ok_statuses=(404,))
        if response.status_code == 404:
            return None
        value = response.json().get("value")
        data = json.loads(value) if isinstance(value, str) else value
        return dict(data, run_id=run_id) if isinstance(data, dict) else None

def read_batches(engine: sa.Engine, min_id: int, max_id: int, batch_size: int) -> list[BatchTiming]:
    """One record per batch, from the rows its work marked (a batch's rows share their times)."""
    rows = workload.rows
    # the batch's index: integer division on both SQLite and PostgreSQL
    k: sa.ColumnElement[int] = sa.literal_column(f"({int(max_id)} - id) / {int(batch_size)}")
    query = (sa.select(sa.func.min(rows.c.id), sa.func.max(rows.c.id), sa.func.max(rows.c.planned_at),
                       sa.func.max(rows.c.started_at), sa.func.max(rows.c.finished_at), sa.func.max(rows.c.worker))
             .where(rows.c.id.between(min_id, max_id), rows.c.started_at.is_not(None))
             .group_by(k))
    with engine.connect() as conn:
        return sorted((BatchTiming(int(lo), int(hi), planned, float(start), float(end), str(worker))
                       for lo, hi, planned, start, end, worker in conn.execute(query)), key=lambda b: b.started)


def check_rows(engine: sa.Engine, min_id: int, max_id: int) -> tuple[bool, list[str]]:
    """Every row of the range processed exactly once, and no row outside it touched."""
    rows = workload.rows
    inside = rows.c.id.between(min_id, max_id)
    with engine.connect() as conn:
        counts: dict[int, int] = dict(conn.execute(sa.select(rows.c.counter, sa.func.count()).where(inside)
                                   .group_by(rows.c.counter)).all())
        outside = conn.execute(sa.select(sa.func.count()).where(~inside, rows.c.counter != 0)).scalar_one()
    expected = {1: max_id - min_id + 1}
    problems = []
    if counts != expected:
        problems.append(f"rows by times processed {counts}, expected {expected}")
    if outside:
        problems.append(f"{outside} rows outside the range were touched")
    return not problems, problems


@contextlib.contextmanager
def bench_stack(workdir: Path, source_url: str, metadata_url: str | None, parallelism: int) -> Iterator[BenchStack]:
    stack = BenchStack(workdir, source_url, metadata_url, parallelism)
    try:
        yield stack
    finally:
        stack.stop()
