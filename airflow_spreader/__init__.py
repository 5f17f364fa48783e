"""airflow-spreader: throttled, resumable id-range backfills of database tables for Apache Airflow.

The public names below import nothing from Airflow, so the core can be used (and tested) alone;
the Airflow side lives in ``airflow_spreader.dag_factory``, ``.operators`` and ``.hooks``.
"""

from __future__ import annotations

from airflow_spreader.core.config import ConfigError, SpreadConfig
from airflow_spreader.core.peak import PeakSchedule
from airflow_spreader.core.planner import Batch, IdRange, plan_cycle
from airflow_spreader.state.tracker import Tracker, TrackerError

__all__ = ["Batch", "ConfigError", "IdRange", "PeakSchedule", "SpreadConfig", "Tracker", "TrackerError",
           "plan_cycle"]
__version__ = "0.1.0"
