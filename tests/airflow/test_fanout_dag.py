"""Fan-out in Airflow: intervals from real DAG schedules, the plan task, the deferring item task, and dag.test()."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG, Context
from dateutil.relativedelta import relativedelta

from airflow_spreader.compat import (
    AirflowFailException,
    CronDataIntervalTimetable,
    CronTriggerTimetable,
    DeltaDataIntervalTimetable,
    MultipleCronTriggerTimetable,
    TaskDeferred,
    dag_serialization,
    first_dagrun_info,
)
from airflow_spreader.operators.fanout import (
    PROGRESS_XCOM_KEY,
    SPREAD_XCOM_KEY,
    ItemsFailed,
    PlanFanoutOperator,
    SpreadItemsOperator,
    schedule_interval,
    spread_items,
)
from tests.conftest import AIRFLOW_HOME, TESTS, load_dag_file

UTC = timezone.utc
START = datetime(2024, 1, 1, tzinfo=UTC)
SIX = datetime(2025, 3, 30, 6, 0, tzinfo=UTC)


class FakeTI:
    """The task instance's XCom, as JSON, for operators called outside Airflow's runner."""

    def __init__(self, task_id: str = "spread.items", map_index: int = 0) -> None:
        self.task_id, self.map_index = task_id, map_index
        self.xcoms: dict[str, str] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = json.dumps(value)

    def xcom_pull(self, task_ids: str, key: str, map_indexes: int) -> Any:
        assert (task_ids, map_indexes) == (self.task_id, self.map_index)
        return json.loads(self.xcoms[key]) if key in self.xcoms else None


def run(run_after: datetime, logical: bool = True, interval: tuple[datetime, datetime] | None = None) -> Any:
    begin, end = interval or ((run_after, run_after) if logical else (None, None))
    return SimpleNamespace(run_after=run_after, logical_date=run_after if logical else None,
                           data_interval_start=begin, data_interval_end=end)


def dag(schedule: Any, tz: str = "UTC") -> DAG:
    return DAG("fanout_schedule", schedule=schedule, start_date=pendulum.datetime(2024, 1, 1, tz=tz))


def plan(items: Any, the_dag: DAG, dag_run: Any, **kwargs: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    ti = FakeTI("spread.plan", -1)
    groups = PlanFanoutOperator(task_id="plan", items=items, **kwargs).execute(
        {"dag": the_dag, "dag_run": dag_run, "ti": ti})
    return groups, json.loads(ti.xcoms[SPREAD_XCOM_KEY])


def starts(groups: list[dict[str, Any]]) -> dict[int, datetime]:
    return {e["index"]: datetime.fromisoformat(e["at"]) for group in groups for e in group["items"]}


# --- the interval, from real DAG schedules -------------------------------------------------------------

@pytest.mark.parametrize(("schedule", "dag_run", "expected"), [
    ("0 */6 * * *", run(SIX), timedelta(hours=6)),  # Airflow 3: a CronTriggerTimetable
    (CronDataIntervalTimetable("0 */6 * * *", "UTC"), run(SIX, interval=(SIX - timedelta(hours=6), SIX)),
     timedelta(hours=6)),
    ("0 */6 * * *", run(SIX + timedelta(hours=4, minutes=17), logical=False), timedelta(hours=6)),  # manual
    (timedelta(minutes=20), run(SIX), timedelta(minutes=20)),  # a DeltaTriggerTimetable
    (DeltaDataIntervalTimetable(timedelta(hours=1)), run(SIX, interval=(SIX - timedelta(hours=1), SIX)),
     timedelta(hours=1)),
    (relativedelta(months=1), run(datetime(2025, 2, 1, tzinfo=UTC)), timedelta(days=28)),
    (MultipleCronTriggerTimetable("0 9 * * *", "0 17 * * *", timezone="UTC"),
     run(datetime(2025, 3, 30, 9, tzinfo=UTC)), timedelta(hours=8)),
    (MultipleCronTriggerTimetable("0 9 * * *", "0 17 * * *", timezone="UTC"),
     run(datetime(2025, 3, 30, 17, tzinfo=UTC)), timedelta(hours=16)),
    (None, run(SIX, interval=(SIX, SIX + timedelta(minutes=5))), timedelta(minutes=5)),  # data interval
], ids=["cron", "cron-data-interval", "cron-manual", "delta", "delta-data-interval", "month", "multi-9",
        "multi-17", "data-interval"])
def test_the_interval_comes_from_the_dags_schedule(schedule: Any, dag_run: Any, expected: timedelta) -> None:
    assert schedule_interval(dag(schedule), dag_run, dag_run.run_after) == expected


def test_cron_periods_are_real_time_across_daylight_saving_changes() -> None:
    paris = dag(CronTriggerTimetable("0 */6 * * *", timezone="Europe/Paris"))
    spring = datetime(2025, 3, 29, 23, tzinfo=UTC)  # 00:00 CET; the next run is 06:00 CEST, 5 hours later
    autumn = datetime(2025, 10, 25, 22, tzinfo=UTC)  # 00:00 CEST; the next run is 06:00 CET, 7 hours later
    assert schedule_interval(paris, run(spring), spring) == timedelta(hours=5)
    assert schedule_interval(paris, run(autumn), autumn) == timedelta(hours=7)
    assert schedule_interval(dag("*/10 * * * *", tz="Europe/Paris"), run(spring), spring,
                             explicit="0 0 * * *") == timedelta(hours=23)  # in the DAG's zone: a 23-hour day


def test_an_explicit_interval_wins_and_a_schedule_without_one_is_refused() -> None:
    assert schedule_interval(dag("0 */6 * * *"), run(SIX), SIX, timedelta(seconds=90)) == timedelta(seconds=90)
    assert schedule_interval(dag(None), run(SIX), SIX, "*/10 * * * *") == timedelta(minutes=10)
    with pytest.raises(AirflowFailException, match=r"gives no interval to spread items over.*pass interval="):
        plan(["a"], dag(None), run(SIX, logical=False))


# --- the plan task: start times ------------------------------------------------------------------------

def test_a_scheduled_six_hour_run_starts_account_i_at_i_times_three_minutes() -> None:
    accounts = [f"acct-{i:04d}" for i in range(1, 121)]
    groups, summary = plan(accounts, dag("0 */6 * * *"), run(SIX))
    assert len(groups) == 120 and all(len(group["items"]) == 1 for group in groups)
    assert starts(groups) == {i: SIX + i * timedelta(minutes=3) for i in range(120)}
    assert [group["items"][0]["item"] for group in groups] == accounts
    assert summary["gap_seconds"] == 180 and summary["last_start"] == "2025-03-30T11:57:00+00:00"


def test_data_interval_timetables_spread_from_the_runs_start_not_the_intervals() -> None:
    hourly = run(SIX, interval=(SIX - timedelta(hours=1), SIX))  # this run only begins at 06:00
    groups, _ = plan(list(range(4)), dag(DeltaDataIntervalTimetable(timedelta(hours=1))), hourly)
    assert starts(groups) == {i: SIX + i * timedelta(minutes=15) for i in range(4)}


def test_a_manual_run_without_logical_date_spreads_from_run_after_with_the_schedules_spacing() -> None:
    run_after = datetime(2025, 3, 30, 10, 17, 5, 123456, tzinfo=UTC)
    groups, summary = plan(list(range(120)), dag("0 */6 * * *"), run(run_after, logical=False))
    assert starts(groups) == {i: run_after + i * timedelta(minutes=3) for i in range(120)}
    assert summary["start"] == run_after.isoformat()


def test_a_runs_conf_can_spread_it_over_a_given_number_of_seconds() -> None:
    manual = run(SIX, logical=False)
    manual.conf = {"spread_over": 600}
    groups, summary = plan(list(range(120)), dag("0 */6 * * *"), manual, window=0.5)
    assert starts(groups) == {i: SIX + i * timedelta(seconds=2.5) for i in range(120)}  # a 300 s window of 600 s
    assert summary["gap_seconds"] == 2.5
    for bad in ["600", 0, -5, True, float("nan"), float("inf"), [600]]:
        manual.conf = {"spread_over": bad}
        message = re.escape(f"spread_over={bad!r} is not allowed: give a number of s")
        with pytest.raises(AirflowFailException, match=message):
            plan([1], dag("0 */6 * * *"), manual)


def test_a_timedelta_schedule_with_a_window_and_a_cap() -> None:
    the_dag = dag(timedelta(seconds=20))
    groups, summary = plan(list("abcd"), the_dag, run(SIX), window=0.8)
    assert starts(groups) == {i: SIX + i * timedelta(seconds=4) for i in range(4)}
    groups, summary = plan(list(range(10)), the_dag, run(SIX), window=0.5, max_per_second=0.25)
    assert starts(groups) == {i: SIX + i * timedelta(seconds=4) for i in range(10)}  # the cap wins
    assert summary["overruns_window"] and summary["overruns_interval"]


def test_zero_items_plan_nothing_and_one_item_starts_at_once() -> None:
    assert plan([], dag("0 */6 * * *"), run(SIX))[0] == []
    assert plan((), dag("0 */6 * * *"), run(SIX))[1]["count"] == 0
    assert plan([{"id": 7}], dag("0 */6 * * *"), run(SIX))[0] == [
        {"items": [{"index": 0, "at": SIX.isoformat(), "item": {"id": 7}}]}]


def test_more_items_than_seconds_and_than_max_map_length_keep_their_own_times() -> None:
    groups, summary = plan(list(range(30_000)), dag(timedelta(seconds=20)), run(SIX), max_tasks=5000)
    assert len(groups) == 1024 and summary["groups"] == 1024  # [core] max_map_length
    timed = starts(groups)
    assert timed == {i: SIX + timedelta(microseconds=i * 20_000_000 // 30_000) for i in range(30_000)}
    for group in groups:
        times = [datetime.fromisoformat(e["at"]) for e in group["items"]]
        assert times == sorted(times) and times[1] - times[0] >= timedelta(microseconds=666 * 1024)
    assert [len(g["items"]) for g in plan(list(range(10)), dag(timedelta(seconds=20)), run(SIX), max_tasks=3)[0]] \
        == [4, 3, 3]


def test_bad_input_fails_the_plan_without_retry() -> None:
    with pytest.raises(AirflowFailException, match="gave NoneType, expected a list"):
        plan(None, dag("0 */6 * * *"), run(SIX))
    with pytest.raises(AirflowFailException, match="must not be longer than the interval"):
        plan([1], dag("0 */6 * * *"), run(SIX), window=timedelta(hours=7))
    for kwargs, message in [({"interval": "every day"}, "not a valid cron"), ({"window": 2}, "in \\(0, 1\\]"),
                            ({"interval": timedelta(0)}, "interval must be > 0"), ({"max_tasks": 0}, "max_tasks"),
                            ({"max_per_second": -1}, "max_per_second must be > 0")]:
        with pytest.raises(ValueError, match=message):
            PlanFanoutOperator(task_id="plan", items=[], **kwargs)


# --- the item task: waiting, deferring, resuming -------------------------------------------------------

def entries(*offsets: float, items: list[Any] | None = None) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    values = items or [f"item-{i}" for i in range(len(offsets))]
    return [{"index": i, "at": (now + timedelta(seconds=s)).isoformat(), "item": values[i]}
            for i, s in enumerate(offsets)]


def wait_until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


def items_operator(items: list[dict[str, Any]], calls: list[Any], **kwargs: Any) -> SpreadItemsOperator:
    def work(item: Any) -> str:
        calls.append(item)
        if item == "boom":
            raise RuntimeError("boom")
        return f"done {item}"

    return SpreadItemsOperator(task_id="items", items=items, work=work, **kwargs)


def test_due_items_run_at_once_in_order_and_return_their_results() -> None:
    calls: list[Any] = []
    operator = items_operator(entries(-2, -1, 0), calls)
    assert operator.execute({"ti": FakeTI()}) == ["done item-0", "done item-1", "done item-2"]
    assert calls == ["item-0", "item-1", "item-2"]


def test_a_short_wait_sleeps_to_the_exact_time() -> None:
    calls: list[Any] = []
    due = entries(0.4)
    items_operator(due, calls).execute({"ti": FakeTI()})
    assert 0 <= (datetime.now(UTC) - datetime.fromisoformat(due[0]["at"])).total_seconds() < 0.2


def test_a_long_wait_defers_saving_the_position_and_the_resume_skips_the_items_run() -> None:
    calls: list[Any] = []
    items = entries(-1, 0.9, 1.2)
    operator = items_operator(items, calls, defer_threshold=0.5, wake_margin=0.3)
    ti = FakeTI()
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({"ti": ti})
    assert deferred.value.method_name == "resume"
    moment = deferred.value.trigger.moment
    assert moment == datetime.fromisoformat(items[1]["at"]) - timedelta(seconds=0.3)
    assert json.loads(ti.xcoms[PROGRESS_XCOM_KEY]) == {"next": 1, "results": ["done item-0"], "failures": []}
    wait_until(moment)  # the trigger fires
    resumed = items_operator(items, calls, defer_threshold=0.5, wake_margin=0.3)  # a new instance, as Airflow does
    assert resumed.resume({"ti": ti}, event=moment) == ["done item-0", "done item-1", "done item-2"]
    assert calls == ["item-0", "item-1", "item-2"]
    assert datetime.now(UTC) >= datetime.fromisoformat(items[2]["at"])


@pytest.mark.parametrize("as_text", [False, True])
def test_without_saved_progress_the_moment_waited_for_gives_the_position(as_text: bool) -> None:
    calls: list[Any] = []
    items = entries(-30, -20, -10)
    waited_for = datetime.fromisoformat(items[1]["at"]) - timedelta(seconds=3)
    event = waited_for.isoformat() if as_text else waited_for
    assert items_operator(items, calls).resume({"ti": FakeTI()}, event=event) == [
        None, "done item-1", "done item-2"]
    assert calls == ["item-1", "item-2"]


def test_without_progress_or_moment_every_item_runs_again() -> None:
    calls: list[Any] = []
    items_operator(entries(-2, -1), calls).resume({"ti": FakeTI()}, event=None)
    assert calls == ["item-0", "item-1"]


def test_a_failure_before_a_deferral_fails_the_task_after_the_other_items_ran() -> None:
    calls: list[Any] = []
    items = entries(-1, 0.8, items=["boom", "fine"])
    ti = FakeTI()
    with pytest.raises(TaskDeferred) as deferred:
        items_operator(items, calls, defer_threshold=0.5, wake_margin=0.2).execute({"ti": ti})
    wait_until(deferred.value.trigger.moment)
    with pytest.raises(ItemsFailed, match=r"1 of 2 items failed: #0 'boom': RuntimeError: boom"):
        items_operator(items, calls, defer_threshold=0.5, wake_margin=0.2).resume(
            {"ti": ti}, event=deferred.value.trigger.moment)
    assert calls == ["boom", "fine"]


def test_the_work_may_take_the_context_or_be_a_subclass() -> None:
    seen: list[Any] = []

    def work(item: Any, context: Context) -> Any:
        seen.append((item, context["ti"].map_index))

    class Doubler(SpreadItemsOperator):
        def process(self, item: Any, context: Context) -> Any:
            return item * 2

    SpreadItemsOperator(task_id="items", items=entries(0, items=["a"]), work=work).execute(
        {"ti": FakeTI(map_index=5)})
    assert seen == [("a", 5)]
    assert Doubler(task_id="items", items=entries(0, -1, items=[2, 3])).execute(
        {"ti": FakeTI()}) == [4, 6]
    with pytest.raises(TypeError, match="give work=callable or a subclass overriding process"):
        SpreadItemsOperator(task_id="items", items=entries(0))


def test_labels_and_bad_operator_arguments() -> None:
    assert SpreadItemsOperator(task_id="i", items=entries(0, items=["acct-7"]), work=print).label == "#0 acct-7"
    assert SpreadItemsOperator(task_id="i", items=entries(0, 1, 2), work=print).label == "3 items: #0, ... #2"
    with pytest.raises(ValueError, match="wake_margin"):
        SpreadItemsOperator(task_id="i", items=[], work=print, defer_threshold=1, wake_margin=2)
    with pytest.raises(TypeError, match="give work=callable"):
        spread_items([1, 2])


def test_spread_items_wires_plan_then_mapped_items_in_a_group() -> None:
    with DAG("fanout_wiring", schedule="0 */6 * * *", start_date=START) as the_dag:
        mapped = spread_items([1, 2, 3], print, task_id="sync", window=0.8, pool="api", retries=1,
                              plan_kwargs={"retries": 3})
    assert sorted(the_dag.task_dict) == ["sync.items", "sync.plan"]
    assert mapped.task_id == "sync.items" and mapped.upstream_task_ids == {"sync.plan"}
    assert mapped.partial_kwargs["pool"] == "api" and mapped.partial_kwargs["retries"] == 1
    assert the_dag.task_dict["sync.plan"].retries == 3
    assert mapped.partial_kwargs["map_index_template"] == "{{ task.label }}"


def test_the_example_dag_syncs_120_accounts_three_minutes_apart() -> None:
    module = load_dag_file(TESTS.parent / "dags" / "example_fanout.py")
    example = module.dag
    accounts = example.task_dict["list_accounts"].python_callable()
    assert len(accounts) == 120 and module.sync_account("acct-0001") == "acct-0001"
    planner = example.task_dict["sync_accounts.plan"]
    ti = FakeTI("sync_accounts.plan", -1)
    planner.items = accounts  # what the upstream XComArg resolves to
    groups = planner.execute({"dag": example, "dag_run": run(SIX), "ti": ti})
    assert starts(groups) == {i: SIX + i * timedelta(minutes=3) for i in range(120)}


def test_unpausing_the_example_waits_for_the_next_tick_even_just_after_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow.timetables.trigger
    DagSerialization = dag_serialization()

    example = load_dag_file(TESTS.parent / "dags" / "example_fanout.py").dag
    scheduled = DagSerialization.from_dict(json.loads(json.dumps(DagSerialization.to_dict(example))))
    just_after_a_tick = pendulum.datetime(2026, 11, 23, 18, 1, tz="UTC")
    monkeypatch.setattr(airflow.timetables.trigger, "utcnow", lambda: just_after_a_tick)
    first = first_dagrun_info(scheduled)  # what the scheduler asks on unpause
    assert first is not None and first.run_after == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)


# --- dag.test(): items record their own start times ----------------------------------------------------

def fanout_dags() -> Any:
    return load_dag_file(TESTS / "airflow" / "dags" / "spreader_test_fanout.py")


def recorded(dag_id: str) -> list[tuple[str, float, int, int]]:
    with sqlite3.connect(AIRFLOW_HOME / "fanout_starts.db") as db:
        db.execute("CREATE TABLE IF NOT EXISTS starts (dag_id TEXT, item TEXT, started REAL, map_index INTEGER, "
                   "try_number INTEGER)")
        rows = db.execute("SELECT item, started, map_index, try_number FROM starts WHERE dag_id = ? "
                          "ORDER BY started", (dag_id,)).fetchall()
    db.close()
    return rows


def xcom(dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1) -> Any:
    """An XCom read server side (the test is not a task)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        value = session.scalar(select(XComModel.value).where(
            XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.task_id == task_id,
            XComModel.key == key, XComModel.map_index == map_index))
    return json.loads(value) if isinstance(value, str) else value


@pytest.fixture(scope="module")
def empty_run(airflow_db: None) -> Any:
    """The empty DAG's run; also the first dag.test() of the module, which syncs the DAGs folder (slow)."""
    return fanout_dags().empty.test()


TOLERANCE = 0.5  # seconds an item may start after its time under dag.test() (never before)
# dag.test() starts two tasks before the first item's: ~0.1 s each on Airflow 3.3, ~1.5 s each on 3.1.
LEAD = timedelta(seconds=7)


@pytest.mark.airflow
def test_zero_items_run_nothing(empty_run: Any) -> None:
    assert str(empty_run.state) == "success"
    assert recorded("spreader_test_fanout_empty") == []
    from airflow.utils.session import create_session

    with create_session() as session:
        states = {ti.task_id: str(ti.state) for ti in empty_run.get_task_instances(session=session)}
    assert states == {"list_items": "success", "spread.plan": "success", "spread.items": "skipped"}
    assert xcom("spreader_test_fanout_empty", empty_run.run_id, "spread.plan", SPREAD_XCOM_KEY)["count"] == 0


@pytest.mark.airflow
def test_items_start_at_their_own_times_across_deferrals(empty_run: Any) -> None:
    run_after = datetime.now(UTC) + LEAD
    dag_run = fanout_dags().spacing.test(run_after=run_after, logical_date=None)  # a manual run
    assert str(dag_run.state) == "success"
    rows = recorded("spreader_test_fanout_spacing")
    assert [row[0] for row in rows] == ["a", "b", "c", "d"] and {row[2:] for row in rows} == {(0, 1)}
    lateness = [started - (run_after.timestamp() + 4 * i) for i, (_, started, _, _) in enumerate(rows)]
    assert all(0 <= late < TOLERANCE for late in lateness), lateness
    assert xcom(dag_run.dag_id, dag_run.run_id, "spread.items", "return_value", 0) == [
        "done a", "done b", "done c", "done d"]  # results from before the deferrals were kept
    assert xcom(dag_run.dag_id, dag_run.run_id, "spread.items", PROGRESS_XCOM_KEY, 0)["next"] == 3


@pytest.mark.airflow
def test_one_task_instance_per_item_none_early(empty_run: Any) -> None:
    run_after = datetime.now(UTC) + LEAD
    dag_run = fanout_dags().each.test(run_after=run_after, logical_date=run_after)
    assert str(dag_run.state) == "success"
    rows = {item: (started, map_index) for item, started, map_index, _ in recorded("spreader_test_fanout_each")}
    assert sorted(rows) == ["p", "q", "r"] and sorted(m for _, m in rows.values()) == [0, 1, 2]
    for i, item in enumerate("pqr"):
        # dag.test() runs task instances one at a time in any order: an item may wait for another's, never start early
        assert rows[item][0] >= run_after.timestamp() + 2 * i
        assert rows[item][0] < run_after.timestamp() + 4 + 5


@pytest.mark.airflow
def test_a_failed_item_fails_its_task_after_the_deferral_and_the_rest_run(empty_run: Any) -> None:
    run_after = datetime.now(UTC) + LEAD
    dag_run = fanout_dags().failure.test(run_after=run_after, logical_date=None)
    assert str(dag_run.state) == "failed"
    rows = recorded("spreader_test_fanout_failure")
    assert [row[0] for row in rows] == ["x", "boom", "y"]
    lateness = [started - (run_after.timestamp() + 3 * i) for i, (_, started, _, _) in enumerate(rows)]
    assert all(0 <= late < TOLERANCE for late in lateness), lateness
    progress = xcom(dag_run.dag_id, dag_run.run_id, "spread.items", PROGRESS_XCOM_KEY, 0)
    assert progress["next"] == 2 and progress["failures"] == ["#1 'boom': RuntimeError: boom went the item"]
