"""Grouping a cycle's batches into a bounded number of task instances.

Airflow maps at most ``max_map_length`` (1024) instances per task and its scheduler slows down
with hundreds of them, while a busy cycle holds more batches than that (1,350 at the reference's
production rate). Batches are dealt round-robin: group j holds batches j, j+g, j+2g, ... so
that inside one task instance consecutive batches are g slots apart, leaving each batch a whole
group-width of time to finish before the instance's next one is due.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def group_batches(batches: Sequence[T], max_groups: int) -> list[list[T]]:
    """At most ``max_groups`` non-empty groups, each in due order, together holding every batch once."""
    if max_groups < 1:
        raise ValueError(f"max_groups must be >= 1, got {max_groups}")
    groups = min(max_groups, len(batches))
    return [list(batches[j::groups]) for j in range(groups)]
