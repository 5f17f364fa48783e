"""The plan's decisions without Airflow: real Redis, real SQLite, a config, a clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from airflow_spreader.core.config import SpreadConfig
from airflow_spreader.core.grouping import TaskSizing
from airflow_spreader.cycle.model import BatchGroup, CycleSummary
from airflow_spreader.cycle.plan import plan_next_cycle, start_backfill
from airflow_spreader.sql.table import SourceTable, inspect_table
from airflow_spreader.sql.table import read_max as read_max_of
from airflow_spreader.state.tracker import Tracker

ALWAYS_ON_PEAK = {"on_peak_wday_begin": 0, "on_peak_wday_end": 6, "on_peak_hour_begin": 0, "on_peak_hour_end": 23}
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def config(**changes: object) -> SpreadConfig:
    return SpreadConfig.from_dict({"batch_size": 10, "duration": 4, "per_second_on_peak": 2, "per_second_off_peak": 5,
                                   "max_tasks_per_cycle": 3, **ALWAYS_ON_PEAK, **changes})


def test_a_backfill_starts_from_its_tables_bounds_and_an_empty_table_is_finished(tracker: Tracker,
                                                                                tmp_path: object) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/t.db")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE items (id INTEGER PRIMARY KEY)"))
    start_backfill(tracker, inspect_table(engine, SourceTable("items", "id")))
    assert tracker.progress().finished
    tracker.reset()
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO items (id) VALUES (5), (95)"))
    start_backfill(tracker, inspect_table(engine, SourceTable("items", "id")))
    progress = tracker.progress()
    assert (progress.min_id, progress.max_id, progress.cursor, progress.finished) == (5, 95, 95, False)


def test_plan_next_cycle_claims_at_the_rate_and_groups_for_the_task_instances(tracker: Tracker) -> None:
    tracker.start(max_id=1000)
    cycle = plan_next_cycle(tracker, config(), NOW)
    summary = cycle.summary
    assert (summary.batches, summary.task_instances, summary.per_second, summary.on_peak) == (8, 3, 2.0, True)
    assert (summary.cursor_before, summary.cursor_after, summary.stopped, summary.finished) == (1000, 920, False, False)
    assert summary.begin_at == NOW and summary.end_at == NOW + timedelta(seconds=4)
    kwargs = cycle.expand_kwargs()
    assert len(kwargs) == 3 and set(kwargs[0]) == {"batches"}
    regrouped = [batch for entry in kwargs for batch in BatchGroup.from_xcom(entry["batches"]).batches]
    assert sorted(regrouped, key=lambda b: -b.end_id) == list(cycle.claim.batches)


def test_only_a_governor_that_sizes_batches_asks_the_batch_tasks_to_record_their_times(tracker: Tracker) -> None:
    """A Redis write per batch only when target_batch_seconds reads it (adaptive_rate alone does not)."""
    tracker.start(max_id=1000)
    governors = {"rate": {"signals": [], "adaptive_rate": True}, "size": {"signals": [], "target_batch_seconds": 1}}
    entries = {name: plan_next_cycle(tracker, config(governor=governor), NOW).expand_kwargs()
               for name, governor in governors.items()}
    assert all(set(entry) == {"batches"} for entry in entries["rate"])
    assert all(entry["measure_times"] is True for entry in entries["size"])


def test_the_next_cycle_begins_where_the_previous_one_ends(tracker: Tracker) -> None:
    tracker.start(max_id=1000)
    first = plan_next_cycle(tracker, config(), NOW)
    second = plan_next_cycle(tracker, config(), NOW + timedelta(seconds=1))  # planned early (lead_seconds)
    assert second.summary.begin_at == first.summary.end_at
    assert second.summary.cursor_before == first.summary.cursor_after


def test_a_stopped_backfill_plans_nothing(tracker: Tracker) -> None:
    tracker.start(max_id=1000)
    tracker.stop()
    cycle = plan_next_cycle(tracker, config(), NOW)
    assert cycle.summary.stopped and cycle.summary.batches == 0 and cycle.expand_kwargs() == []


def test_the_summary_round_trips_through_xcom(tracker: Tracker) -> None:
    tracker.start(max_id=1000)
    summary = plan_next_cycle(tracker, config(), NOW).summary
    assert CycleSummary.from_xcom(summary.to_xcom()) == summary


def test_with_follow_new_rows_a_plan_at_the_bottom_reads_max_and_walks_the_new_ids(tracker: Tracker,
                                                                                 tmp_path: object) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/t.db")
    table = SourceTable("items", "id")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE items (id INTEGER PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO items (id) VALUES (1), (20)"))
    start_backfill(tracker, inspect_table(engine, table))

    def read_max() -> int | None:
        with engine.connect() as conn:
            return read_max_of(conn, table)

    follow = config(follow_new_rows=True)
    first = plan_next_cycle(tracker, follow, NOW, read_max=read_max)  # 8 slots: 20..1 in two batches
    assert (first.summary.batches, first.summary.look, first.summary.passes) == (2, "not-at-bottom", 1)
    assert first.summary.follow_new_rows
    for batch in first.claim.batches:
        tracker.begin(batch)
        tracker.complete(batch)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO items (id) VALUES (21), (35)"))
    second = plan_next_cycle(tracker, follow, NOW, read_max=read_max)
    assert (second.summary.look, second.summary.passes) == ("extended", 2)
    assert [(b.begin_id, b.end_id) for b in second.claim.batches] == [(26, 35), (21, 25)]
    for batch in second.claim.batches:
        tracker.begin(batch)
        tracker.complete(batch)
    third = plan_next_cycle(tracker, follow, NOW, read_max=read_max)
    assert (third.summary.batches, third.summary.look, third.summary.passes) == (0, "caught-up", 2)
    # Without follow_new_rows nothing is read, whatever the table holds.
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO items (id) VALUES (50)"))
    fourth = plan_next_cycle(tracker, config(), NOW, read_max=read_max)
    assert (fourth.summary.batches, fourth.summary.look, fourth.summary.follow_new_rows) == (0, None, False)
    assert tracker.progress().max_id == 35


def test_carver_for_reads_the_mode_of_this_cycle_and_checks_the_index_unless_allowed(tmp_path: object) -> None:
    import pytest

    from airflow_spreader.core.planner import IdRange
    from airflow_spreader.cycle.plan import carver_for
    from airflow_spreader.sql.table import TableError

    engine = sa.create_engine(f"sqlite:///{tmp_path}/c.db")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE loose (id BIGINT)"))
        conn.execute(sa.text("INSERT INTO loose (id) VALUES (5), (70), (900)"))
    table = SourceTable("loose")
    assert carver_for(config(batch_size=2), engine, table)(900, 1, 2) == [IdRange(899, 900), IdRange(897, 898)]
    with pytest.raises(TableError, match="key column 'id' of table 'loose' has no index"):
        carver_for(config(batch_size=2, batching="rows"), engine, table)
    rows = carver_for(config(batch_size=2, batching="rows"), engine, table, allow_unindexed_key=True)
    assert rows(900, 1, 2) == [IdRange(6, 900), IdRange(1, 5)]


def test_rows_batching_refuses_a_key_span_beyond_the_trackers_counters() -> None:
    import pytest

    from airflow_spreader.cycle.plan import check_rows_span
    from airflow_spreader.sql.table import TableError

    table = SourceTable("t")
    check_rows_span(config(batching="rows"), table, -2**62, 2**62 - 2)  # exactly 2^63 - 1 ids
    check_rows_span(config(), table, -2**63, 2**63 - 1)  # "ids": spans are cut batch_size at a time
    with pytest.raises(TableError, match=r"spans -9223372036854775808..9223372036854775807, more than 2\^63 - 1"):
        check_rows_span(config(batching="rows"), table, -2**63, 2**63 - 1)


def test_a_first_cycle_begins_its_start_lead_after_the_plan_and_the_next_one_still_tiles(tracker: Tracker) -> None:
    tracker.start(max_id=1000)
    first = plan_next_cycle(tracker, config(), NOW, start_lead=5)
    assert first.summary.begin_at == NOW + timedelta(seconds=5)
    assert min(batch.run_at for batch in first.claim.batches) == NOW + timedelta(seconds=5)
    second = plan_next_cycle(tracker, config(), first.summary.end_at - timedelta(seconds=6), start_lead=5)
    assert second.summary.begin_at == first.summary.end_at  # the previous end is later than now: no gap
    late = second.summary.end_at + timedelta(seconds=2)
    third = plan_next_cycle(tracker, config(), late, start_lead=5)
    assert third.summary.begin_at == late  # a late plan begins at once: a lead would add a gap


def test_the_sizing_groups_a_cycle_into_as_few_task_instances_as_keep_up(tracker: Tracker) -> None:
    tracker.start(max_id=10_000)
    # 2/s, batches of 0.7 s (+ 0.02 between): 2 x 2 x 0.72 -> 3 task instances, each at most half busy.
    cycle = plan_next_cycle(tracker, config(max_tasks_per_cycle=64), NOW, sizing=TaskSizing(8, 0.7))
    assert cycle.summary.task_instances == 3 and len(cycle.expand_kwargs()) == 3
    regrouped = [batch for entry in cycle.expand_kwargs() for batch in BatchGroup.from_xcom(entry["batches"]).batches]
    assert sorted(regrouped, key=lambda b: -b.end_id) == list(cycle.claim.batches)  # every batch once
