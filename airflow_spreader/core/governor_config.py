"""The governor's configuration: which health signals a backfill watches, and where it holds or stops.

It lives in the backfill's Variable under ``"governor"``, is read at every plan like the rest, and is
checked there: one :class:`ConfigError` names every bad field by its path (``governor.signals[0].hold_above``)
before anything is planned. Whether a connection exists or a ``callable`` imports is checked by the
plan too (hooks/governor.py): that needs Airflow and an import, which this pure module does not do.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from airflow_spreader.core.rules import MAX_BATCH_SIZE, ConfigError

SignalKind = Literal["replica_lag", "active_sessions", "probe_latency", "sql", "callable"]
KINDS: tuple[SignalKind, ...] = ("replica_lag", "active_sessions", "probe_latency", "sql", "callable")
#: Kinds that read a database through an Airflow connection (``conn_id``).
READS_A_DATABASE = frozenset({"replica_lag", "active_sessions", "probe_latency", "sql"})
DEFAULT_HEALTH_INTERVAL = 10.0
MAX_HEALTH_INTERVAL = 3600.0
DEFAULT_PROBE = "SELECT 1"
DEFAULT_SAMPLES = 3
MAX_SAMPLES = 20
#: ``package.module.function`` or ``package.module:function``.
DOTTED_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*([.:][A-Za-z_][\w]*)$")
SIGNAL_FIELDS = ("kind", "name", "conn_id", "hold_above", "stop_above", "query", "samples", "commit", "callable")
#: The adaptation's fields (core/adapt.py): the batch size towards a target time, the rate's AIMD factor.
ADAPT_FIELDS = ("target_batch_seconds", "min_batch_size", "max_batch_size", "adaptive_rate")
GOVERNOR_FIELDS = ("health_interval", "signals", *ADAPT_FIELDS)
MAX_TARGET_BATCH_SECONDS = 3600.0


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and (isinstance(value, int) or
                                            (isinstance(value, float) and math.isfinite(value)))


@dataclass(frozen=True, slots=True)
class Signal:
    """One health signal: read a number, hold above ``hold_above``, stop above ``stop_above`` (if set)."""

    kind: SignalKind
    hold_above: float
    stop_above: float | None = None
    conn_id: str | None = None
    query: str | None = None
    samples: int = DEFAULT_SAMPLES
    callable: str | None = None
    name: str | None = None
    #: probe_latency only: each sample is its own transaction, timed to the end of its commit (a write's
    #: WAL flush), not one transaction whose statements alone are timed.
    commit: bool = False

    @property
    def label(self) -> str:
        """How status names it: the user's ``name``, else the kind in words (``replica lag``)."""
        return self.name or self.kind.replace("_", " ")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "hold_above": self.hold_above}
        for key in ("stop_above", "conn_id", "query", "callable", "name"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.kind == "probe_latency":
            data["samples"] = self.samples
        if self.commit:
            data["commit"] = True
        return data

    @classmethod
    def parse(cls, data: object, where: str, problems: dict[str, str]) -> Signal | None:
        """The signal at path ``where``, or None with its problems added to ``problems``."""
        if not isinstance(data, Mapping):
            problems[where] = f"must be an object such as {{\"kind\": \"replica_lag\", ...}}, got {data!r}"[:200]
            return None
        before = len(problems)
        for key in data:
            if key not in SIGNAL_FIELDS:
                problems[f"{where}.{key}"] = f"unknown field (allowed: {', '.join(SIGNAL_FIELDS)})"
        kind = data.get("kind")
        if kind not in KINDS:
            problems[f"{where}.kind"] = f"must be one of {', '.join(KINDS)}, got {kind!r}"
            return None
        hold, stop = data.get("hold_above"), data.get("stop_above")
        if not _is_number(hold) or cast(float, hold) < 0:
            problems[f"{where}.hold_above"] = f"must be a finite number >= 0 (required), got {hold!r}"
        if stop is not None and (not _is_number(stop) or cast(float, stop) < 0):
            problems[f"{where}.stop_above"] = f"must be a finite number >= 0, or absent, got {stop!r}"
        elif stop is not None and _is_number(hold) and cast(float, stop) < cast(float, hold):
            problems[f"{where}.stop_above"] = f"must be at least hold_above ({hold!r}), got {stop!r}"
        cls._check_source(kind, data, where, problems)
        name = data.get("name")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            problems[f"{where}.name"] = f"must be a non-empty string, got {name!r}"
        if len(problems) > before:
            return None
        return cls(kind=kind, hold_above=hold, stop_above=stop, conn_id=data.get("conn_id"),  # type: ignore[arg-type]
                   query=data.get("query", DEFAULT_PROBE if kind == "probe_latency" else None),
                   samples=data.get("samples", DEFAULT_SAMPLES), callable=data.get("callable"), name=name,
                   commit=data.get("commit", False))

    @staticmethod
    def _check_source(kind: str, data: Mapping[str, Any], where: str, problems: dict[str, str]) -> None:
        """What the kind reads from: a connection (and a query for ``sql``), or a dotted path."""
        conn_id, query, path = data.get("conn_id"), data.get("query"), data.get("callable")
        if kind in READS_A_DATABASE:
            if not isinstance(conn_id, str) or not conn_id:
                problems[f"{where}.conn_id"] = (f"must name the Airflow connection {kind} reads (required), "
                                                f"got {conn_id!r}")
        elif conn_id is not None:
            problems[f"{where}.conn_id"] = "not used by kind callable (the function reads what it likes)"
        if kind in ("sql", "probe_latency"):
            if (kind == "sql" or query is not None) and (not isinstance(query, str) or not query.strip()):
                problems[f"{where}.query"] = f"must be a SQL query returning one number, got {query!r}"
        elif query is not None:
            problems[f"{where}.query"] = f"not used by kind {kind} (only sql and probe_latency take a query)"
        if kind == "callable":
            if not isinstance(path, str) or not DOTTED_PATH.match(path):
                problems[f"{where}.callable"] = (f"must be a dotted path such as 'mypackage.health.lag' or "
                                                 f"'mypackage.health:lag', got {path!r}")
        elif path is not None:
            problems[f"{where}.callable"] = f"not used by kind {kind}"
        samples = data.get("samples")
        if samples is not None and (kind != "probe_latency" or isinstance(samples, bool) or
                                    not isinstance(samples, int) or not 1 <= samples <= MAX_SAMPLES):
            problems[f"{where}.samples"] = (f"must be an integer from 1 to {MAX_SAMPLES}, for probe_latency only, "
                                            f"got {samples!r}")
        commit = data.get("commit")
        if commit is not None and (kind != "probe_latency" or not isinstance(commit, bool)):
            problems[f"{where}.commit"] = f"must be true or false, for probe_latency only, got {commit!r}"


@dataclass(frozen=True, slots=True)
class GovernorConfig:
    """The signals of one backfill and how often they are read (``health_interval`` seconds)."""

    signals: tuple[Signal, ...]
    health_interval: float = DEFAULT_HEALTH_INTERVAL
    #: Seconds a batch should take: the batch size follows it (None: the configured batch_size, fixed).
    target_batch_seconds: float | None = None
    min_batch_size: int | None = None
    max_batch_size: int | None = None
    #: The rate times a factor in (0, 1]: halved on each hold, grown back while healthy (core/adapt.py).
    adaptive_rate: bool = False

    @property
    def adapts(self) -> bool:
        """Whether the plan adapts the rate or the batch size (cycle/pace.py)."""
        return self.adaptive_rate or self.target_batch_seconds is not None

    @property
    def sizes_batches(self) -> bool:
        """Whether the batch size follows the batches' measured times: only then do they record them."""
        return self.target_batch_seconds is not None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"health_interval": self.health_interval,
                                "signals": [s.to_dict() for s in self.signals]}
        for key in ADAPT_FIELDS:
            if getattr(self, key) not in (None, False):
                data[key] = getattr(self, key)
        return data

    @staticmethod
    def _check_adapt(data: Mapping[str, Any], where: str, problems: dict[str, str]) -> None:
        """The adaptation's fields: a target > 0, integer bounds 1..MAX_BATCH_SIZE in order, a boolean."""
        target = data.get("target_batch_seconds")
        if target is not None and (not _is_number(target) or not 0 < target <= MAX_TARGET_BATCH_SECONDS):
            problems[f"{where}.target_batch_seconds"] = (f"must be a number of seconds > 0 and at most "
                                                         f"{MAX_TARGET_BATCH_SECONDS:g}, or absent, got {target!r}")
        bounds = {}
        for key in ("min_batch_size", "max_batch_size"):
            value = data.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BATCH_SIZE:
                problems[f"{where}.{key}"] = f"must be an integer from 1 to {MAX_BATCH_SIZE:,}, got {value!r}"
            else:
                bounds[key] = value
        if len(bounds) == 2 and bounds["min_batch_size"] > bounds["max_batch_size"]:
            problems[f"{where}.max_batch_size"] = (f"must be at least min_batch_size ({bounds['min_batch_size']}), "
                                                   f"got {bounds['max_batch_size']}")
        adaptive = data.get("adaptive_rate", False)
        if not isinstance(adaptive, bool):
            problems[f"{where}.adaptive_rate"] = f"must be true or false, got {adaptive!r}"

    @classmethod
    def from_dict(cls, data: object, where: str = "governor") -> GovernorConfig:
        """Parse and check; one ConfigError naming every bad field by its path."""
        problems: dict[str, str] = {}
        if not isinstance(data, Mapping):
            raise ConfigError({where: f"must be an object {{\"health_interval\": ..., \"signals\": [...]}}, "
                                      f"got {data!r}"[:200]})
        for key in data:
            if key not in GOVERNOR_FIELDS:
                problems[f"{where}.{key}"] = f"unknown field (allowed: {', '.join(GOVERNOR_FIELDS)})"
        interval = data.get("health_interval", DEFAULT_HEALTH_INTERVAL)
        if not _is_number(interval) or not 0 < interval <= MAX_HEALTH_INTERVAL:
            problems[f"{where}.health_interval"] = (f"must be a number of seconds > 0 and at most "
                                                    f"{MAX_HEALTH_INTERVAL:g}, got {interval!r}")
        raw = data.get("signals")
        if not isinstance(raw, list):
            problems[f"{where}.signals"] = f"must be a list of signals (required), got {raw!r}"[:200]
            raw = []
        signals = [Signal.parse(item, f"{where}.signals[{i}]", problems) for i, item in enumerate(raw)]
        cls._check_adapt(data, where, problems)
        if problems:
            raise ConfigError(problems)
        target = data.get("target_batch_seconds")
        return cls(tuple(s for s in signals if s is not None), float(interval),
                   None if target is None else float(target), data.get("min_batch_size"),
                   data.get("max_batch_size"), bool(data.get("adaptive_rate", False)))
