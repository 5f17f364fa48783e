"""Benchmark 4: CPU that Airflow itself spends per 1,000 batches, by batches per task instance.

Each task instance costs a process start, a runtime, API calls and scheduler work, whatever it runs; each
batch adds only a few Redis and API calls. ``max_tasks_per_cycle`` decides how many batches share one task
instance, so it trades Airflow CPU against concurrency and isolation. This sweeps it on short batches and
fits ``CPU = per_cycle + per_ti x task instances + per_batch x batches`` so users can size a deployment.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from bench import workload
from bench.common import Section, Table, fmt
from bench.harness import COMPONENTS, BenchStack, Run, Scenario
from bench.measures import cpu_per_1000

KEYS = [*COMPONENTS, "Redis server"]


@dataclass(frozen=True)
class Sweep:
    """Sweep points (batches, batches per TI): the same batches at several groupings, and a second size so
    that the per-cycle and per-batch costs can be told apart."""

    points: tuple[tuple[int, int], ...]
    batch_size: int
    pool: int

    @classmethod
    def for_mode(cls, quick: bool) -> Sweep:
        if quick:
            return cls(points=((16, 1), (16, 16), (4, 4)), batch_size=10, pool=8)
        return cls(points=((32, 2), (64, 4), (64, 16), (64, 64), (16, 16)), batch_size=10, pool=8)

    def scenario(self, batches: int, per_ti: int, top_id: int) -> Scenario:
        rate, duration = 20.0, batches / 20.0 + 1  # one cycle holds every batch, all due within seconds
        # The pool holds every TI: an unmeasured first cycle is grouped into min(max_tasks_per_cycle, slots) TIs.
        tis = batches // per_ti
        return Scenario(f"{batches} batches, {per_ti} per TI", self.batch_size, rate, duration, tis,
                        max(self.pool, tis), top_id - batches * self.batch_size + 1, top_id)


def solve(rows: list[list[float]], ys: list[float]) -> list[float]:
    """Least squares ``rows @ x = ys`` through the normal equations (a handful of points, three unknowns)."""
    n = len(rows[0])
    a = [[sum(r[i] * r[j] for r in rows) for j in range(n)] + [sum(r[i] * y for r, y in zip(rows, ys, strict=True))]
         for i in range(n)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        if abs(a[col][col]) < 1e-12:
            raise ValueError("the sweep cannot separate the costs (singular system)")
        for r in range(n):
            if r != col:
                factor = a[r][col] / a[col][col]
                a[r] = [x - factor * y for x, y in zip(a[r], a[col], strict=True)]
    return [a[i][n] / a[i][i] for i in range(n)]


def batch_tis(run: Run) -> int:
    """Mapped batch task instances (a cycle with nothing to plan has one unmapped, skipped placeholder)."""
    return sum(1 for ti in run.task_instances if ti["task_id"] == "batches" and ti["map_index"] >= 0)


def run(stack: BenchStack, quick: bool, top_id: int, idle: dict[str, float], others: list[Run]) -> Section:
    sweep = Sweep.for_mode(quick)
    sweeps = [stack.run(sweep.scenario(batches, per_ti, top_id)) for batches, per_ti in sweep.points]
    table = Table(
        "Airflow CPU seconds per 1,000 batches, by batches per task instance",
        ["run", "batches", "batch TIs", "batches per TI", "wall s", *[f"{k}" for k in KEYS], "total",
         "peak task processes", "peak executor+tasks PSS MiB", "exactly once"],
        intro=(f"Sweep runs: one cycle each, batches of {sweep.batch_size} rows "
               f"({sweep.batch_size * workload.ROW_SECONDS * 1000:g} ms of work), max_tasks_per_cycle = batches / "
               f"batches per TI and a pool of as many slots (at least {sweep.pool}): a first cycle is grouped into "
               "at most the pool's slots. The other rows are the runs of benchmark 3, for "
               "comparison (their throttled waits cost only idle CPU, which is subtracted). Every cycle also runs "
               "3 control TIs (plan, next_cycle, report), not counted in 'batch TIs'. CPU seconds per component, "
               "net of its idle burn, per 1,000 batches."),
    )
    for result in [*sweeps, *others]:
        per = cpu_per_1000(result, idle)
        tis = batch_tis(result)
        table.add(result.scenario.name, len(result.batches), tis, fmt(len(result.batches) / max(1, tis)),
                  f"{result.wall:.1f}", *[f"{per[k]:.0f}" for k in KEYS], f"{sum(per.values()):.0f}",
                  result.peak_tasks, f"{result.peak_executor_mib:,.0f}",
                  "yes" if result.rows_once and not result.problems else "NO: " + "; ".join(result.problems))
    totals = [sum(cpu_per_1000(r, idle).values()) * len(r.batches) / 1000 for r in sweeps]
    per_cycle, per_ti, per_batch = solve([[len(r.cycles) or 1, batch_tis(r), len(r.batches)] for r in sweeps],
                                         totals)
    refit = ""
    if per_batch < 0:  # a batch's own CPU (two Redis calls, one UPDATE; its work sleeps) is below the noise
        refit = (f" The three-term fit gave {per_batch * 1000:.0f} ms per batch, a negative cost: a batch's own "
                 "CPU (two Redis calls and an UPDATE; its work sleeps) is below this machine's noise, so the model "
                 "is refit with the per-batch term at 0.")
        per_cycle, per_ti = solve([[len(r.cycles) or 1, batch_tis(r)] for r in sweeps], totals)
        per_batch = 0.0
    model = Table(
        "Model: Airflow CPU = per cycle + per batch TI x TIs + per batch x batches (least squares on the sweep)",
        ["per cycle (run, plan, next_cycle, report) CPU s", "per batch task instance CPU s", "per batch CPU ms"],
        notes=[refit.strip()] if refit else [],
    )
    model.add(f"{per_cycle:.2f}", f"{per_ti:.2f}", f"{per_batch * 1000:.0f}")
    sizing = Table(
        "Sizing: Airflow cores busy at the reference's rate (7.5 batches/s, 1,350-batch cycles of 180 s)",
        ["max_tasks_per_cycle", "batches per TI", "CPU s per 1,000 batches", "cores busy at 7.5 batches/s"],
    )
    for groups in (1350, 256, 64, 16):
        cpu_per_batch = per_cycle / 1350 + per_ti * groups / 1350 + per_batch
        sizing.add(groups if groups <= 1024 else f"{groups} (over the 1,024 mapping limit: for scale only)",
                   fmt(1350 / groups), f"{cpu_per_batch * 1000:.0f}", f"{cpu_per_batch * 7.5:.2f}")
    section = Section(
        "4. Scheduler cost",
        "CPU seconds of every Airflow process (scheduler, its LocalExecutor workers and task processes, "
        "triggerer, dag-processor, api-server), read with psutil on the stack's process tree before and after "
        "each run (a process's reaped children included, so exited task processes count), minus each "
        "component's idle burn over the run's wall time; plus the private Redis server's CPU.",
        {"sweep (batches, batches per TI)": ", ".join(f"({b}, {p})" for b, p in sweep.points),
         "batch": f"{sweep.batch_size} rows", "pool": sweep.pool},
        [table, model, sizing],
    )
    at64 = per_cycle / 1350 + per_ti * 64 / 1350 + per_batch
    busy = [r for r in [*sweeps, *others] if r.peak_tasks >= 4]
    per_task_mib = statistics.median((r.peak_executor_mib - stack.idle_executor_mib) / r.peak_tasks for r in busy) \
        if busy else float("nan")
    section.analysis.append(
        f"A batch task instance costs about {per_ti:.2f} CPU-s of Airflow whatever it runs (a task process "
        "start, the task runtime, its API calls, scheduling), each batch inside it "
        f"{'nothing measurable' if refit else f'about {per_batch * 1000:.0f} ms'} more, and each cycle "
        f"{per_cycle:.1f} s (the DAG run, plan, next_cycle, "
        "report). Grouping is what makes the reference's rate affordable: with the default 64 task instances "
        f"per cycle Airflow keeps {at64 * 7.5:.2f} cores busy at 7.5 batches/s, against "
        f"{(per_cycle / 1350 + per_ti + per_batch) * 7.5:.1f} with one batch per task instance. The fit is "
        f"least squares over the sweep runs only.{refit} Memory: each running task instance adds about "
        f"{per_task_mib:.0f} MiB (proportional set size of its task process and its LocalExecutor worker, over "
        f"the workers' idle {stack.idle_executor_mib:.0f} MiB). A task instance whose batches are less than 10 s "
        "apart sleeps in its worker rather than deferring; the plan now takes the fewest task instances that keep "
        "each half busy (core/grouping.py), so at 7.5/s with 0.1-s batches 2 stay up (about "
        f"{2 * per_task_mib / 1024:.2f} GiB) where the round-robin into 64 kept all 64 up (a pool of 64, about "
        f"{64 * per_task_mib / 1024:.1f} GiB). The model counts no cost for a task instance kept up: section 3's "
        "rows measure it (a sleeping task instance heartbeats to the api-server).")
    biggest = max(len(r.batches) for r in sweeps)
    measured = sorted((len(r.batches) / max(1, batch_tis(r)), sum(cpu_per_1000(r, idle).values()))
                      for r in sweeps if len(r.batches) == biggest)
    measured_text = ", ".join(f"{per:.0f} per TI: {cpu:.0f}" for per, cpu in measured)
    section.verdict("Airflow CPU-s per 1,000 batches by batches per TI (measured, sweep)", measured_text,
                    "(reported)", None)
    section.headline["cpu_per_1000_measured"] = measured_text
    section.verdict("Airflow CPU per cycle / per batch TI / per batch (fit)",
                    f"{per_cycle:.2f} s / {per_ti:.2f} s / {per_batch * 1000:.0f} ms", "(reported)", None)
    section.verdict("Airflow cores busy at 7.5 batches/s, 64 TIs per cycle", f"{at64 * 7.5:.2f}", "(reported)", None)
    section.headline["cpu_per_ti"] = f"{per_ti:.2f} CPU-s"
    section.headline["cpu_per_batch"] = f"{per_batch * 1000:.0f} ms"
    section.headline["mib_per_task"] = f"{per_task_mib:.0f} MiB"
    section.headline["cores_reference"] = f"{at64 * 7.5:.2f}"
    section.headline["cpu_per_1000_at64"] = f"{at64 * 1000:.0f} CPU-s"
    return section
