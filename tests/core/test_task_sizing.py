"""How many task instances a cycle is grouped into: the fewest that keep up, capped by max_tasks_per_cycle."""

from __future__ import annotations

from airflow_spreader.core.grouping import TaskSizing


def test_a_measured_batch_time_gives_the_fewest_task_instances_that_stay_half_busy() -> None:
    assert TaskSizing(slots=8, batch_seconds=0.1).task_count(2.0, 64) == 1  # 2 x 2 x 0.12 = 0.48
    assert TaskSizing(slots=6, batch_seconds=0.15).task_count(5.0, 64) == 2  # 2 x 5 x 0.17 = 1.7
    assert TaskSizing(slots=8, batch_seconds=0.1).task_count(7.5, 64) == 2  # 2 x 7.5 x 0.12 = 1.8


def test_max_tasks_per_cycle_caps_it_the_pool_does_not_and_one_is_the_least() -> None:
    assert TaskSizing(slots=4, batch_seconds=2.0).task_count(5.0, 64) == 21  # the pool stays the live knob
    assert TaskSizing(slots=None, batch_seconds=2.0).task_count(5.0, 3) == 3
    assert TaskSizing(slots=8, batch_seconds=0.0).task_count(0.01, 64) == 1


def test_without_a_measure_the_pool_or_half_second_batches_whichever_needs_more() -> None:
    assert TaskSizing(slots=8).task_count(2.0, 64) == 8
    assert TaskSizing(slots=8).task_count(2.0, 4) == 4
    assert TaskSizing(slots=2).task_count(10.0, 8) == 8  # a pool resized up mid-cycle raises it at once
    assert TaskSizing().task_count(2.0, 64) == 2
    assert TaskSizing(slots=-1).task_count(5.0, 64) == 5  # an unlimited pool says nothing


def test_a_pool_that_keeps_to_the_rule_caps_a_measured_cycle_at_its_slots_or_half_of_them() -> None:
    # Instances beyond the slots would wait for one, and their batches start late: never more than the slots.
    assert TaskSizing(slots=2, batch_seconds=0.2).task_count(8.0, 64) == 2  # 8 x 0.22 = 1.76 busy, not 4
    assert TaskSizing(slots=6, batch_seconds=0.5).task_count(5.0, 64) == 6  # 2.6 busy: half (3) too few
    assert TaskSizing(slots=8, batch_seconds=0.4).task_count(4.0, 64) == 4  # 1.68 busy: half is enough
    assert TaskSizing(slots=8, batch_seconds=0.4).task_count(5.0, 64) == 4  # 2.1 busy, 4 >= 1.25 x 2.1
    assert TaskSizing(slots=3, batch_seconds=0.8).task_count(3.0, 64) == 3  # 2.46 busy: ceil(4.92) capped
