"""airflow-spreader: throttled, resumable id-range backfills of database tables for Apache Airflow.

``import airflow_spreader`` imports nothing from Airflow, so the core can be used (and tested) alone. The
Airflow-side names (the DAG factories, operators, hooks, trigger) are imported on first use (PEP 562), so
``from airflow_spreader import backfill_dag, spread_items`` works without making the package import Airflow.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from airflow_spreader.core.config import ConfigError, SpreadConfig
from airflow_spreader.core.peak import PeakSchedule
from airflow_spreader.core.planner import Batch, IdRange, plan_cycle
from airflow_spreader.errors import SpreaderError
from airflow_spreader.state.tracker import Tracker, TrackerError

if TYPE_CHECKING:
    from airflow_spreader.dag_factory import backfill_dag
    from airflow_spreader.hooks.source import SourceDatabaseHook
    from airflow_spreader.hooks.spreader import SpreaderHook
    from airflow_spreader.operators.batch import SpreadBatchOperator
    from airflow_spreader.operators.fanout import PlanFanoutOperator, SpreadItemsOperator, spread_items
    from airflow_spreader.operators.next_cycle import NextCycleOperator
    from airflow_spreader.operators.plan import PlanCycleOperator
    from airflow_spreader.operators.report import CycleReportOperator
    from airflow_spreader.triggers.backfill_wait import BackfillWaitTrigger

# The one place the version is written: setup.cfg (``attr:``) and get_provider_info read it.
__version__ = "0.1.0"

# Name -> module for the names that need Airflow; imported by __getattr__ on first access.
_AIRFLOW_SIDE = {
    "backfill_dag": "airflow_spreader.dag_factory",
    "spread_items": "airflow_spreader.operators.fanout",
    "PlanCycleOperator": "airflow_spreader.operators.plan",
    "SpreadBatchOperator": "airflow_spreader.operators.batch",
    "NextCycleOperator": "airflow_spreader.operators.next_cycle",
    "CycleReportOperator": "airflow_spreader.operators.report",
    "PlanFanoutOperator": "airflow_spreader.operators.fanout",
    "SpreadItemsOperator": "airflow_spreader.operators.fanout",
    "SpreaderHook": "airflow_spreader.hooks.spreader",
    "SourceDatabaseHook": "airflow_spreader.hooks.source",
    "BackfillWaitTrigger": "airflow_spreader.triggers.backfill_wait",
}

__all__ = [
    "BackfillWaitTrigger",
    "Batch",
    "ConfigError",
    "CycleReportOperator",
    "IdRange",
    "NextCycleOperator",
    "PeakSchedule",
    "PlanCycleOperator",
    "PlanFanoutOperator",
    "SourceDatabaseHook",
    "SpreadBatchOperator",
    "SpreadConfig",
    "SpreadItemsOperator",
    "SpreaderError",
    "SpreaderHook",
    "Tracker",
    "TrackerError",
    "__version__",
    "backfill_dag",
    "plan_cycle",
    "spread_items",
]


def __getattr__(name: str) -> Any:
    module = _AIRFLOW_SIDE.get(name)
    if module is None:
        raise AttributeError(f"module 'airflow_spreader' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_AIRFLOW_SIDE))
