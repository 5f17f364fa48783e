"""The one place that knows how the Airflow 3 APIs differ between the releases this package supports.

Airflow 3.2 (Task SDK 1.2) moved ``conf``, the task exceptions, the Stats facade and the timetables into
``airflow.sdk``; Airflow 3.1 (Task SDK 1.1) has them in ``airflow.*``, and its tasks cannot read whether
their DAG is paused. Every other module imports these names from here, so there are no version checks
elsewhere. The checks are on the API itself (an import or an attribute), not on version numbers.
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

from airflow import __version__ as AIRFLOW_VERSION

#: Task SDK 1.2 (Airflow 3.2) is the first with ``airflow.sdk.configuration``; mypy checks that API.
TASK_SDK_1_2 = find_spec("airflow.sdk.configuration") is not None

if TYPE_CHECKING or TASK_SDK_1_2:
    from airflow.sdk import (
        CronDataIntervalTimetable,
        CronTriggerTimetable,
        DeltaDataIntervalTimetable,
        MultipleCronTriggerTimetable,
    )
    from airflow.sdk.configuration import conf
    from airflow.sdk.exceptions import (
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSkipException,
        DagRunTriggerException,
        TaskDeferred,
    )
    from airflow.sdk.observability import stats
else:  # Airflow 3.1
    from airflow.configuration import conf
    from airflow.exceptions import (
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSkipException,
        DagRunTriggerException,
        TaskDeferred,
    )
    from airflow.stats import Stats as stats
    from airflow.timetables.interval import CronDataIntervalTimetable, DeltaDataIntervalTimetable
    from airflow.timetables.trigger import CronTriggerTimetable, MultipleCronTriggerTimetable

__all__ = [
    "AIRFLOW_VERSION",
    "PAUSE_NOT_READABLE",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSkipException",
    "CronDataIntervalTimetable",
    "CronTriggerTimetable",
    "DagRunTriggerException",
    "DeltaDataIntervalTimetable",
    "MultipleCronTriggerTimetable",
    "TaskDeferred",
    "conf",
    "dag_is_paused",
    "dag_serialization",
    "initialize_stats",
    "stats",
]

#: What a batch task logs where its Task SDK cannot read the DAG's paused flag (Airflow 3.1).
PAUSE_NOT_READABLE = (
    f"Airflow {AIRFLOW_VERSION}: a task cannot read whether its DAG is paused (the Task SDK's "
    "RuntimeTaskInstance.get_dag needs Airflow >= 3.2), so pausing the DAG does NOT hold batch starts here; "
    "use `airflow-spreader stop` (and `go`) to hold and resume a backfill"
)


def dag_is_paused(ti: Any) -> bool | None:
    """The paused flag of the task's DAG through the Task SDK; None where this Airflow cannot tell (3.1)."""
    get_dag = getattr(ti, "get_dag", None)
    if get_dag is None:
        return None
    return bool(get_dag(ti.dag_id).is_paused)


#: The timetable attributes core.schedule_interval reads, public in the Task SDK's timetables (3.2+).
TIMETABLE_FIELDS = ("expression", "timezone", "delta", "timetables")


def public_timetable(timetable: Any) -> Any:
    """``timetable`` itself where its fields are public (3.2+); else a same-named view with them public
    (Airflow 3.1's core timetables keep them as ``_expression``, ``_timezone``, ``_delta``, ``_timetables``)."""
    private = {f: getattr(timetable, "_" + f) for f in TIMETABLE_FIELDS
               if not hasattr(timetable, f) and hasattr(timetable, "_" + f)}
    if not private:
        return timetable
    if "timetables" in private:
        private["timetables"] = [public_timetable(t) for t in private["timetables"]]
    view = type(type(timetable).__name__, (), {})()
    vars(view).update({f: getattr(timetable, f) for f in TIMETABLE_FIELDS if hasattr(timetable, f)}, **private)
    return view


def dag_serialization() -> Any:
    """The class that turns a DAG into its serialized dict and back (``to_dict``/``from_dict``)."""
    from airflow.serialization import serialized_objects  # noqa: PLC0415 - server side, on use

    found: Any = serialized_objects
    return getattr(found, "DagSerialization", None) or found.SerializedDAG  # the latter before 3.2


def first_dagrun_info(serialized_dag: Any) -> Any:
    """What the scheduler asks a serialized DAG that has never run (on unpause): its first run's info."""
    try:
        return serialized_dag.next_dagrun_info(last_automated_run_info=None)  # Airflow >= 3.2
    except TypeError:
        return serialized_dag.next_dagrun_info(None)  # Airflow 3.1: last_automated_dagrun, positional


def initialize_stats() -> None:
    """(Re)read ``[metrics]`` into the Stats facade as a task process does when it starts (tests, scripts)."""
    initialize = getattr(stats, "initialize", None)
    if initialize is not None:  # Airflow >= 3.2
        from airflow.sdk.observability.metrics import stats_utils  # noqa: PLC0415

        initialize(factory=stats_utils.get_stats_factory(),
                   export_legacy_names=conf.getboolean("metrics", "legacy_names_on"))
        return
    facade: Any = stats  # Airflow 3.1: a class whose metaclass picks the backend once, when first used
    meta = type(facade)
    if "factory" in vars(meta):
        delattr(meta, "factory")
    meta.__init__(facade)
    facade.instance = None
