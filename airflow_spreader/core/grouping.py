"""Grouping a cycle's batches into a bounded number of task instances, and how many to use.

Airflow maps at most ``max_map_length`` (1024) instances per task and its scheduler slows down
with hundreds of them, while a busy cycle holds more batches than that (1,350 at the reference's
production rate). Batches are dealt round-robin: group j holds batches j, j+g, j+2g, ... so
that inside one task instance consecutive batches are g slots apart, leaving each batch a whole
group-width of time to finish before the instance's next one is due.

How many groups (``TaskSizing``): every task instance costs Airflow a task process (about 0.2 CPU-s), and
one whose batches are more than the defer threshold (10 s) apart defers and resumes as a new process
between them. So a cycle gets the fewest task instances that keep up with the rate: each of g instances
runs one batch every g / per_second seconds, and is kept at most half busy (``HEADROOM``) by the batch time
measured over the previous cycle. Without a measure (the first cycle): the pool's slots, or as many as
0.5-s batches need if more, so that a pool resized up raises the concurrency at once. At most
``max_tasks_per_cycle``; the pool is not a cap: it stays the live knob of how many run at once (instances
beyond it wait for a slot, and their batches start late, as a pool below the rule makes them).
A task instance kept up costs too (it heartbeats while it sleeps), so more than needed is not free either.

A measured cycle on a pool that keeps to the documented rule (``per_second x batch seconds <= slots``) gets
no more instances than the slots: an instance sleeping between its batches holds its slot, so instances
beyond the slots wait for one, often until the others end with the cycle, and their batches all start late
(68% of the rate at 8/s on a pool of 2, bench section 8). Half the slots when that still leaves each busy
at most 1 / ``FULL_HEADROOM`` of the time, so the next cycle's instances, started early, find slots free.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

#: A task instance is kept at most 1 / HEADROOM busy, so that a slow batch does not make the next one late.
HEADROOM = 2.0
#: A measured cycle keeps to half the pool's slots only if they are at most 1 / FULL_HEADROOM busy.
FULL_HEADROOM = 1.25
#: Seconds a task instance spends between two batches besides the work (tracker calls, commit): 11 ms measured.
BATCH_OVERHEAD = 0.02
#: The batch time assumed before one is measured (a first cycle).
UNMEASURED_BATCH_SECONDS = 0.5


def group_batches(batches: Sequence[T], max_groups: int) -> list[list[T]]:
    """At most ``max_groups`` non-empty groups, each in due order, together holding every batch once."""
    if max_groups < 1:
        raise ValueError(f"max_groups must be >= 1, got {max_groups}")
    groups = min(max_groups, len(batches))
    return [list(batches[j::groups]) for j in range(groups)]


@dataclass(frozen=True, slots=True)
class TaskSizing:
    """What the plan knows about concurrency: the batch pool's slots and the mean seconds of a batch, if known."""

    slots: int | None = None
    batch_seconds: float | None = None

    def task_count(self, per_second: float, max_tasks: int) -> int:
        """Task instances for a cycle at ``per_second``: enough that each is at most half busy, at least 1,
        at most ``max_tasks``."""
        seconds = UNMEASURED_BATCH_SECONDS if self.batch_seconds is None else self.batch_seconds + BATCH_OVERHEAD
        busy = per_second * seconds  # slots busy on average
        need = math.ceil(HEADROOM * busy)
        if self.batch_seconds is None:
            if self.slots is not None:
                need = max(need, self.slots)
        elif self.slots is not None and self.slots > 0 and self.slots >= busy:  # a pool that keeps to the rule
            half = self.slots // 2
            need = min(need, half if half >= FULL_HEADROOM * busy else self.slots)
        return max(1, min(need, max_tasks))
