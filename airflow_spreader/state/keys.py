"""Key names of one backfill's state in Redis.

Every key of a backfill carries the hash tag ``{name}`` so that the whole backfill lives in
one cluster slot and its Lua scripts may touch all of its keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
PREFIX = "spreader"
REGISTRY_KEY = f"{PREFIX}:backfills"


def validate_name(name: str) -> str:
    """Backfill names become key parts and Airflow ids: keep them to a safe alphabet."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):  # not match(...$): "$" lets a trailing "\n" in
        raise ValueError(
            f"invalid backfill name {name!r}: use 1-200 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True, slots=True)
class Keys:
    """The Redis keys of one backfill."""

    name: str

    def _key(self, part: str) -> str:
        return f"{PREFIX}:{{{self.name}}}:{part}"

    @property
    def meta(self) -> str:
        """Hash: cursor, min_id, max_id, total_ids, started_at, last_activity."""
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
    def stop(self) -> str:
        return self._key("stop")

    @property
    def token_seq(self) -> str:
        return self._key("seq")

    @property
    def done_by_minute(self) -> str:
        """Hash: epoch minute -> ids done in it; expires a day after the last completion."""
        return self._key("minutes")

    def all(self) -> list[str]:
        return [self.meta, self.stats, self.inflight, self.leases, self.failed, self.stop,
                self.token_seq, self.done_by_minute]
