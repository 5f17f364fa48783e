"""The governor's decision: from the signals' readings, may batches start (ok), wait (hold), or stop?

Pure: a reading is a number or a failed check, and a failed check counts as unhealthy (a hold), never as
healthy: a replica that cannot be asked how far behind it is may be far behind. The worst signal decides
(stop > hold > ok; among equals, the one furthest above its threshold), and it is the one status shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from airflow_spreader.core.governor_config import Signal, SignalKind

Decision = Literal["ok", "hold", "stop"]
SEVERITY: dict[Decision, int] = {"ok": 0, "hold": 1, "stop": 2}
UNITS: dict[SignalKind, str] = {"replica_lag": "s", "active_sessions": "", "probe_latency": "ms", "sql": "",
                                "callable": ""}


def number_text(value: float) -> str:
    """``2.04``, ``4.2``, ``30``, ``1,250``: two decimals below 10, one below 1000, no trailing zeros."""
    digits = 2 if abs(value) < 10 else 1 if abs(value) < 1000 else 0
    text = f"{value:,.{digits}f}"
    return text.rstrip("0").rstrip(".") if digits else text


@dataclass(frozen=True, slots=True)
class Reading:
    """One signal read once: its value, or why the check failed (``value`` None)."""

    value: float | None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "error": self.error}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reading:
        value = data.get("value")
        return cls(None if value is None else float(value), data.get("error"))


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the readings decide, and the signal that decided it (None: every signal is healthy)."""

    decision: Decision
    signal: str | None = None
    kind: SignalKind | None = None
    value: float | None = None
    threshold: float | None = None
    error: str | None = None

    @property
    def reason(self) -> str:
        """``replica lag 4.2 s > 2 s``, ``replica lag: check failed (...)``, or ``all signals healthy``."""
        if self.signal is None:
            return "all signals healthy" if self.decision == "ok" else (self.error or self.decision)
        if self.value is None:
            return f"{self.signal}: check failed ({self.error or 'no value'})"
        unit = f" {UNITS[self.kind]}" if self.kind and UNITS[self.kind] else ""
        if self.threshold is None:
            return f"{self.signal} {number_text(self.value)}{unit}"
        relation = ">" if self.decision != "ok" else "<="
        return f"{self.signal} {number_text(self.value)}{unit} {relation} {number_text(self.threshold)}{unit}"

    def to_dict(self) -> dict[str, Any]:
        return {"decision": self.decision, "signal": self.signal, "kind": self.kind, "value": self.value,
                "threshold": self.threshold, "error": self.error, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        return cls(data["decision"], data.get("signal"), data.get("kind"), data.get("value"), data.get("threshold"),
                   data.get("error"))


def judge(signal: Signal, reading: Reading) -> Verdict:
    """One signal's verdict: a failed check holds; above ``stop_above`` stops; above ``hold_above`` holds."""
    if reading.value is None or math.isnan(reading.value):
        return Verdict("hold", signal.label, signal.kind, None, signal.hold_above, reading.error or "no value")
    if signal.stop_above is not None and reading.value > signal.stop_above:
        return Verdict("stop", signal.label, signal.kind, reading.value, signal.stop_above)
    if reading.value > signal.hold_above:
        return Verdict("hold", signal.label, signal.kind, reading.value, signal.hold_above)
    return Verdict("ok", signal.label, signal.kind, reading.value, signal.hold_above)


def _excess(verdict: Verdict) -> float:
    """How far above its threshold (a ratio; a failed check is the furthest of its decision)."""
    if verdict.value is None:
        return math.inf
    threshold = verdict.threshold or 0.0
    return verdict.value / threshold if threshold > 0 else (math.inf if verdict.value > 0 else 0.0)


def decide(signals: Sequence[Signal], readings: Sequence[Reading]) -> Verdict:
    """The worst of the signals' verdicts; ``ok`` with no signal named when every one is healthy."""
    if len(signals) != len(readings):
        raise ValueError(f"{len(signals)} signals but {len(readings)} readings")
    verdicts = [judge(s, r) for s, r in zip(signals, readings, strict=True)]
    unhealthy = [v for v in verdicts if v.decision != "ok"]
    if not unhealthy:
        return Verdict("ok")
    return max(unhealthy, key=lambda v: (SEVERITY[v.decision], _excess(v)))
