"""Idle spans in Redis: when a backfill was held, stopped or paused, for an ETA net of them (core/idle.py).

A span opens with ``HSETNX`` (the first task or command to see it; later ones keep the earlier start)
and closes into a capped list (``SPANS_KEPT``, O(1)); the open ones count up to now. The governor's
record script opens and closes its holds and stops itself (state/lua/governor_record.lua).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import cast

import redis

from airflow_spreader.core.idle import IdleKind, IdleSpan
from airflow_spreader.state import scripts
from airflow_spreader.state.keys import Keys
from airflow_spreader.state.records import redis_text

#: Closed spans kept (newest first): a quarter of an hour's window needs few.
SPANS_KEPT = 50


class IdleLog:
    """The idle spans of backfill ``name``."""

    def __init__(self, client: redis.Redis, name: str, *, clock: Callable[[], float] = time.time) -> None:
        self.redis = client
        self.keys = Keys(name)
        self.clock = clock

    def open(self, kind: IdleKind) -> None:
        self.redis.hsetnx(self.keys.idle_open, kind, str(self.clock()))

    def close(self, kind: IdleKind) -> bool:
        script = self.redis.register_script(scripts.source("idle_close"))
        return bool(script(keys=[self.keys.idle_open, self.keys.idle_log], args=[kind, self.clock(), SPANS_KEPT]))

    def spans(self) -> list[IdleSpan]:
        """The closed spans kept and the open ones (ending now)."""
        now = self.clock()
        pipe = self.redis.pipeline(transaction=True)
        pipe.lrange(self.keys.idle_log, 0, SPANS_KEPT - 1)
        pipe.hgetall(self.keys.idle_open)
        closed, opened = pipe.execute()
        spans = [IdleSpan(e["kind"], float(e["begin"]), float(e["end"])) for e in map(json.loads, closed)]
        for kind, began in opened.items():
            spans.append(IdleSpan(cast(IdleKind, redis_text(kind)), float(began), max(now, float(began))))
        return spans
