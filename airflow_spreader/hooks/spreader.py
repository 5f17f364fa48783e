"""Reach a backfill's tracker through an Airflow Redis connection."""

from __future__ import annotations

from typing import Any

from airflow.providers.redis.hooks.redis import RedisHook
from airflow.sdk import BaseHook

from airflow_spreader.state.tracker import Tracker


class SpreaderHook(BaseHook):
    """Trackers of backfills kept in the Redis of connection ``redis_conn_id``.

    Goes through the Redis provider's ``RedisHook``, so TLS, passwords, db numbers (``?db=5``)
    and clusters are configured the way Airflow users already know.
    """

    conn_name_attr = "redis_conn_id"
    default_conn_name = "redis_default"
    conn_type = "redis"
    hook_name = "airflow-spreader tracker"

    def __init__(self, redis_conn_id: str = default_conn_name, *, connection: Any = None, **kwargs: Any) -> None:
        """:param connection: an Airflow ``Connection`` already looked up (the console reads it server side);
        by default the connection ``redis_conn_id`` is looked up as in any task."""
        super().__init__(**kwargs)
        self.redis_conn_id = redis_conn_id
        self.connection = connection
        self._client: Any = None

    def get_conn(self) -> Any:
        if self._client is None:
            hook = RedisHook(redis_conn_id=self.redis_conn_id)
            if self.connection is not None:
                known = self.connection
                hook.get_connection = lambda conn_id: known  # type: ignore[method-assign]
            self._client = hook.get_conn()  # type: ignore[no-untyped-call]
        return self._client

    def tracker(self, name: str) -> Tracker:
        return Tracker(name, self.get_conn())
