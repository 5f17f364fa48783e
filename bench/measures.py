"""Measures of one end-to-end run: rates, lateness, bursts, the phases of a cycle, CPU per 1,000 batches.

Everything here reads a finished ``Run`` (the batches' own timestamps, the DAG runs and task instances
from the REST API, the cycles' plans from XCom); nothing touches the stack.
"""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from bench.harness import COMPONENTS, BatchTiming, Run, epoch

BETWEEN = "between two batches of one TI, median (complete, begin, connection)"
STAGGER = "first batch of the first TI -> first batch of the last TI (TIs start one by one)"


def lateness(batches: Sequence[BatchTiming]) -> list[float]:
    return [b.started - b.planned for b in batches if b.planned is not None]


def peak_rate(times: Sequence[float], window: float = 5.0) -> float:
    """Most starts in any ``window``-second half-open interval, per second."""
    ordered = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while t - ordered[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best / window


def cycle_bounds(run: Run) -> list[tuple[float, float, int]]:
    """(begin_at, planned duration, batches) of each cycle, in order."""
    return sorted((epoch(c["begin_at"]) or 0.0, float(c["duration"]), int(c["batches"])) for c in run.cycles)


def sustained_rate(run: Run) -> tuple[float, float]:
    """The long-run rate actually achieved: every batch over the time from the first cycle's begin to the
    last cycle's planned end, that end pushed back by the lateness of the last batch (so gaps between
    cycles and late starts count); and the mean planned gap between a cycle's planned end and the next
    cycle's begin, in seconds."""
    cycles = [c for c in cycle_bounds(run) if c[2] > 0]
    timed = [b for b in run.batches if b.planned is not None]
    if not cycles or not timed:
        return 0.0, 0.0
    last = max(timed, key=lambda b: (b.planned or 0.0, b.started))
    span = cycles[-1][0] + cycles[-1][1] - cycles[0][0] + max(0.0, last.started - (last.planned or 0.0))
    gaps = [nxt[0] - (cur[0] + cur[1]) for cur, nxt in itertools.pairwise(cycles)]
    return len(run.batches) / span, statistics.fmean(gaps) if gaps else 0.0


def late_at_cycle_start(run: Run, late_after: float = 1.0, window: float = 5.0) -> tuple[int, int]:
    """(batches later than ``late_after`` s planned within ``window`` s of their cycle's begin, all late ones)."""
    begins = [c[0] for c in cycle_bounds(run)]
    late = [b for b in run.batches if b.planned is not None and b.started - b.planned > late_after]
    early = sum(1 for b in late if any(0 <= (b.planned or 0) - begin < window for begin in begins))
    return early, len(late)


def held_span(begin: float, duration: float, starts: Sequence[float], per_second: float) -> float:
    """Seconds a stretch of batches planned over ``duration`` from ``begin`` took: its planned duration, or up
    to its last start (plus one slot) if that came later."""
    return max(duration, max(starts) - begin + 1 / per_second)


def in_cycle_rate(run: Run) -> float:
    """Batches per second while cycles run: each cycle's batches over its planned duration, or up to its
    last start if that came later (gaps between cycles excluded)."""
    spans = []
    for cycle in run.cycles:
        begin, duration = epoch(cycle["begin_at"]) or 0.0, float(cycle["duration"])
        low, high = int(cycle["cursor_after"]), int(cycle["cursor_before"])
        starts = [b.started for b in run.batches if low < b.end_id <= high]
        if starts:
            spans.append((len(starts), held_span(begin, duration, starts, run.scenario.per_second)))
    return sum(n for n, _ in spans) / sum(t for _, t in spans) if spans else 0.0


def ti_index(run: Run) -> dict[str, dict[str, Any]]:
    """Batch task instances by the ``worker`` label the work writes (run id / map index)."""
    return {f"{ti['dag_run_id']}/{ti['map_index']}": ti for ti in run.task_instances if ti["task_id"] == "batches"}


def by_worker(batches: Sequence[BatchTiming]) -> dict[str, list[BatchTiming]]:
    groups: dict[str, list[BatchTiming]] = defaultdict(list)
    for batch in batches:
        groups[batch.worker].append(batch)
    for group in groups.values():
        group.sort(key=lambda b: b.started)
    return groups


def between_batches(batches: Sequence[BatchTiming]) -> list[float]:
    """Seconds from one batch's end to the next batch's start in the same worker (its bookkeeping)."""
    return [nxt.started - cur.finished for group in by_worker(batches).values()
            for cur, nxt in itertools.pairwise(group)]


def phases(run: Run) -> dict[str, float]:
    """Seconds spent in each phase of the (first) cycle, from task-instance dates and the work's timestamps."""
    first_run = run.runs[0]["dag_run_id"]
    tis = [ti for ti in run.task_instances if ti["dag_run_id"] == first_run]
    plan = next(ti for ti in tis if ti["task_id"] == "plan")
    batch_tis = [ti for ti in tis if ti["task_id"] == "batches"]
    workers = by_worker([b for b in run.batches if b.worker.startswith(first_run + "/")])
    index = ti_index(run)
    plan_end = epoch(plan["end_date"]) or 0.0

    def med(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    ti_start_to_work = [group[0].started - (epoch(index[w]["start_date"]) or 0.0) for w, group in workers.items()
                        if w in index]
    work_to_ti_end = [(epoch(index[w]["end_date"]) or 0.0) - group[-1].finished for w, group in workers.items()
                      if w in index]
    last_ti_end = max(epoch(ti["end_date"]) or 0.0 for ti in batch_tis)
    return {
        "trigger -> plan queued (scheduler creates the run)": (epoch(plan["queued_when"]) or 0) - run.triggered,
        "plan queued -> running (executor, task process start)":
            (epoch(plan["start_date"]) or 0) - (epoch(plan["queued_when"]) or 0),
        "plan running (Variable, Redis claim, checkpoint, XCom)": plan_end - (epoch(plan["start_date"]) or 0),
        "plan end -> batch TIs queued (scheduler expands the mapping)":
            min(epoch(ti["queued_when"]) or 0 for ti in batch_tis) - plan_end,
        "batch TI queued -> running, median (process start)":
            med([(epoch(ti["start_date"]) or 0) - (epoch(ti["queued_when"]) or 0) for ti in batch_tis]),
        "TI running -> its first batch's work, median (runtime, hooks, Redis begin)": med(ti_start_to_work),
        BETWEEN:
            med(between_batches([b for g in workers.values() for b in g])),
        "last batch's work -> TI end, median (teardown, XCom)": med(work_to_ti_end),
        STAGGER: max(g[0].started for g in workers.values()) - min(g[0].started for g in workers.values()),
        "last batch TI end -> run end (report; next_cycle ran beside the batches)":
            (epoch(run.runs[0]["end_date"]) or 0) - last_ti_end,
        "trigger -> first batch's work": min(b.started for b in run.batches) - run.triggered,
    }


def cpu_per_1000(run: Run, idle: dict[str, float]) -> dict[str, float]:
    """CPU seconds per 1,000 batches by component, net of what the component burns when idle."""
    per = 1000 / max(1, len(run.batches))
    net = {k: max(0.0, run.cpu[k] - idle[k] * run.wall) * per for k in COMPONENTS}
    net["Redis server"] = run.redis_cpu * per
    return net


#: The consecutive steps from the moment a cycle's run triggers the next one (its planned end E minus
#: lead_seconds) to the next cycle's first batch task instance running; their sum is the start-up the lead
#: must cover.
GAP_STEPS = (
    "E - lead -> next run created (next_cycle wakes, checkpoint, trigger)",
    "next run created -> next run running (scheduler; max_active_runs = 2)",
    "next run running -> its plan TI queued (scheduler)",
    "plan TI queued -> running (executor, task process start)",
    "plan TI running -> ended (Variable, Redis, pool check, claim)",
    "plan TI ended -> first batch TI running (mapping expansion, pool slot, task process start)",
)
#: Derived per transition: what is left of the lead when the next cycle's first batch TI runs (positive:
#: on time), the planned gap (next begin - E) and the next cycle's first batch's lateness.
LEAD_LEFT, GAP, FIRST_LATE = ("lead left at E (E - first batch TI running)", "gap: planned end -> next cycle's begin",
                              "next cycle's first batch: start - planned")


def cycle_gaps(run: Run) -> list[dict[str, float]]:
    """For each pair of consecutive cycles with batches, the seconds of each step of ``GAP_STEPS``, and
    ``LEAD_LEFT``, ``GAP`` and ``FIRST_LATE``. Read from the task instances' and runs' dates (REST API), the
    cycles' plans (XCom) and the batches' own start times."""
    runs = {r["dag_run_id"]: r for r in run.runs}
    tis: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ti in run.task_instances:
        tis[ti["dag_run_id"]].append(ti)
    cycles = sorted((c for c in run.cycles if int(c["batches"]) > 0), key=lambda c: epoch(c["begin_at"]) or 0.0)
    out = []
    for cur, nxt in itertools.pairwise(cycles):
        try:
            end = (epoch(cur["begin_at"]) or 0.0) + float(cur["duration"])
            plan = next(ti for ti in tis[nxt["run_id"]] if ti["task_id"] == "plan")
            first_ti = min(epoch(ti["start_date"]) or float("inf") for ti in tis[nxt["run_id"]]
                           if ti["task_id"] == "batches" and ti["map_index"] >= 0)
            low, high = int(nxt["cursor_after"]), int(nxt["cursor_before"])
            first = min((b for b in run.batches if low < b.end_id <= high and b.planned is not None),
                        key=lambda b: b.planned or 0.0)
            moments = [end - float(cur.get("lead_seconds", 0)), epoch(runs[nxt["run_id"]].get("queued_at")),
                       epoch(runs[nxt["run_id"]]["start_date"]), epoch(plan["queued_when"]),
                       epoch(plan["start_date"]), epoch(plan["end_date"]), first_ti]
        except (KeyError, StopIteration, ValueError):
            continue
        if any(m is None or m == float("inf") for m in moments):
            continue
        points = [float(m or 0.0) for m in moments]
        steps = {name: b - a for name, (a, b) in zip(GAP_STEPS, itertools.pairwise(points), strict=True)}
        out.append({**steps, LEAD_LEFT: end - points[-1], GAP: (epoch(nxt["begin_at"]) or 0.0) - end,
                    FIRST_LATE: first.started - (first.planned or 0.0)})
    return out
