"""Benchmark 3, unthrottled: rows per second against the plain thread-pool script, and where the
difference goes (the phases of a cycle, CPU by component, py-spy)."""

from __future__ import annotations

import statistics
from collections import defaultdict

from bench import workload
from bench.baseline import BaselineRun, plain_script
from bench.common import Section, Stats, Table, fmt
from bench.harness import COMPONENTS, BenchStack, Run
from bench.measures import BETWEEN, STAGGER, between_batches, cpu_per_1000, phases
from bench.profiling import Profile
from bench.scenarios import Params


def unthrottled_runs(stack: BenchStack, params: Params, section: Section, idle: dict[str, float],
                     profile: Profile | None, label: str = "Unthrottled", target: float | None = None,
                     ) -> tuple[dict[str, list[float]], list[Run], list[BaselineRun]]:
    """The unthrottled runs against the plain script, interleaved; their tables and verdicts, titled ``label``
    (bench/million.py runs them on 10^6 rows), with a verdict against ``target`` (end to end, of the script's)
    if given. Returns the phases' timings, the timed Airflow runs (not the
    profiled one) and the baseline runs."""
    scenario = params.unthrottled()
    lower = label.lower()
    airflow_runs: list[Run] = []
    baselines: list[BaselineRun] = []
    for i in range(params.repeats):  # interleaved, so that both see the same noise
        baselines.append(plain_script(stack.source_url, scenario.min_id, scenario.max_id, scenario.batch_size,
                                      params.pool))
        last = i == params.repeats - 1
        if profile is not None and profile.binary and last and params.repeats > 1:
            airflow_runs.append(stack.run(scenario))  # keep the profiler out of the timed runs...
            with profile.recording(stack):
                stack.run(scenario)  # ...and profile an extra one
        else:
            airflow_runs.append(stack.run(scenario))
    rows = scenario.max_id - scenario.min_id + 1
    af_e2e = Stats.of(rows / (max(b.finished for b in r.batches) - r.triggered) for r in airflow_runs)
    af_steady = Stats.of(rows / (max(b.finished for b in r.batches) - min(b.started for b in r.batches))
                         for r in airflow_runs)
    base = Stats.of(rows / b.wall for b in baselines)
    base_steady = Stats.of(rows / (max(x.finished for x in b.batches) - min(x.started for x in b.batches))
                           for b in baselines)
    ideal = params.pool / workload.ROW_SECONDS
    unthrottled = Table(
        f"{label}: rows per second against the plain script (same work, same table, same concurrency)",
        ["measure", "Airflow + airflow-spreader", "plain script (baseline)", "efficiency (ratio)"],
        intro=(f"Batch {scenario.batch_size} rows, rate {scenario.per_second:g}/s configured (the pool serves at "
               f"most {params.pool / (scenario.batch_size * workload.ROW_SECONDS):g}/s), {scenario.batches} "
               f"batches in one cycle of {params.pool} task instances; baseline: {params.pool} threads. Median "
               f"[min .. max] of {params.repeats} runs each, interleaved. The ideal is {ideal:,.0f} rows/s "
               f"({params.pool} workers x 1 row/ms)."),
    )
    unthrottled.add("rows/s, end to end (trigger or script start -> last batch done)", af_e2e.fmt(4),
                    base.fmt(4), f"{af_e2e.median / base.median:.1%}")
    unthrottled.add("rows/s, steady state (first batch start -> last batch done)", af_steady.fmt(4),
                    base_steady.fmt(4), f"{af_steady.median / base_steady.median:.1%}")
    unthrottled.add("wall seconds", Stats.of(max(b.finished for b in r.batches) - r.triggered
                                             for r in airflow_runs).fmt(3),
                    Stats.of(b.wall for b in baselines).fmt(3), "")
    unthrottled.add("exactly once", "yes" if all(r.rows_once and not r.problems for r in airflow_runs)
                    else "NO", "yes" if all(b.rows_once for b in baselines) else "NO", "")
    section.tables.append(unthrottled)
    section.verdict(f"{lower}: rows/s against the plain script, end to end",
                    f"{fmt(af_e2e.median)} vs {fmt(base.median)} ({af_e2e.median / base.median:.1%})",
                    f">= {target:.0%}" if target else "(reported)",
                    af_e2e.median / base.median >= target if target else None)
    section.verdict(f"{lower}: rows/s against the plain script, steady state",
                    f"{fmt(af_steady.median)} vs {fmt(base_steady.median)} "
                    f"({af_steady.median / base_steady.median:.0%})", "(reported)", None)
    section.headline["efficiency_e2e"] = f"{af_e2e.median / base.median:.0%}"
    section.headline["efficiency_steady"] = f"{af_steady.median / base_steady.median:.0%}"
    section.headline["rows_airflow"] = fmt(af_e2e.median)
    section.headline["rows_baseline"] = fmt(base.median)

    phase_values: dict[str, list[float]] = defaultdict(list)
    for result in airflow_runs:
        for name, value in phases(result).items():
            phase_values[name].append(value)
    gaps_base = [g for b in baselines for g in between_batches(b.batches)]
    phase_table = Table(
        f"{label}: where the time goes (one cycle)",
        ["phase", "seconds, median [min .. max] over runs"],
        intro="From the task instances' dates (REST API) and the batches' own timestamps.",
        notes=[f"For comparison, the plain script spends {statistics.median(gaps_base) * 1000:.1f} ms between two "
               "batches of one thread (commit, next range, connection from its pool)."] if gaps_base else [],
    )
    for name, values in phase_values.items():
        phase_table.add(name, Stats.of(values).fmt(3))
    section.tables.append(phase_table)

    cpu = Table(
        f"{label}: CPU by component (seconds per 1,000 batches, net of idle)",
        ["component", *[f"run {i + 1}" for i in range(len(airflow_runs))]],
        intro=(f"psutil on the stack's process tree (reaped children included); each component's idle burn "
               f"(measured before the runs) times the run's wall time is subtracted. {scenario.batches} batches "
               f"of {scenario.batch_size} rows per run."),
    )
    per_run = [cpu_per_1000(r, idle) for r in airflow_runs]
    for key in [*COMPONENTS, "Redis server"]:
        cpu.add(key, *[f"{p[key]:.1f}" for p in per_run])
    cpu.add("total", *[f"{sum(p.values()):.1f}" for p in per_run])
    section.tables.append(cpu)
    if profile is not None and profile.available:
        section.tables += profile.tables(label)
    elif profile is not None:
        section.analysis.append(f"(py-spy profile skipped: {profile.reason})")
    return phase_values, airflow_runs, baselines


def unthrottled_analysis(section: Section, phase_values: dict[str, list[float]], runs: list[Run],
                         baselines: list[BaselineRun], idle: dict[str, float], profile: Profile | None) -> list[str]:
    """Plain words on the unthrottled figures: where the difference with the script goes."""
    start = statistics.median(phase_values["trigger -> first batch's work"])
    wall = statistics.median(max(b.finished for b in r.batches) - r.triggered for r in runs)
    base = statistics.median(b.wall for b in baselines)
    per = [cpu_per_1000(r, idle) for r in runs]
    cpu = {k: statistics.median(p[k] for p in per) for k in per[0]}
    total = sum(cpu.values()) or 1.0
    script_gap = statistics.median(g for b in baselines for g in between_batches(b.batches))
    lines = [
        f"**Unthrottled.** The Airflow run takes {wall:.1f} s where the script takes {base:.1f} s. {start:.1f} s "
        "of the difference is paid before the first batch starts (the scheduler creating the run, the plan task, "
        "the scheduler expanding the mapping, the batch task processes starting), once per cycle; after that the "
        f"pool runs at {section.headline['efficiency_steady']} of the script's steady rate: its task instances "
        f"get going over {statistics.median(phase_values[STAGGER]):.2f} s (each is its own process) where the "
        "script's threads start together, and a task instance takes "
        f"{statistics.median(phase_values[BETWEEN]) * 1000:.0f} ms from one batch's end to the next one's start "
        f"(the tracker's Redis calls, the stop check, the commit) against {script_gap * 1000:.0f} ms for a "
        "thread of the script. The fixed cost per cycle "
        "is amortised by longer cycles: a cycle whose batches keep the pool busy for T seconds reaches about "
        f"T / (T + {start:.0f} s) of the script's throughput (T = 180 s, the reference's cycle: "
        f"{180 / (180 + start):.0%}). Airflow's CPU for it ({total:.0f} CPU-s per 1,000 batches of "
        f"{runs[0].scenario.batch_size} rows): "
        f"task processes and their supervisors {cpu['executor+tasks'] / total:.0%}, api-server (the tasks' "
        f"execution API: state, heartbeats, XCom) {cpu['api-server'] / total:.0%}, scheduler "
        f"{cpu['scheduler'] / total:.0%}, Redis server {cpu['Redis server'] / total:.1%}.",
    ]
    if profile is not None and profile.available:
        lines.append(
            "In py-spy's samples of the task processes, importing modules (process start) takes "
            f"{profile.share('task process', 'importing modules (process start)'):.0%}, messages with the "
            f"supervisor {profile.share('task process', 'supervisor <-> task messages'):.0%}, Redis "
            f"{profile.share('task process', 'Redis (tracker, redis-py)'):.0%} and the source database "
            f"{profile.share('task process', 'SQL (SQLAlchemy and drivers)'):.0%}: the overhead is Airflow's "
            "per-task cost, not the tracker. Fewer, longer task instances (the grouping) are what keep it small.")
    return lines
