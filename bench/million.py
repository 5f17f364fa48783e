"""Benchmark 8, the long unthrottled run (issue 17, target 5): 10^6 rows in one cycle against the plain script,
so that the per-cycle fixed cost (trigger -> first batch) is amortised over minutes of work.

It is section 3's unthrottled run (bench/unthrottled.py: interleaved with the script, same tables) on a
larger range and with larger batches, so that a run lasts about two minutes.
"""

from __future__ import annotations

import statistics

from bench.common import Section
from bench.harness import BenchStack
from bench.profiling import Profile
from bench.scenarios import RATE_TARGET, Params
from bench.unthrottled import unthrottled_analysis, unthrottled_runs

LABEL = "10^6 rows"


def params_for(quick: bool) -> Params:
    """Batch 1,000 rows (1 s of work), 8 slots: 1,000 batches, about 125 s of work at the pool's 8,000 rows/s."""
    if quick:
        return Params(rows=50_000, pool=8, throttled=(), unthrottled_batch=500, unthrottled_rate=50,
                      unthrottled_duration=60, repeats=1)
    return Params(rows=1_000_000, pool=8, throttled=(), unthrottled_batch=1000, unthrottled_rate=50,
                  unthrottled_duration=60, repeats=2)


def run(stack: BenchStack, params: Params, idle: dict[str, float], profile: Profile | None = None) -> Section:
    scenario = params.unthrottled()
    section = Section(
        "8. Long unthrottled run: 10^6 rows",
        f"Section 3's unthrottled run over {params.rows:,} rows in {stack.engine.dialect.name}: batches of "
        f"{scenario.batch_size} rows (1 ms of work per row), {scenario.per_second:g}/s configured where the pool "
        f"of {params.pool} serves at most {params.pool * 1000 / scenario.batch_size:g}/s, all "
        f"{scenario.batches:,} batches in one cycle of {params.pool} task instances; against the plain script "
        f"with {params.pool} threads, {params.repeats} runs each, interleaved. Target: >= {RATE_TARGET:.0%} of the "
        "script's rows/s end to end (trigger or script start -> last batch done).",
        {"rows": f"{params.rows:,}", "batch": f"{scenario.batch_size} rows", "pool": f"{params.pool} slots",
         "max_tasks_per_cycle": params.pool},
    )
    phases, runs, baselines = unthrottled_runs(stack, params, section, idle, profile, label=LABEL,
                                               target=RATE_TARGET)
    start = statistics.median(phases["trigger -> first batch's work"])
    section.verdict(f"{LABEL}: fixed cost per cycle (trigger -> first batch's work)", f"{start:.1f} s",
                    "(reported)", None)
    section.analysis += unthrottled_analysis(section, phases, runs, baselines, idle, profile)
    ratio = statistics.median(params.rows / (max(b.finished for b in r.batches) - r.triggered) for r in runs) / \
        statistics.median(params.rows / b.wall for b in baselines)
    if ratio < RATE_TARGET:
        work = statistics.median(b.wall for b in baselines)
        section.analysis.append(
            f"**What {RATE_TARGET:.0%} would take.** End to end the run reaches {ratio:.1%}: the fixed cost of "
            f"{start:.1f} s before the first batch against {work:.0f} s of work caps it near "
            f"{work / (work + start):.0%}, and the steady state loses the rest. Either a run long enough that the "
            f"fixed cost is under 5% of it (about {20 * start:.0f} s of work at this fixed cost), or a smaller "
            "fixed cost: its largest phase is a task instance's own start (running -> its first batch's work, "
            "above: the tracker's and the source's connections, the Redis reads, the paused-flag read through "
            "the api-server), then the scheduler creating the run and the plan; in steady state, fewer round "
            "trips per batch (see section 7's analysis).")
    return section
