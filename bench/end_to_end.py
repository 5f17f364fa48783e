"""Benchmark 3: end to end under a real scheduler, against a plain thread-pool script.

Throttled: does the backfill hold the rate it was given (sustained batches per second, including the
gaps between cycles), start batches on time (lateness of each batch against its planned time), and
never burst above its own plan? Unthrottled (a rate above what the pool can serve): how close does it
get to a plain Python script doing the same work over the same table with as many threads as the pool
has slots, and where does the difference go (timestamps of every phase, CPU by component, py-spy)?

This module runs the two kinds of run into one section of RESULTS.md; their parts live beside it:
``scenarios`` (the runs' sizes), ``throttled`` and ``unthrottled`` (runs, tables, analysis), ``measures``
(what is read from a finished run) and ``baseline`` (the plain script).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench import workload
from bench.common import Section
from bench.harness import BenchStack, Run
from bench.profiling import Profile
from bench.scenarios import Params, Throttled
from bench.throttled import throttled_analysis, throttled_runs
from bench.unthrottled import unthrottled_analysis, unthrottled_runs

__all__ = ["Params", "Results", "Throttled", "run"]


@dataclass
class Results:
    """What the end-to-end runs produced, for this section and the scheduler-cost one."""

    section: Section
    runs: list[Run]


def run(stack: BenchStack, params: Params, idle: dict[str, float], profile: Profile | None) -> Results:
    section = Section(
        "3. End to end under a real scheduler",
        "A real Airflow (scheduler, dag-processor, triggerer, api-server; LocalExecutor) runs the DAG "
        "`bench/dags/spreader_bench.py` over a table of "
        f"{params.rows:,} rows in {stack.engine.dialect.name} (the tracker in a private Redis server). The "
        "work sleeps 1 ms per row (a key-management call), then one UPDATE bumps the rows' counter and records "
        "the batch's planned time (from the task's own batch list), its start and end. Each run is set up "
        "through the REST API (pool, Variable) and triggered; the tracker is started on the run's id range "
        "beforehand so the chain ends by itself; while it runs the bench polls Redis, not the api-server. Every "
        "run is checked: each row of its range processed exactly once, no other row touched.",
        {"table": f"{params.rows:,} rows", "pool": f"{params.pool} slots",
         "work": f"{workload.ROW_SECONDS * 1000:g} ms sleep per row + 1 UPDATE per batch",
         "metadata database": stack.metadata_label, "executor": "LocalExecutor"},
    )
    throttled = throttled_runs(stack, params, section, idle)
    phase_values, airflow_runs, baselines = unthrottled_runs(stack, params, section, idle, profile)
    section.analysis += throttled_analysis(throttled, phase_values, idle)
    section.analysis += unthrottled_analysis(section, phase_values, airflow_runs, baselines, idle, profile)
    return Results(section, [t.run for t in throttled] + airflow_runs)  # not the profiled run
