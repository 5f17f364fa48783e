"""The end-to-end runs' sizes: the throttled cases and the unthrottled run, full and ``--quick``."""

from __future__ import annotations

from dataclasses import dataclass

from bench.harness import Scenario

RATE_TARGET = 0.95
THROTTLED_BATCH = 100


@dataclass(frozen=True)
class Throttled:
    """One throttled case: ``cycles`` cycles of ``duration`` s at ``rate`` batches/s, at most ``groups`` task
    instances a cycle (``max_tasks_per_cycle``; the plan sizes them, core/grouping.py), ``batch`` rows a batch
    (1 ms each), ``pool`` slots (None: the section's)."""

    rate: float
    duration: float
    cycles: int
    groups: int
    batch: int = THROTTLED_BATCH
    pool: int | None = None

    @property
    def label(self) -> str:
        extra = "" if self.batch == THROTTLED_BATCH and self.pool is None else f", batch {self.batch}, pool {self.pool}"
        return f"{self.rate:g}/s, {self.duration:g} s cycles, max {self.groups} TIs{extra}"


@dataclass(frozen=True)
class Params:
    """Sizes of the end-to-end runs (full and ``--quick``)."""

    rows: int
    pool: int
    throttled: tuple[Throttled, ...]
    unthrottled_batch: int
    unthrottled_rate: float
    unthrottled_duration: float
    repeats: int

    @classmethod
    def for_mode(cls, quick: bool) -> Params:
        if quick:
            return cls(rows=20_000, pool=8, throttled=(Throttled(2, 8, 2, 8), Throttled(5, 8, 2, 8)),
                       unthrottled_batch=500, unthrottled_rate=50, unthrottled_duration=60, repeats=1)
        return cls(rows=100_000, pool=8,
                   throttled=(Throttled(2, 20, 3, 8), Throttled(5, 20, 3, 8), Throttled(2, 40, 2, 64),
                              # issue 17: the default max_tasks_per_cycle at 2/s and 7.5/s (target 4)
                              # (duration 120 s as by default; 50-row batches at 7.5/s so that 2 cycles fit)
                              Throttled(2, 120, 2, 64), Throttled(7.5, 120, 2, 64, batch=50, pool=8),
                              # issue 17 target 6: a new user's try (pool 6, 0.15-s batches, 5/s, 30-s cycles),
                              # then the pool rule per_second x batch seconds <= slots near its limit
                              Throttled(5, 30, 2, 64, batch=150, pool=6), Throttled(8, 30, 2, 64, batch=150, pool=2),
                              Throttled(4, 20, 2, 64, batch=500, pool=3),
                              # the README's example: 16 task instances, pool 8, 5/s, batches of 500
                              Throttled(5, 20, 2, 16, batch=500, pool=8)),
                   unthrottled_batch=500, unthrottled_rate=50, unthrottled_duration=60, repeats=3)

    def throttled_scenario(self, case: Throttled) -> Scenario:
        ids = round(case.rate * case.duration) * case.cycles * case.batch
        return Scenario(f"throttled {case.label}", case.batch, case.rate, case.duration, case.groups,
                        case.pool or self.pool, self.rows - ids + 1, self.rows)

    def unthrottled(self) -> Scenario:
        return Scenario("unthrottled", self.unthrottled_batch, self.unthrottled_rate, self.unthrottled_duration,
                        self.pool, self.pool, 1, self.rows)
