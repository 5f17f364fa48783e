"""The Redis-backed state of one named backfill.

The tracker checkpoints on *completion*, not on planning: a planned range stays in flight,
fenced by a token, until its work commits. A range handed back (stop) or left unfinished past
its lease (a crash, a lost task) is planned again, before new ranges, at a later cycle, so a
resume never needs an id set by hand. Memory is O(ranges in flight + failed ranges).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import redis
from redis.commands.core import Script

from airflow_spreader.core.carving import Carve, id_carver
from airflow_spreader.core.planner import Batch, IdRange, Number, Rate, cycle_end, rate_at, schedule, slot_offsets
from airflow_spreader.errors import SpreaderError
from airflow_spreader.state import scripts
from airflow_spreader.state.idle import IdleLog
from airflow_spreader.state.keys import REGISTRY_KEY, Keys, validate_claim_id, validate_name
from airflow_spreader.state.records import (
    BeginState,
    ClaimedBatch,
    ClaimOutcome,
    ClaimSnapshot,
    CycleClaim,
    FailedRange,
    Progress,
    cycle_record,
    from_epoch,
)

MINUTE_BUCKETS_TTL = 86_400
MAX_CLAIM_RETRIES = 100
CLAIMS_KEPT = 8  # recorded claims (DAG runs) a retry can still find; a record is 27-53 bytes a batch


def text(value: bytes | str) -> str:
    """Redis answers bytes unless the client decodes; accept both."""
    return value.decode() if isinstance(value, bytes) else value


class TrackerError(SpreaderError, RuntimeError):
    """The tracker's state does not allow the request (not started, lost, busy)."""


class Tracker:
    """State of the backfill ``name`` in ``client``'s Redis (one key namespace per name).

    Inside Airflow, get one from ``airflow_spreader.hooks.SpreaderHook``, which connects
    through the Redis provider's connection; outside, pass any ``redis.Redis``.
    """

    def __init__(self, name: str, client: redis.Redis, *, clock: Callable[[], float] = time.time) -> None:
        self.name = validate_name(name)
        self.keys = Keys(name)
        self.redis = client
        self.clock = clock
        self._scripts: dict[str, Script] = {}

    def __repr__(self) -> str:
        return f"Tracker({self.name!r})"

    def _run(self, script: str, keys: Sequence[str], *args: Any) -> Any:
        if script not in self._scripts:
            self._scripts[script] = self.redis.register_script(scripts.source(script))
        result = self._scripts[script](keys=list(keys), args=list(args))
        return result.decode() if isinstance(result, bytes) else result

    # -- life cycle ---------------------------------------------------------------------

    def start(self, max_id: int, min_id: int = 1, *, generation: str | None = None) -> bool:
        """Capture the bounds at the first cycle; later calls keep the first bounds.

        Rows inserted above ``max_id`` afterwards are not visited. An empty table is
        started with ``max_id < min_id`` and is finished at once. Each start opens a new
        *generation* (the done-ledger's key for this run of the backfill), unless one is given:
        a restore from a checkpoint continues the generation it recorded.
        """
        max_id, min_id = int(max_id), int(min_id)
        now = self.clock()
        total = IdRange(min_id, max_id).counted if max_id >= min_id else 0  # Python: Lua doubles round 64 bits
        started = bool(self._run("start", [self.keys.meta, self.keys.token_seq], str(max_id), str(min_id), now,
                                 str(total), generation or uuid.uuid4().hex, str(int(now * 1000))))
        self.redis.sadd(REGISTRY_KEY, self.name)  # another cluster slot: outside the script, idempotent
        return started

    def generation(self) -> str | None:
        """This run of the backfill: new at each start after a reset. None before the first start."""
        generation, started_at = self.redis.hmget(self.keys.meta, ["generation", "started_at"])
        if generation is not None:
            return text(generation)
        return None if started_at is None else f"started-{text(started_at)}"  # started by an older version

    def record_dag(self, dag_id: str) -> None:
        """Remember which DAG runs this backfill, for the console and the page (its name may differ)."""
        self.redis.hset(self.keys.meta, "dag_id", dag_id)

    def dag_id(self) -> str | None:
        """The DAG that last planned a cycle of this backfill; None before its first plan."""
        value = self.redis.hget(self.keys.meta, "dag_id")
        return None if value is None else text(value)

    def record_halt(self, reason: str, at: float | None = None) -> None:
        """The last plan failed for good (bad configuration, table, pool, lost state): the chain has ended.

        Kept in the meta hash (one HSET, atomic); ``status`` shows it until a plan succeeds or ``resume``."""
        self.redis.hset(self.keys.meta, mapping={"halted_reason": reason[:2000],
                                                 "halted_at": self.clock() if at is None else at})

    def clear_halt(self) -> None:
        self.redis.hdel(self.keys.meta, "halted_reason", "halted_at")

    def halt(self) -> tuple[str, datetime | None] | None:
        """Why and when the last plan failed for good, or None when the chain is not halted."""
        reason, at = self.redis.hmget(self.keys.meta, ["halted_reason", "halted_at"])
        if reason is None:
            return None
        return text(reason), from_epoch(None if at is None else text(at))

    def is_started(self) -> bool:
        return bool(self.redis.hexists(self.keys.meta, "cursor"))

    def reset(self) -> None:
        """Forget everything about this backfill: position, ranges, counters, stop flag."""
        self.redis.delete(*self.keys.all())  # one slot: the keys share the {name} hash tag
        self.redis.srem(REGISTRY_KEY, self.name)

    def set_cursor(self, cursor: int) -> None:
        """Move the position by hand (restore from a checkpoint, or skip the top of a table)."""
        if not self.is_started():
            raise TrackerError(f"backfill {self.name!r} has not started; start() it before set_cursor()")
        self.redis.hset(self.keys.meta, "cursor", int(cursor))

    # -- stop flag ----------------------------------------------------------------------

    def stop(self) -> None:
        """Plan nothing more; batches not yet started hand their ranges back untouched."""
        self.redis.set(self.keys.stop, "1")
        self.redis.hsetnx(self.keys.idle_open, "stopped", str(self.clock()))  # state/idle.py: not slowness

    def go(self) -> None:
        self.redis.delete(self.keys.stop)
        IdleLog(self.redis, self.name, clock=self.clock).close("stopped")

    def is_stopped(self) -> bool:
        return bool(self.redis.exists(self.keys.stop))

    # -- planning -----------------------------------------------------------------------

    def claim_cycle(
        self,
        *,
        batch_size: int,
        per_second: Rate,
        duration: Number,
        begin_at: datetime,
        lease_seconds: float,
        after_previous: bool = False,
        claim_id: str | None = None,
        carve: Carve | None = None,
        start_lead: float = 0.0,
    ) -> CycleClaim:
        """Atomically plan one cycle: ranges due for re-planning first, then new ones from the cursor.

        The plan is made in Python from a snapshot and committed by a Lua script only if the
        cursor and the replayed ranges are as read, so two planners racing never receive
        overlapping ranges (the loser plans again from what is left), while completions of
        other ranges never get in the way. With ``after_previous``, the cycle begins at the planned
        end of the last claimed cycle when that is later than ``begin_at``: cycles tile the time
        line, so a next cycle planned early (or a second planner) never doubles the rate.
        ``per_second`` may be a function of the begin time: the rate is then picked for the cycle's
        begin, which is known only here. The cycle ends after its whole slots (``cycle_length``).
        With a ``claim_id`` (a DAG run), claiming it again (a retried plan, a lost reply) returns its cycle
        unchanged, tokens too, and advances nothing; the last ``CLAIMS_KEPT`` claim ids are remembered.
        ``carve`` cuts the new ranges from the cursor (default: ``batch_size`` ids each; core/carving.py).
        A first cycle (no cycle claimed before) begins ``start_lead`` seconds after ``begin_at``.
        """
        carve = carve or id_carver(batch_size)
        claim_id = None if claim_id is None else validate_claim_id(claim_id)
        for attempt in range(MAX_CLAIM_RETRIES):
            snapshot, start, rate, offsets = self._read(per_second, duration, begin_at, after_previous, claim_id,
                                                        start_lead)
            if snapshot.recorded is not None:  # read with the snapshot; the script answers RECORDED if later
                return CycleClaim.from_record(snapshot.recorded)
            if snapshot.stopped:
                return CycleClaim([], snapshot.cursor, snapshot.cursor, stopped=True, begin_at=start,
                                  per_second=rate)
            replays, fresh, planned = self._plan(snapshot, carve, offsets, start)
            if not planned:
                return CycleClaim([], snapshot.cursor, snapshot.cursor, begin_at=start, per_second=rate)
            end = cycle_end(start, rate, duration)
            new_cursor = fresh[-1].begin_id - 1 if fresh else snapshot.cursor
            record = "" if claim_id is None else cycle_record(
                planned, len(replays), snapshot.cursor, new_cursor, start, rate, end)
            args: list[Any] = [snapshot.cursor, new_cursor, lease_seconds, snapshot.now, len(fresh),
                               sum(r.counted for r in fresh), end.timestamp(), claim_id or "", record, CLAIMS_KEPT]
            for i, batch in enumerate(planned):
                args += [str(batch.id_range), batch.run_at.timestamp(),
                         snapshot.due[batch.id_range] if i < len(replays) else ""]
            outcome = self._run("claim", self.keys.claim_script_keys, *args)
            result = ClaimOutcome(int(outcome[0]))
            if result is ClaimOutcome.CLAIMED:
                first = int(outcome[1])
                batches = [ClaimedBatch(b.run_at, b.begin_id, b.end_id, first + i, replanned=i < len(replays))
                           for i, b in enumerate(planned)]
                return CycleClaim(batches, snapshot.cursor, new_cursor, begin_at=start, per_second=rate,
                                  end_at=end)
            if result is ClaimOutcome.STOPPED:
                return CycleClaim([], snapshot.cursor, snapshot.cursor, stopped=True, begin_at=start,
                                  per_second=rate)
            time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 20)))  # STALE or RECORDED: read again
        raise TrackerError(f"backfill {self.name!r}: could not claim a cycle after "
                           f"{MAX_CLAIM_RETRIES} attempts (too many planners racing)")

    def preview_cycle(self, *, batch_size: int, per_second: Rate, duration: Number,
                      begin_at: datetime, after_previous: bool = False, carve: Carve | None = None) -> CycleClaim:
        """What ``claim_cycle`` would plan now, without claiming anything (tokens are 0)."""
        snapshot, start, rate, offsets = self._read(per_second, duration, begin_at, after_previous)
        if snapshot.stopped:
            return CycleClaim([], snapshot.cursor, snapshot.cursor, stopped=True, begin_at=start, per_second=rate)
        replays, fresh, planned = self._plan(snapshot, carve or id_carver(batch_size), offsets, start)
        batches = [ClaimedBatch(b.run_at, b.begin_id, b.end_id, 0, replanned=i < len(replays))
                   for i, b in enumerate(planned)]
        return CycleClaim(batches, snapshot.cursor, fresh[-1].begin_id - 1 if fresh else snapshot.cursor,
                          begin_at=start, per_second=rate, end_at=cycle_end(start, rate, duration))

    def _read(self, per_second: Rate, duration: Number, begin_at: datetime, after_previous: bool,
              claim_id: str | None = None,
              start_lead: float = 0.0) -> tuple[ClaimSnapshot, datetime, Number, list[int]]:
        """The snapshot, the cycle's begin, the rate in force then, and the cycle's slots."""
        limit = len(slot_offsets(rate_at(per_second, begin_at), duration))
        while True:
            snapshot = self._snapshot(limit, claim_id)
            start = snapshot.begin(begin_at, after_previous, start_lead)
            rate = rate_at(per_second, start)
            offsets = slot_offsets(rate, duration)
            if len(offsets) <= limit:  # read enough due ranges for every slot (else read again, more)
                return snapshot, start, rate, offsets
            limit = len(offsets)

    @staticmethod
    def _plan(snapshot: ClaimSnapshot, carve: Carve, offsets: list[int],
              begin_at: datetime) -> tuple[list[IdRange], list[IdRange], list[Batch]]:
        """Ranges due again first (highest first), then new ranges from the cursor, in the cycle's slots."""
        replays = sorted(snapshot.due, key=lambda r: r.end_id, reverse=True)
        fresh = carve(snapshot.cursor, snapshot.min_id, len(offsets) - len(replays))
        return replays, fresh, schedule([*replays, *fresh], begin_at, offsets)

    def _snapshot(self, limit: int, claim_id: str | None = None) -> ClaimSnapshot:
        k = self.keys
        now = self.clock()
        pipe = self.redis.pipeline(transaction=True)  # the record read with the rest: a claim sees it or plans
        pipe.hmget(k.meta, ["cursor", "min_id", "planned_until", "pass_floor"])
        pipe.exists(k.stop)
        pipe.zrangebyscore(k.leases, "-inf", now, start=0, num=limit)
        pipe.hget(k.claims, claim_id or "")
        (cursor, min_id, planned_until, floor), stopped, due, recorded = pipe.execute()
        if cursor is None:
            raise TrackerError(f"backfill {self.name!r} has not started (no cursor in Redis); "
                               "start() it with the table's bounds first")
        entries = self.redis.hmget(k.inflight, due) if due else []
        return ClaimSnapshot(
            cursor=int(cursor), min_id=int(min_id if floor is None else floor), stopped=bool(stopped), now=now,
            planned_until=None if planned_until is None else float(planned_until),
            recorded=None if recorded is None or claim_id is None else text(recorded),
            due={IdRange.parse(text(m)): text(raw) for m, raw in zip(due, entries, strict=True) if raw is not None},
        )

    # -- batch side ---------------------------------------------------------------------

    def begin(self, batch: ClaimedBatch, attempt: str = "") -> BeginState:
        """May this batch run now? ``run``; ``stopped`` (handed back); ``gone`` or ``superseded`` (skip);
        ``failed-this-try`` (it already failed in the task attempt ``attempt``: leave it to the retry)."""
        k = self.keys
        return BeginState(self._run("begin", [k.inflight, k.leases, k.stop, k.meta],
                                    str(batch.id_range), batch.token, self.clock(), attempt))

    def complete(self, batch: ClaimedBatch, rows: int | None = None, seconds: float | None = None) -> str:
        """Mark the batch's range done after its work committed; its work's ``seconds`` feed the task sizing."""
        k, now = self.keys, self.clock()
        return str(self._run("complete", [k.inflight, k.leases, k.stats, k.meta, k.done_by_minute, k.sizing_times],
                             str(batch.id_range), batch.token, batch.id_range.counted, -1 if rows is None else rows,
                             now, int(now // 60) * 60, MINUTE_BUCKETS_TTL,
                             -1 if seconds is None else max(0.0, seconds)))

    def release(self, batch: ClaimedBatch) -> str:
        """Hand an unstarted batch back: it is planned again first, with no lease wait."""
        return str(self._run("release", [self.keys.inflight, self.keys.leases], str(batch.id_range),
                             batch.token))

    def fail(self, batch: ClaimedBatch, error: str, *, final: bool, attempt: str = "") -> str:
        """Record a failed attempt; ``final`` moves the range to the failed ranges."""
        k = self.keys
        return str(self._run("fail", [k.inflight, k.leases, k.failed, k.stats, k.meta],
                             str(batch.id_range), batch.token, error[:2000], "1" if final else "0",
                             self.clock(), batch.id_range.counted, attempt))

    def retry_failed(self) -> int:
        """Plan every failed range and quarantined key again, first thing at the next cycle. Returns how many."""
        return sum(self.retry_failed_counts())

    def retry_failed_counts(self) -> tuple[int, int]:
        """``retry_failed``, answering the failed ranges and the quarantined keys it planned again."""
        k = self.keys
        ranges, keys = self._run("retry_failed", [k.inflight, k.leases, k.failed, k.stats, k.quarantine])
        return int(ranges), int(keys)

    def run_script(self, script: str, keys: Sequence[str], *args: Any) -> Any:
        """Run one of the package's Lua scripts (state.scripts) on this backfill's Redis."""
        return self._run(script, keys, *args)

    # -- reading ------------------------------------------------------------------------

    def progress(self) -> Progress:
        k = self.keys
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(k.meta)
        pipe.hgetall(k.stats)
        pipe.hlen(k.inflight)
        pipe.exists(k.stop)
        meta_raw, stats_raw, in_flight, stopped = pipe.execute()
        meta = {text(key): text(value) for key, value in meta_raw.items()}
        counters = {text(key): int(value) for key, value in stats_raw.items()}

        def number(key: str) -> int | None:
            return int(meta[key]) if key in meta else None

        return Progress(
            name=self.name, started="cursor" in meta, stopped=bool(stopped),
            cursor=number("cursor"), min_id=number("min_id"), max_id=number("max_id"),
            total_ids=number("total_ids") or 0,
            ids_planned=counters.get("ids_planned", 0), batches_planned=counters.get("batches_planned", 0),
            ids_done=counters.get("ids_done", 0), batches_done=counters.get("batches_done", 0),
            rows_done=counters.get("rows_done", 0), ids_failed=counters.get("ids_failed", 0),
            ids_skipped=counters.get("ids_skipped", 0),
            batches_failed=counters.get("batches_failed", 0), errors=counters.get("errors", 0),
            attempts_lost=counters.get("attempts_lost", 0), keys_quarantined=counters.get("keys_quarantined", 0),
            cycles=counters.get("cycles", 0), in_flight=int(in_flight),
            started_at=from_epoch(meta.get("started_at")), last_activity=from_epoch(meta.get("last_activity")),
            counters=counters, passes=number("passes") or 1, pass_floor=number("pass_floor"),
            looked_top=number("looked_top"), seen_max=number("seen_max"), looked_at=from_epoch(meta.get("looked_at")),
            batching=meta.get("batching", "ids"), rows_estimate=number("rows_estimate"),
        )

    def in_flight(self) -> dict[IdRange, dict[str, Any]]:
        return {IdRange.parse(text(key)): json.loads(value)
                for key, value in self.redis.hgetall(self.keys.inflight).items()}

    def failed_ranges(self) -> list[FailedRange]:
        ranges = []
        for key, value in self.redis.hgetall(self.keys.failed).items():
            span, info = IdRange.parse(text(key)), json.loads(value)
            ranges.append(FailedRange(span.begin_id, span.end_id, info["error"], int(info["attempts"]),
                                      from_epoch(info.get("failed_at"))))
        return sorted(ranges, key=lambda r: r.end_id, reverse=True)

    def low_water_mark(self) -> int | None:
        """The highest id not known to be done: every id above it is done. A durable checkpoint of this
        (and the bounds) is enough to resume without losing anything if Redis loses its data."""
        pipe = self.redis.pipeline(transaction=True)  # one MULTI/EXEC: a retry_failed cannot fall between
        pipe.hget(self.keys.meta, "cursor")
        pipe.hkeys(self.keys.inflight)
        pipe.hkeys(self.keys.failed)
        pipe.hkeys(self.keys.families)  # a root being bisected covers its parked pieces
        pipe.hkeys(self.keys.quarantine)
        cursor, in_flight, failed, families, quarantined = pipe.execute()
        if cursor is None:
            return None
        held = [IdRange.parse(text(key)).end_id for key in [*in_flight, *failed, *families]]
        return max([int(cursor), *held, *(int(key) for key in quarantined)])

    def planned_until(self) -> float | None:
        """Epoch second at which the last claimed cycle's plan ends: where the next cycle may begin."""
        value = self.redis.hget(self.keys.meta, "planned_until")
        return None if value is None else float(value)

    def in_flight_count(self) -> int:
        return int(self.redis.hlen(self.keys.inflight))

    def next_lease_deadline(self) -> float | None:
        """Epoch second at which the earliest in-flight range becomes due for re-planning."""
        first = self.redis.zrange(self.keys.leases, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    def done_per_minute(self) -> dict[int, int]:
        """Ids done per epoch minute over the last day: the tracker's rate history."""
        return {int(m): int(n) for m, n in self.redis.hgetall(self.keys.done_by_minute).items()}

    @staticmethod
    def names(client: redis.Redis) -> list[str]:
        """Every backfill started in this Redis."""
        return sorted(text(member) for member in client.smembers(REGISTRY_KEY))
