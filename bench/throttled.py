"""Benchmark 3, throttled: does the backfill hold the rate it was given, start batches on time, and never
burst above its own plan? And where does the time between two cycles go?"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from airflow_spreader.core.config import DEFAULTS
from bench import workload
from bench.common import Section, Stats, Table, fmt, percentile
from bench.harness import BenchStack, Run, epoch
from bench.measures import (
    FIRST_LATE,
    GAP,
    GAP_STEPS,
    LEAD_LEFT,
    cpu_per_1000,
    cycle_gaps,
    in_cycle_rate,
    late_at_cycle_start,
    lateness,
    peak_rate,
    sustained_rate,
)
from bench.scenarios import RATE_TARGET, THROTTLED_BATCH, Params, Throttled


@dataclass(frozen=True)
class ThrottledResult:
    """The figures of one throttled run, for its table row and the analysis."""

    case: Throttled
    run: Run
    sustained: float
    gap: float
    within: float
    late: list[float]
    burst: float
    late_early: int
    late_total: int


def first_seconds_lateness(run: Run, seconds: float = 5.0) -> list[float]:
    """Lateness of the batches due in the first ``seconds`` of the run's first cycle (issue 17, target 2)."""
    begins = sorted(epoch(c["begin_at"]) or 0.0 for c in run.cycles if int(c["batches"]) > 0)
    if not begins:
        return []
    return [b.started - b.planned for b in run.batches
            if b.planned is not None and 0 <= b.planned - begins[0] < seconds]


def tasks_per_cycle(run: Run) -> str:
    """The task instances each cycle's plan grouped its batches into, in cycle order."""
    cycles = sorted((c for c in run.cycles if int(c["batches"]) > 0), key=lambda c: epoch(c["begin_at"]) or 0.0)
    return ", ".join(str(c.get("task_instances", "?")) for c in cycles)


def throttled_runs(stack: BenchStack, params: Params, section: Section,
                   idle: dict[str, float]) -> list[ThrottledResult]:
    """The throttled runs, their table and verdicts."""
    results: list[ThrottledResult] = []
    table = Table(
        "Throttled: rate held and start lateness",
        ["configured", "batches (cycles)", "sustained /s", "of configured", "within cycles /s",
         "gap between cycles s", "lateness p50 s", "lateness p95 s", "lateness max s", "started within 1 s of plan",
         "peak 5-s rate / plan's own peak", "first 5 s: lateness p95 s", "TIs per cycle",
         "Airflow CPU-s per 1,000 batches", "exactly once"],
        intro=(f"Batch {THROTTLED_BATCH} rows ({THROTTLED_BATCH * workload.ROW_SECONDS * 1000:g} ms of work) unless "
               f"the row says otherwise, pool {params.pool} unless it says otherwise. `max N TIs` is "
               "max_tasks_per_cycle (64 is the default): the plan groups a cycle's batches into the fewest task "
               "instances (TIs) that keep each at most half busy by the previous cycle's measured batch time "
               "(core/grouping.py; a first cycle at least the pool's slots), so a TI's batches are close and it sleeps "
               "between them in its worker rather than deferring. TIs per cycle: what each cycle's plan chose. "
               "A first cycle begins `lead_seconds` (6 s) after its plan (the start lead), later ones where "
               "the previous ends. "
               "Airflow CPU-s: as in section 4, every Airflow process net of idle, plus Redis. "
               "Sustained = every batch over the time from the first cycle's begin to the last cycle's planned "
               "end, pushed back by the last batch's lateness (gaps between cycles and late starts included: the "
               "long-run rate); within cycles = "
               "each cycle's batches over its planned duration (gaps excluded). Lateness = actual start - planned "
               "start, per batch. Peak 5-s rate: most starts in any 5 s, against the same measure of the plan "
               "(1.0 = never faster than planned)."),
    )
    for case in params.throttled:
        result = stack.run(params.throttled_scenario(case))
        first = first_seconds_lateness(result)
        cpu = sum(cpu_per_1000(result, idle).values())
        sustained, gap = sustained_rate(result)
        planned_peak = peak_rate([b.planned for b in result.batches if b.planned is not None])
        early, total = late_at_cycle_start(result)
        t = ThrottledResult(case, result, sustained, gap, in_cycle_rate(result), lateness(result.batches),
                            peak_rate([b.started for b in result.batches]) / planned_peak, early, total)
        results.append(t)
        rate, late = case.rate, t.late
        table.add(
            case.label, f"{len(result.batches)} ({sum(1 for c in result.cycles if int(c['batches']) > 0)})",
            fmt(sustained), f"{sustained / rate:.1%}",
            fmt(t.within), f"{gap:.1f}", f"{percentile(late, 50):.2f}", f"{percentile(late, 95):.2f}",
            f"{max(late):.2f}", f"{sum(1 for x in late if x <= 1.0) / len(late):.0%}", fmt(t.burst),
            f"{percentile(first, 95):.2f}" if first else "-", tasks_per_cycle(result), f"{cpu:.0f}",
            "yes" if result.rows_once and not result.problems else "NO: " + "; ".join(result.problems))
        section.verdict(f"throttled {case.label}: sustained rate (gaps between cycles included)",
                        f"{sustained:.2f}/s ({sustained / rate:.1%})", f">= {RATE_TARGET:.0%}",
                        sustained / rate >= RATE_TARGET)
        section.verdict(f"throttled {case.label}: rate within cycles", f"{t.within:.2f}/s ({t.within / rate:.1%})",
                        f">= {RATE_TARGET:.0%}", t.within / rate >= RATE_TARGET)
        section.verdict(f"throttled {case.label}: first 5 s lateness p95; peak 5-s rate / plan's",
                        f"{percentile(first, 95) if first else float('nan'):.2f} s; x{t.burst:.2f}",
                        "<= 0.5 s; <= x1.2", bool(first) and percentile(first, 95) <= 0.5 and t.burst <= 1.2)
        if case.groups == 64 and case.duration == 120:
            section.verdict(f"throttled {case.label}: Airflow CPU-s per 1,000 batches", f"{cpu:.0f}", "<= 20",
                            cpu <= 20)
        section.headline[f"throttled {case.label}"] = (
            f"{sustained / rate:.0%} sustained, {t.within / rate:.0%} within cycles, gap {gap:.1f} s, lateness "
            f"p50 {percentile(late, 50):.2f} s p95 {percentile(late, 95):.2f} s, burst x{t.burst:.2f}")
    section.tables.append(table)
    section.tables.append(gap_table(results))
    return results


def gap_table(results: list[ThrottledResult]) -> Table:
    """The hand-over between two cycles, step by step, by run and over every run."""
    per_case = [(t.case.label, cycle_gaps(t.run)) for t in results]
    every = [g for _, gaps in per_case for g in gaps]
    table = Table(
        "Throttled: the hand-over between two cycles, step by step",
        ["step", *[f"{label} ({len(gaps)})" for label, gaps in per_case], f"all ({len(every)}), median [min .. max]"],
        intro=("Seconds from the moment a cycle's `next_cycle` is due to trigger the next run (the cycle's planned "
               "end E = `begin_at + duration`, from its plan's XCom, minus `lead_seconds`) to the next cycle's first "
               "batch task instance running, cut at the moments the task instances and DAG runs record (REST API); "
               "the steps are consecutive, so they add up to the start-up that the lead must cover. Then what is "
               "left of the lead at E (positive: the next cycle's task instances were up in time), the planned "
               "gap (the next cycle's `begin_at` - E) and the lateness of the next cycle's first batch. Median "
               "over each run's cycle transitions (their number in brackets)."),
    )
    for name in [*GAP_STEPS, LEAD_LEFT, GAP, FIRST_LATE]:
        cells = [f"{statistics.median(g[name] for g in gaps):.2f}" if gaps else "-" for _, gaps in per_case]
        label = f"**{name}**" if name in (LEAD_LEFT, GAP, FIRST_LATE) else name
        table.add(label, *cells, Stats.of(g[name] for g in every).fmt(3) if every else "-")
    return table


def throttled_analysis(results: list[ThrottledResult], phase_values: dict[str, list[float]],
                       idle: dict[str, float]) -> list[str]:
    """Plain words on the throttled figures: what misses, why, what would fix it."""
    if not results:
        return []
    low, high = (f(t.within / t.case.rate for t in results) for f in (min, max))
    held = f"{low:.0%}" if f"{low:.0%}" == f"{high:.0%}" else f"{low:.0%} to {high:.0%}"
    lines = [handover_analysis(results, held), lateness_analysis(results)]
    lines += [within_miss(t) for t in results if t.within / t.case.rate < RATE_TARGET]
    lines.append(sizing_analysis(results, idle))
    return lines


def sizing_analysis(results: list[ThrottledResult], idle: dict[str, float]) -> str:
    """What the task sizing chose and what it cost, for the runs at the default max_tasks_per_cycle."""
    rows = [t for t in results if t.case.groups == 64]
    parts = [f"{t.case.label}: TIs per cycle {tasks_per_cycle(t.run)}, {sum(cpu_per_1000(t.run, idle).values()):.0f} "
             f"CPU-s per 1,000 batches, {t.within / t.case.rate:.1%} within cycles" for t in rows]
    return (
        "**Task sizing (issue 17, targets 4 and 6).** Before, a cycle was dealt round-robin into max_tasks_per_cycle "
        "task instances (64 by default), so at 2/s a TI's batches were 32 s apart: it deferred between them and "
        "resumed as a new task process each time (341 CPU-s per 1,000 batches in the previous RESULTS, 2/s, 40-s "
        "cycles), and at 5/s with a pool of 6 the resumes' task starts held the slots and loaded both cores (72-75% "
        "of the rate, issue 17). Now the plan groups a cycle into the fewest TIs that keep each at most half "
        "busy "
        "by the batch time measured over the previous cycle (at least 1, at most max_tasks_per_cycle; the "
        "pool's slots or the rate when nothing is measured yet): a TI's batches are TIs / rate "
        "apart, it "
        "sleeps between them in its worker, and the pool holds twice the concurrency the work needs. "
        + "; ".join(parts) + ".")


def handover_analysis(results: list[ThrottledResult], held: str) -> str:
    """How cycles follow each other: the lead, the start-up it covers, and the sustained rate that results."""
    lead = float(DEFAULTS["lead_seconds"])
    every = [g for t in results for g in cycle_gaps(t.run)]
    if not every:
        return "**Throttled: hand-over between cycles.** No cycle transition could be read from the runs."
    startup = statistics.median(sum(g[name] for name in GAP_STEPS) for g in every)
    left = Stats.of(g[LEAD_LEFT] for g in every)
    gap = Stats.of(g[GAP] for g in every)
    first = Stats.of(g[FIRST_LATE] for g in every)
    rates = "; ".join(f"{t.case.label}: {t.sustained / t.case.rate:.1%}" for t in results)
    missed = [t for t in results if t.sustained / t.case.rate < RATE_TARGET]
    verdict = (f"Every run holds the {RATE_TARGET:.0%} target." if not missed else
               "Missed: " + ", ".join(t.case.label for t in missed) + (
                   ": the next cycle's task instances were not up when the cycle ended (lead left below 0 in "
                   "the table above), so its first batches started late; a larger `lead_seconds` fixes it."
                   if left.median < 0 else ": see the lateness below."))
    return (
        f"**Throttled: the rate is held within cycles ({held} of configured) and between them.** Cycles tile "
        f"the time line: `next_cycle` runs beside the batches and triggers the next DAG run `lead_seconds` "
        f"({lead:g} s by default) before the cycle's planned end E, and that run's `plan` begins its cycle at E "
        "(the tracker records each claimed cycle's end; a plan that runs later begins at once). From that "
        f"trigger to the next cycle's first batch task instance running takes {startup:.2f} s (median over "
        f"{len(every)} cycle transitions; steps above), leaving {left.fmt(2)} s of the lead at E; the planned "
        f"gap between cycles is {gap.fmt(2)} s, and the next cycle's first batch starts {first.fmt(2)} s after "
        f"its planned time. The sustained rate, measured from the batches' actual starts, is therefore the "
        f"rate within cycles whatever the duration ({rates}). {verdict} The cost: the two runs overlap by the "
        "lead (`max_active_runs` = 2), and `next_cycle` is one more task instance per cycle that waits "
        "(deferred past 10 s) for the whole cycle. Before this hand-over (the previous RESULTS), a cycle began "
        "only once the previous one's last batch task instance had ended, about 2 s after its planned end, and "
        "20-s cycles sustained 90% of the configured rate.")


def within_miss(t: ThrottledResult) -> str:
    """Why one run's rate within cycles misses: the late batch that stretches a cycle's span, and where it was."""
    worst = max(t.run.batches, key=lambda b: b.started - (b.planned or b.started))
    begins = sorted(epoch(c["begin_at"]) or 0.0 for c in t.run.cycles if int(c["batches"]) > 0)
    planned = worst.planned or worst.started
    where = ("in the first 5 s of the run's first cycle, whose task instances all start at once, with no "
             "previous cycle to start them early" if begins and 0 <= planned - begins[0] < 5 else
             "at a hand-over, where the next cycle's task instances start a few seconds before the end and "
             "those whose first batch is less than 10 s away sleep in their pool slot, while this cycle's last "
             "batches, resumed from the triggerer, need a slot too" if any(0 <= b - planned < 10 for b in begins)
             else "inside a cycle")
    own = max((b for b in begins if b <= planned + 1e-6), default=begins[0] if begins else planned)
    position = planned - own
    return (
        f"**Within cycles, {t.case.label}: {t.within / t.case.rate:.1%}.** A cycle's span is stretched to its "
        f"last start, and the latest batch started {worst.started - planned:.2f} s after its planned time (p95 of "
        f"all: {percentile(t.late, 95):.2f} s); it was due {position:.1f} s into its cycle (batch "
        f"{round(position * t.case.rate) + 1} of {round(t.case.rate * t.case.duration)}), {where}; task instances "
        f"per cycle {tasks_per_cycle(t.run)}, pool {t.run.scenario.pool_slots} slots. The sustained rate holds.")


def lateness_analysis(results: list[ThrottledResult]) -> str:
    """Where late batches are: the first cycle (no previous cycle to start it early) or the others."""
    late = sum(t.late_total for t in results)
    early = sum(t.late_early for t in results)
    first_cycle = 0
    for t in results:
        begins = sorted(epoch(c["begin_at"]) or 0.0 for c in t.run.cycles if int(c["batches"]) > 0)
        if begins:
            first_cycle += sum(1 for b in t.run.batches if b.planned is not None and b.started - b.planned > 1.0
                               and 0 <= b.planned - begins[0] < 5.0)
    burst = max((t.burst for t in results), default=float("nan"))
    firsts = [x for t in results for x in first_seconds_lateness(t.run)]
    return (
        f"**Lateness and bursts.** The median batch starts {statistics.median(x for t in results for x in t.late):.2f}"
        f" s after its planned time. Of the {late} batches more than 1 s late, {early} were due in the first 5 s "
        f"of a cycle, {first_cycle} of them in the first 5 s of a run's first cycle. That cycle has no previous one "
        "to start it early: it now begins `lead_seconds` (6 s) after its plan (the start lead), the time its "
        "task instances take to be up (scheduler expanding the mapping, task process start; before, it began "
        "when its plan ran and its first batches were 1-3 s late, then ran back to back at up to x1.6 the plan's "
        "peak 5-s rate). Over the first 5 s of every run, lateness p95 is "
        f"{percentile(firsts, 95) if firsts else float('nan'):.2f} s ({len(firsts)} batches); the start rate "
        f"peaks at x{burst:.2f} the plan's own peak over 5 s (the worst run). The price: a backfill's first "
        "batch starts 6 s later, once per backfill (later cycles are started early by the previous one).")

