"""Key names of one backfill's state in Redis.

Every key of a backfill carries the hash tag ``{name}`` so that the whole backfill lives in
one cluster slot and its Lua scripts may touch all of its keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_spreader.core.names import REGISTRY_KEY, redis_key, validate_name

__all__ = ["REGISTRY_KEY", "Keys", "validate_claim_id", "validate_name"]


def validate_claim_id(claim_id: str) -> str:
    """A claim id is a field of the claims hash; '' is the claim script's "no claim id"."""
    if not isinstance(claim_id, str) or not claim_id:
        raise ValueError(f"claim_id must be a non-empty string (a DAG run's id) or None, got {claim_id!r}")
    return claim_id


@dataclass(frozen=True, slots=True)
class Keys:
    """The Redis keys of one backfill."""

    name: str

    def _key(self, part: str) -> str:
        return redis_key(self.name, part)

    @property
    def meta(self) -> str:
        """Hash: cursor, min_id, max_id, total_ids, started_at, last_activity, dag_id; with follow_new_rows
        also passes, pass_floor, looked_top, seen_max, looked_at (state/passes.py)."""
        return self._key("meta")

    @property
    def stats(self) -> str:
        """Hash of counters: batches/ids planned, done, failed; rows done; errors; cycles."""
        return self._key("stats")

    @property
    def inflight(self) -> str:
        """Hash: range -> JSON {token, run_at, lease, attempts, error, started_at}."""
        return self._key("inflight")

    @property
    def leases(self) -> str:
        """Sorted set: range -> epoch second after which it is planned again (0: at once)."""
        return self._key("leases")

    @property
    def failed(self) -> str:
        """Hash: range -> JSON {error, attempts, failed_at}."""
        return self._key("failed")

    @property
    def families(self) -> str:
        """Hash: root range -> JSON of its bisection (core.split.Family): a failed range being split."""
        return self._key("families")

    @property
    def quarantine(self) -> str:
        """Hash: key -> JSON {error, attempts, quarantined_at, root}: rows isolated by bisection."""
        return self._key("quarantine")

    @property
    def isolate_script_keys(self) -> list[str]:
        """The keys isolate.lua touches, in its KEYS order."""
        return [self.inflight, self.leases, self.failed, self.stats, self.families, self.quarantine, self.meta]

    @property
    def stop(self) -> str:
        return self._key("stop")

    @property
    def token_seq(self) -> str:
        return self._key("seq")

    @property
    def done_by_minute(self) -> str:
        """Hash: epoch minute -> ids done in it; expires a day after the last completion."""
        return self._key("minutes")

    @property
    def claims(self) -> str:
        """Hash: claim id (a DAG run) -> JSON of the cycle it claimed, so that a retried claim gets it back."""
        return self._key("claims")

    @property
    def claim_order(self) -> str:
        """List of the recorded claim ids, newest first: only the last few are kept (O(1) memory)."""
        return self._key("claim-order")

    @property
    def verify(self) -> str:
        """Hash: the verification of the rows left pending (wanted, cursor, rounds, pending_rows, complete, ...)."""
        return self._key("verify")

    @property
    def pending(self) -> str:
        """Hash: range "lo-hi" (the pending keys found in one counted span) -> rows pending in it."""
        return self._key("pending")

    @property
    def recheck(self) -> str:
        """Hash: the ranges a redo planned again (as ``pending`` had them): the next pass counts only those."""
        return self._key("recheck")

    @property
    def governor(self) -> str:
        """Hash: the governor's config, last verdict, readings, checked_at, since, held_seconds."""
        return self._key("governor")

    @property
    def governor_lease(self) -> str:
        """String with a TTL of health_interval: whoever sets it (SET NX) checks the signals this interval."""
        return self._key("governor-lease")

    @property
    def governor_waker(self) -> str:
        """String with a TTL of health_interval: the one waiting trigger that wakes its task for a new check."""
        return self._key("governor-waker")

    @property
    def governor_log(self) -> str:
        """List of the governor's decisions (JSON), newest first, capped (O(1) memory)."""
        return self._key("governor-log")

    @property
    def adapt(self) -> str:
        """Hash: the adaptation's rate factor, batch size, smoothed seconds per unit (state/adapt.py)."""
        return self._key("adapt")

    @property
    def batch_times(self) -> str:
        """Hash: seconds and sizes of the batches done since the last plan (summed: O(1))."""
        return self._key("batch-times")

    @property
    def sizing_times(self) -> str:
        """Hash: count and seconds of the batches done since the last plan, which sizes its task instances by
        their mean (core/grouping.py); summed by complete.lua, O(1)."""
        return self._key("sizing-times")

    @property
    def idle_open(self) -> str:
        """Hash: kind (held, stopped, paused) -> epoch the idle span began (state/idle.py)."""
        return self._key("idle-open")

    @property
    def idle_log(self) -> str:
        """List of the last idle spans (JSON), newest first, capped (O(1) memory)."""
        return self._key("idle-log")

    @property
    def texts(self) -> str:
        """Sorted set of a text key's minted handles, "HEX:=text" (state/text_keys.py): O(ranges not done)."""
        return self._key("texts")

    @property
    def claim_script_keys(self) -> list[str]:
        """The keys claim.lua touches, in its KEYS order."""
        return [self.meta, self.leases, self.inflight, self.stats, self.stop, self.token_seq, self.claims,
                self.claim_order]

    def all(self) -> list[str]:
        return [self.meta, self.stats, self.inflight, self.leases, self.failed, self.stop,
                self.token_seq, self.done_by_minute, self.claims, self.claim_order, self.families, self.quarantine,
                self.verify, self.pending, self.recheck, self.governor, self.governor_lease, self.governor_waker,
                self.governor_log, self.adapt, self.batch_times, self.sizing_times, self.idle_open, self.idle_log,
                self.texts]
