"""Fan-out: spread a recurring run's items evenly over its schedule interval, one deferred start each.

``spread_items(list_task_output, work)`` wires ``plan >> items`` in a task group: ``plan`` reads the
upstream list, derives the interval from the DAG's schedule and times item i of n at
``start + i * span / n``; ``items`` is mapped over the plan, each task instance waiting (deferred)
until each of its items' times. See docs/fanout.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial
from types import SimpleNamespace
from typing import Any

from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk import BaseOperator, Context, TaskGroup
from airflow.sdk.definitions.mappedoperator import MappedOperator
from croniter import croniter

from airflow_spreader.compat import AirflowFailException, conf, public_timetable
from airflow_spreader.core.fanout import TimedItem, Window, check_options, next_position, spread, timed_items
from airflow_spreader.core.grouping import group_batches
from airflow_spreader.core.planner import Number
from airflow_spreader.core.schedule_interval import (
    SPREAD_OVER_CONF_KEY,
    FanoutScheduleError,
    Interval,
    cron_period,
    run_interval_override,
    run_start,
)
from airflow_spreader.core.schedule_interval import schedule_interval as interval_of_schedule
from airflow_spreader.core.timing import call_work, check_timing, missing_work
from airflow_spreader.errors import SpreaderError
from airflow_spreader.operators.timing import TimedWaits

__all__ = [  # the schedule arithmetic moved to core.schedule_interval; still importable from here
    "SPREAD_OVER_CONF_KEY", "FanoutScheduleError", "Interval", "cron_period", "run_interval_override", "run_start",
    "schedule_interval",
]

def schedule_interval(dag: Any, dag_run: Any, start: datetime, explicit: Interval | None = None) -> timedelta:
    """core.schedule_interval on the DAG's timetable, its fields read the same way on every Airflow."""
    view = SimpleNamespace(timetable=public_timetable(getattr(dag, "timetable", None)),
                           timezone=getattr(dag, "timezone", None))
    return interval_of_schedule(view, dag_run, start, explicit)


#: The work for one item: ``work(item)``, optionally ``context=``; its return value is kept in XCom.
ItemWork = Callable[..., Any]
#: Task instances of the mapped ``items`` task by default; more items are dealt round-robin into them.
DEFAULT_MAX_TASKS = 256
#: The XCom key of the plan's summary (start, interval, gap, ...), pushed by the ``plan`` task.
SPREAD_XCOM_KEY = "spread"
#: The XCom key under which an ``items`` task instance keeps its position across a deferral.
PROGRESS_XCOM_KEY = "fanout_progress"


def wake_trigger(wake_at: datetime) -> DateTimeTrigger:
    return DateTimeTrigger(moment=wake_at)


def save_progress(context: Context, progress: Progress, position: int) -> None:
    """Before a deferral: the next item to run and the results so far, for the resume."""
    progress.next = position
    context["ti"].xcom_push(key=PROGRESS_XCOM_KEY, value=asdict(progress))


class ItemsFailed(SpreaderError, RuntimeError):
    """Some items of this task instance raised; the others ran. A retry runs all of them again."""


class PlanFanoutOperator(BaseOperator):
    """Time each item of the upstream list and group them for the mapped ``items`` task.

    Returns one ``{"items": [...]}`` per task instance (at most ``max_tasks`` and ``[core]
    max_map_length``), items dealt round-robin so that one instance's items are far apart, and
    pushes a summary under the XCom key ``spread``. Bad options fail the task without a retry.
    ``items`` is a templated field: an upstream output is used as it is, but the strings of a
    literal list are rendered with Jinja.
    """

    template_fields: Sequence[str] = ("items",)
    ui_color = "#e8f0fe"

    def __init__(self, *, items: Any, interval: Interval | None = None, window: Window | None = None,
                 max_per_second: Number | None = None, max_tasks: int = DEFAULT_MAX_TASKS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_options(window, max_per_second)
        if isinstance(interval, str) and not croniter.is_valid(interval):
            raise ValueError(f"interval {interval!r} is not a valid cron expression")
        if isinstance(interval, timedelta) and interval <= timedelta(0):
            raise ValueError(f"interval must be > 0, got {interval}")
        if max_tasks < 1:
            raise ValueError(f"max_tasks must be >= 1, got {max_tasks}")
        self.items = items
        self.interval = interval
        self.window = window
        self.max_per_second = max_per_second
        self.max_tasks = max_tasks

    def execute(self, context: Context) -> list[dict[str, Any]]:
        if not isinstance(self.items, list | tuple):
            raise AirflowFailException(f"the upstream gave {type(self.items).__name__}, expected a list of items")
        start = run_start(context["dag_run"])
        try:
            interval = run_interval_override(context["dag_run"]) or schedule_interval(
                context["dag"], context["dag_run"], start, self.interval)
            plan = spread(len(self.items), start, interval, window=self.window, max_per_second=self.max_per_second)
        except ValueError as error:
            raise AirflowFailException(f"cannot spread the items: {error}") from error
        groups = group_batches(timed_items(self.items, plan), min(self.max_tasks, self.max_map_length()))
        summary = {**plan.summary(), "groups": len(groups)}
        context["ti"].xcom_push(key=SPREAD_XCOM_KEY, value=summary)
        self.log.info("Spreading %d items over %s from %s: one every %.6f s, last at %s, in %d task instances",
                      plan.count, plan.span, start.isoformat(), summary["gap_seconds"], summary["last_start"],
                      len(groups))
        overdue = sum(1 for moment in plan.times() if moment < datetime.now(timezone.utc))
        if overdue:
            self.log.warning("%d items are already due (the run started late): they start at once", overdue)
        if plan.overruns_interval:
            self.log.warning("max_per_second=%s stretches the items past the interval (%s): this run overlaps "
                             "the next one", self.max_per_second, interval)
        elif plan.overruns_window:
            self.log.warning("max_per_second=%s stretches the items past the window (%s)", self.max_per_second,
                             plan.span)
        return [{"items": [entry.to_dict() for entry in group]} for group in groups]

    @staticmethod
    def max_map_length() -> int:
        return int(conf.getint("core", "max_map_length", fallback=1024))


@dataclass
class Progress:
    """Where an ``items`` task instance stands: kept in XCom across a deferral (cleared at a new try)."""

    next: int = 0
    results: list[Any] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


class SpreadItemsOperator(TimedWaits):
    """Run each of ``items`` (``TimedItem`` dicts, in time order) at its time, deferred while waiting.

    Give the work as ``work=`` or override :meth:`process`. Before each deferral the position,
    results and failures are pushed to XCom (kept until the resume, which skips the items already
    run); an item that raises does not stop the others, and the task fails at the end naming it.
    Returns the results of its items, in order. Items are at least once: a retry runs all of them.
    """

    ui_color = "#fef7e0"

    def __init__(self, *, items: list[dict[str, Any]], work: ItemWork | None = None,
                 defer_threshold: float | None = None, wake_margin: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if work is None and type(self).process is SpreadItemsOperator.process:
            raise missing_work(type(self).__name__, "a subclass overriding process()")
        self.items = items
        self.work = work
        if defer_threshold is not None:
            self.defer_threshold = defer_threshold
        if wake_margin is not None:
            self.wake_margin = wake_margin
        check_timing(self.defer_threshold, self.wake_margin)

    @property
    def label(self) -> str:
        """The label of this task instance in the UI (``map_index_template``)."""
        entries = [TimedItem.from_dict(data) for data in self.items]
        if len(entries) == 1:
            return f"#{entries[0].index} {str(entries[0].item)[:60]}"
        return f"{len(entries)} items: #{entries[0].index}, ... #{entries[-1].index}" if entries else "no items"

    def process(self, item: Any, context: Context) -> Any:
        """Do the work of one item."""
        assert self.work is not None  # checked in __init__
        return call_work(self.work, item, context=context)

    def execute(self, context: Context) -> list[Any]:
        return self.run_from(context, Progress())

    def resume(self, context: Context, event: Any = None) -> list[Any]:
        """Back from the triggerer: carry on after the items already run (defer() kwargs are not relied upon)."""
        return self.run_from(context, self.progress_after_deferral(context, event))

    def progress_after_deferral(self, context: Context, event: Any) -> Progress:
        """The position saved in XCom; else the one implied by the moment waited for; else the start."""
        ti = context["ti"]
        saved = ti.xcom_pull(task_ids=ti.task_id, key=PROGRESS_XCOM_KEY, map_indexes=ti.map_index)
        if isinstance(saved, dict):
            return Progress(**saved)
        moment = event if isinstance(event, datetime) else None
        if isinstance(event, str):
            moment = datetime.fromisoformat(event)
        if moment is not None and moment.tzinfo is not None:
            position = next_position([TimedItem.from_dict(data).at for data in self.items], moment)
            self.log.warning("No saved progress: resuming at item %d from the moment waited for", position)
            return Progress(next=position, results=[None] * position)
        self.log.warning("No saved progress and no moment: running every item again (at least once)")
        return Progress()

    def run_from(self, context: Context, progress: Progress) -> list[Any]:
        entries = [TimedItem.from_dict(data) for data in self.items]
        for position in range(progress.next, len(entries)):
            entry = entries[position]
            self.wait_for(entry.at, wake_trigger, before=partial(save_progress, context, progress, position))
            late = (datetime.now(timezone.utc) - entry.at).total_seconds()
            self.log.info("Item #%d (due %s, %.3f s late): %s", entry.index, entry.at.isoformat(), late, entry.item)
            try:
                progress.results.append(self.process(entry.item, context))
            except Exception as error:
                self.log.exception("Item #%d failed", entry.index)
                progress.results.append(None)
                progress.failures.append(f"#{entry.index} {entry.item!r}: {type(error).__name__}: {error}")
        if progress.failures:
            raise ItemsFailed(f"{len(progress.failures)} of {len(entries)} items failed: "
                              + "; ".join(progress.failures))
        return progress.results


def spread_items(
    items: Any,
    work: ItemWork | None = None,
    *,
    task_id: str = "spread",
    interval: Interval | None = None,
    window: Window | None = None,
    max_per_second: Number | None = None,
    max_tasks: int = DEFAULT_MAX_TASKS,
    item_operator: type[SpreadItemsOperator] = SpreadItemsOperator,
    plan_kwargs: dict[str, Any] | None = None,
    **item_kwargs: Any,
) -> MappedOperator:
    """Fan the upstream list ``items`` out into mapped tasks, item i of n starting at ``start + i * span / n``.

    :param items: the list, usually an upstream task's output (``list_accounts()``); JSON-able items.
    :param work: ``work(item)`` (add a ``context`` parameter to receive the context); or give
        ``item_operator``, a subclass of :class:`SpreadItemsOperator` overriding ``process``.
    :param task_id: the task group's id; its tasks are ``<task_id>.plan`` and ``<task_id>.items``.
    :param interval: a timedelta or a cron expression; default: the DAG's schedule.
    :param window: spread over a fraction of the interval (0.8: its first 80%) or a timedelta from its start.
    :param max_per_second: at most this many starts per second; wins over the window when they disagree.
    :param max_tasks: most task instances of ``items`` (also capped by ``[core] max_map_length``).
    :param plan_kwargs: more arguments for the plan task (retries, ...).
    :param item_kwargs: more arguments for the items task (pool, retries, defer_threshold, ...).
    :return: the mapped ``items`` task, to chain downstream tasks to (its outputs are the items' results).
    """
    if work is None and item_operator is SpreadItemsOperator:
        raise missing_work(f"spread_items({task_id!r})", "an item_operator subclass")
    with TaskGroup(group_id=task_id, tooltip="airflow-spreader fan-out: plan the starts, run each at its time"):
        plan = PlanFanoutOperator(task_id="plan", items=items, interval=interval, window=window,
                                  max_per_second=max_per_second, max_tasks=max_tasks, **(plan_kwargs or {}))
        item_kwargs.setdefault("map_index_template", "{{ task.label }}")
        mapped: MappedOperator = item_operator.partial(task_id="items", work=work, **item_kwargs).expand_kwargs(
            plan.output)
    return mapped
