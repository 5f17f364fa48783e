"""Every name derived from a backfill: its Redis keys, its Airflow Variables, its DAG runs.

One backfill has a name (the tracker's, in Redis) and a DAG (``backfill_dag(dag_id, backfill=...)``);
they are equal by default and may differ. The Variables belong to the DAG, the Redis keys to the
name, and the tracker records its DAG so that the console and the page ask the right one. Nothing
else in the package spells one of these names: change them here.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
#: The prefix of every Redis key, Variable and run id of the package.
PREFIX = "spreader"
REGISTRY_KEY = f"{PREFIX}:backfills"
VARIABLE_PREFIX = f"{PREFIX}__"
CHECKPOINT_SUFFIX = "__checkpoint"


def validate_name(name: str) -> str:
    """Backfill names become key parts and Airflow ids: keep them to a safe alphabet."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"invalid backfill name {name!r}: use 1-200 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def redis_key(backfill: str, part: str) -> str:
    """A key of the backfill in Redis; the hash tag ``{name}`` keeps all of them in one cluster slot."""
    return f"{PREFIX}:{{{backfill}}}:{part}"


def config_variable(dag_id: str) -> str:
    """The Airflow Variable holding the configuration of the backfill run by ``dag_id``."""
    return f"{VARIABLE_PREFIX}{dag_id}"


def checkpoint_variable(dag_id: str) -> str:
    """The Airflow Variable holding the durable checkpoint of the backfill run by ``dag_id``."""
    return f"{config_variable(dag_id)}{CHECKPOINT_SUFFIX}"


#: The scheme of the Asset a finished backfill emits an event for ("airflow" is reserved by Airflow).
ASSET_SCHEME = "airflow-spreader"


def asset_uri(backfill: str) -> str:
    """The URI (and name) of the default Asset of ``backfill``: ``airflow-spreader://<backfill>``."""
    return f"{ASSET_SCHEME}://{validate_name(backfill)}"


def next_run_id(now: datetime | None = None) -> str:
    """A run id for the next cycle's DAG run: sortable by time, unique by its random tail."""
    at = now or datetime.now(timezone.utc)
    return f"{VARIABLE_PREFIX}{at:%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True, slots=True)
class BackfillNames:
    """The names of one backfill run by one DAG."""

    backfill: str
    dag_id: str

    def __post_init__(self) -> None:
        validate_name(self.backfill)

    @classmethod
    def of(cls, backfill: str, dag_id: str | None = None) -> BackfillNames:
        """The names of ``backfill``; its DAG defaults to its own name, as ``backfill_dag`` does."""
        return cls(backfill, dag_id or backfill)

    @property
    def config_variable(self) -> str:
        return config_variable(self.dag_id)

    @property
    def checkpoint_variable(self) -> str:
        return checkpoint_variable(self.dag_id)
