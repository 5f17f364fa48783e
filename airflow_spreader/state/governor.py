"""The governor's shared state in Redis: its configuration, the last check, and its decisions.

Every task instance of a backfill consults the same reading, so the signals are read at most once per
``health_interval`` however many run: the first to ``SET NX`` the lease (TTL health_interval) checks, the
others read what it recorded. A check is recorded by one Lua script together with what it implies (the
start of a hold, the stop flag, a capped log entry), so a reader never sees half of it. The trigger that
waits out a hold reads only this (never a Variable: apache/airflow#61676).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from redis.commands.core import Script

from airflow_spreader.core.governor import Decision, Reading, Verdict
from airflow_spreader.core.governor_config import GovernorConfig
from airflow_spreader.state import scripts
from airflow_spreader.state.idle import SPANS_KEPT
from airflow_spreader.state.keys import Keys
from airflow_spreader.state.records import from_epoch, redis_text

#: Decisions kept in the log (newest first); older ones are dropped.
LOG_KEPT = 50
#: The value the governor writes to the stop flag (an operator's ``stop`` writes "1").
GOVERNOR_STOP = "governor"


@dataclass(frozen=True, slots=True)
class LoggedDecision:
    """One change of the governor's decision: when, from what, to what, and why."""

    at: datetime | None
    previous: str
    decision: str
    reason: str
    #: ``decision`` (ok/hold/stop), or what the adaptation changed: ``rate_factor``, ``batch_size``.
    what: str = "decision"

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat() if self.at else None, "what": self.what, "from": self.previous,
                "to": self.decision, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class GovernorRecord:
    """The last check: its verdict, every signal's reading, when, and since when the decision holds."""

    verdict: Verdict
    readings: dict[str, Reading]
    checked_at: datetime | None
    since: datetime | None
    held_seconds: float
    #: Checks recorded over the backfill's life (at most one per health_interval).
    checks: int = 0

    def seconds_in_decision(self, now: datetime) -> float:
        return max(0.0, (now - self.since).total_seconds()) if self.since else 0.0

    def total_held(self, now: datetime) -> float:
        """Seconds held over the backfill's life, the current hold included."""
        current = self.seconds_in_decision(now) if self.verdict.decision == "hold" else 0.0
        return self.held_seconds + current


class GovernorState:
    """The governor's keys of backfill ``name`` (same hash tag as the tracker's: one cluster slot)."""

    def __init__(self, client: redis.Redis, name: str, *, clock: Callable[[], float] = time.time) -> None:
        self.redis = client
        self.keys = Keys(name)
        self.clock = clock
        self._script: Script | None = None

    def publish(self, config: GovernorConfig | None) -> None:
        """The plan's configuration for the batches of this cycle; None switches the governor off."""
        if config is None or not config.signals:
            self.redis.hdel(self.keys.governor, "config", "decision", "verdict", "readings", "checked_at", "since")
        else:
            self.redis.hset(self.keys.governor, "config", json.dumps(config.to_dict()))

    def config(self) -> GovernorConfig | None:
        raw = redis_text(self.redis.hget(self.keys.governor, "config"))
        return None if raw is None else GovernorConfig.from_dict(json.loads(raw))

    def take_turn(self, interval: float) -> bool:
        """True for the one caller per ``interval`` seconds that must check the signals now."""
        return bool(self.redis.set(self.keys.governor_lease, str(self.clock()), nx=True,
                                   px=max(1, int(interval * 1000))))

    def record(self, verdict: Verdict, readings: Sequence[tuple[str, Reading]]) -> str:
        """Store a check (and on ``stop`` set the stop flag); the previous decision ('none' at first)."""
        if self._script is None:
            self._script = self.redis.register_script(scripts.source("governor_record"))
        k = self.keys
        previous = self._script(keys=[k.governor, k.governor_log, k.stop, k.idle_open, k.idle_log], args=[
            verdict.decision, json.dumps(verdict.to_dict()),
            json.dumps([[label, reading.to_dict()] for label, reading in readings]),
            self.clock(), LOG_KEPT, verdict.reason, SPANS_KEPT])
        return str(redis_text(previous))

    def current(self) -> GovernorRecord | None:
        """The last check recorded, or None before the first one (or with the governor off)."""
        raw = self.redis.hmget(self.keys.governor, ["verdict", "readings", "checked_at", "since", "held_seconds",
                                                    "checks"])
        verdict, readings, checked_at, since, held, checks = (redis_text(value) for value in raw)
        if verdict is None:
            return None
        return GovernorRecord(Verdict.from_dict(json.loads(verdict)),
                              {label: Reading.from_dict(r) for label, r in json.loads(readings or "[]")},
                              from_epoch(checked_at), from_epoch(since), float(held or 0), int(checks or 0))

    def waiting_state(self) -> tuple[Decision | None, bool]:
        """For a task waiting out a hold: the last decision, and whether it is this waiter's turn to wake its
        task for a new check. Once the lease has expired, one waiter per interval gets the turn (SET NX), so
        a hold wakes one task per interval, not every waiting one; all of them wake when the hold ends."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hget(self.keys.governor, "decision")
        pipe.exists(self.keys.governor_lease)
        pipe.hget(self.keys.governor, "config")
        decision, leased, config = pipe.execute()
        if leased:
            return redis_text(decision), False  # type: ignore[return-value]
        interval = json.loads(redis_text(config) or "{}").get("health_interval", 1.0)
        woken = self.redis.set(self.keys.governor_waker, "1", nx=True, px=max(1, int(float(interval) * 1000)))
        return redis_text(decision), bool(woken)  # type: ignore[return-value]

    def history(self, limit: int = LOG_KEPT) -> list[LoggedDecision]:
        """The logged decisions, newest first."""
        entries = [json.loads(raw) for raw in self.redis.lrange(self.keys.governor_log, 0, limit - 1)]
        return [LoggedDecision(from_epoch(str(e["at"])), str(e["from"]), str(e["to"]), e["reason"],
                               e.get("what", "decision")) for e in entries]

    def log(self, entries: Sequence[LoggedDecision]) -> None:
        """Add changes to the capped log (the adaptation's: state/adapt.py)."""
        if not entries:
            return
        pipe = self.redis.pipeline(transaction=True)
        for e in entries:
            pipe.lpush(self.keys.governor_log, json.dumps({"at": e.at.timestamp() if e.at else self.clock(),
                                                           "what": e.what, "from": e.previous, "to": e.decision,
                                                           "reason": e.reason}))
        pipe.ltrim(self.keys.governor_log, 0, LOG_KEPT - 1)
        pipe.execute()

    def holds(self) -> int:
        """Holds begun over the backfill's life (each ok -> hold)."""
        return int(redis_text(self.redis.hget(self.keys.governor, "holds")) or 0)

    def stopped_by_governor(self) -> bool:
        return redis_text(self.redis.get(self.keys.stop)) == GOVERNOR_STOP
