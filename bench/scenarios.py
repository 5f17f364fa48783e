"""The end-to-end runs' sizes: the throttled cases and the unthrottled run, full and ``--quick``."""

from __future__ import annotations

from dataclasses import dataclass

from bench.harness import Scenario

RATE_TARGET = 0.95
THROTTLED_BATCH = 100


@dataclass(frozen=True)
class Throttled:
    """One throttled case: ``cycles`` cycles of ``duration`` s at ``rate`` batches/s in ``groups`` task instances."""

    rate: float
    duration: float
    cycles: int
    groups: int

    @property
    def label(self) -> str:
        return f"{self.rate:g}/s, {self.duration:g} s cycles, {self.groups} TIs"


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
                   throttled=(Throttled(2, 20, 3, 8), Throttled(5, 20, 3, 8), Throttled(5, 60, 2, 8),
                              Throttled(2, 40, 2, 64)),
                   unthrottled_batch=500, unthrottled_rate=50, unthrottled_duration=60, repeats=3)

    def throttled_scenario(self, case: Throttled) -> Scenario:
        ids = round(case.rate * case.duration) * case.cycles * THROTTLED_BATCH
        return Scenario(f"throttled {case.label}", THROTTLED_BATCH, case.rate, case.duration, case.groups,
                        self.pool, self.rows - ids + 1, self.rows)

    def unthrottled(self) -> Scenario:
        return Scenario("unthrottled", self.unthrottled_batch, self.unthrottled_rate, self.unthrottled_duration,
                        self.pool, self.pool, 1, self.rows)
