"""The spreader's configuration: what one backfill may do, checked before anything runs.

A configuration usually lives in an Airflow Variable as JSON and is edited by hand while a
backfill runs, so every check reports *all* the bad fields at once, each with its value and
what is allowed. The rules for each field live in one place, the ``rule`` metadata of the
dataclass fields below; validation, error messages and :meth:`SpreadConfig.reference` all
read them. Pure standard library: no Airflow here.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airflow_spreader.errors import SpreaderError

if TYPE_CHECKING:
    from airflow_spreader.core.peak import PeakSchedule

Kind = Literal["int", "number", "zone"]
SUNDAY = "0 = Sunday"
ZONE_EXAMPLE = "an IANA time zone name such as 'UTC' or 'Europe/Paris'"


class ConfigError(SpreaderError, ValueError):
    """One or more configuration problems; ``problems`` maps each field to what is wrong with it.

    Problems with the document as a whole (not JSON, not an object) are under the key ``""``.
    """

    def __init__(self, problems: Mapping[str, str], labels: Mapping[str, str] | None = None) -> None:
        self.problems: dict[str, str] = dict(problems)
        self._labels = dict(labels or {})
        parts = [
            f"{self._labels.get(name, name)}: {problem}" if name else problem
            for name, problem in self.problems.items()
        ]
        super().__init__("invalid spreader configuration: " + "; ".join(parts))

    def __reduce__(self) -> tuple[Any, ...]:
        # The default reduce would call ConfigError(message); keep the problems when pickled.
        return (type(self), (self.problems, self._labels))


@dataclass(frozen=True)
class Rule:
    """What one field accepts; the single source for validation, messages and docs."""

    kind: Kind
    doc: str
    low: int | None = None
    high: int | None = None
    note: str = ""

    @property
    def allowed(self) -> str:
        """The accepted values in words, e.g. ``an integer from 0 to 6 (0 = Sunday)``."""
        if self.kind == "zone":
            return ZONE_EXAMPLE
        if self.kind == "number":
            text = "a finite number > 0"
        elif self.high is None:
            text = f"an integer >= {self.low}"
        else:
            text = f"an integer from {self.low} to {self.high}"
        return f"{text} ({self.note})" if self.note else text

    def accepts(self, value: object) -> bool:
        """No coercion: a bool is not a number, ``"10"`` and ``10.0`` are not integers."""
        if isinstance(value, bool):
            return False
        if self.kind == "zone":
            return isinstance(value, str) and is_zone_name(value)
        if self.kind == "number":
            # Ints are checked as ints: math.isfinite(10**400) would overflow.
            return (isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))) and value > 0
        if not isinstance(value, int):
            return False
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


@functools.lru_cache(maxsize=256)
def is_zone_name(name: str) -> bool:
    """Whether ``name`` loads as a zone the same way on every machine (so not ``localtime``)."""
    if name in ("localtime", "posixrules") or name.startswith(("posix/", "right/")):
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def check(rules: Mapping[str, Rule], values: Mapping[str, object]) -> None:
    """Raise one :class:`ConfigError` naming every value its rule rejects."""
    bad = {name: value for name, value in values.items() if not rules[name].accepts(value)}
    if bad:
        raise ConfigError(
            {name: f"must be {rules[name].allowed}" for name in bad},
            {name: f"{name}={value!r}" for name, value in bad.items()},
        )


def _rule(kind: Kind, doc: str, low: int | None = None, high: int | None = None, note: str = "") -> Any:
    return {"rule": Rule(kind, doc, low, high, note)}


@dataclass(frozen=True, kw_only=True, slots=True)
class SpreadConfig:
    """How fast one backfill runs, and when its peak (slower) hours are."""

    batch_size: int = field(metadata=_rule("int", "ids per batch (one range of the id space)", 1))
    duration: float = field(metadata=_rule("number", "seconds of work planned per cycle"))
    per_second_on_peak: float = field(metadata=_rule("number", "batches started per second in peak hours"))
    per_second_off_peak: float = field(metadata=_rule("number", "batches started per second off peak"))
    on_peak_timezone: str = field(default="UTC", metadata=_rule("zone", "time zone of the peak hours"))
    on_peak_wday_begin: int = field(default=1, metadata=_rule("int", "first peak weekday", 0, 6, SUNDAY))
    on_peak_wday_end: int = field(
        default=5, metadata=_rule("int", "last peak weekday (inclusive; may wrap)", 0, 6, SUNDAY)
    )
    on_peak_hour_begin: int = field(default=9, metadata=_rule("int", "first peak hour", 0, 23))
    on_peak_hour_end: int = field(
        default=17, metadata=_rule("int", "last peak hour (inclusive, up to hh:59:59; may wrap)", 0, 23)
    )
    lease_seconds: int = field(
        default=3600,
        metadata=_rule(
            "int",
            "seconds a planned range may stay unfinished before it is planned again; "
            "must exceed the longest batch",
            1,
        ),
    )
    max_tasks_per_cycle: int = field(
        default=64,
        metadata=_rule("int", "most Airflow task instances one cycle's batches are grouped into", 1, 1024),
    )
    lead_seconds: int = field(
        default=6,
        metadata=_rule(
            "int",
            "seconds before a cycle's planned end at which the next cycle's DAG run is started, so that its "
            "batches are up when the cycle ends (cycles then follow each other without a gap)",
            0,
            3600,
        ),
    )

    def __post_init__(self) -> None:
        check(RULES, self.to_dict())

    @classmethod
    def from_dict(cls, data: object) -> SpreadConfig:
        """Build from a mapping (e.g. a parsed Variable), reporting missing, unknown and bad fields."""
        if not isinstance(data, Mapping):
            raise ConfigError({"": f"must be a JSON object of field: value pairs, got {type(data).__name__}"})
        problems: dict[str, str] = {}
        labels: dict[str, str] = {}
        for name, rule in RULES.items():
            if name not in data:
                if name in REQUIRED:
                    problems[name] = f"missing (required: {rule.allowed})"
            elif not rule.accepts(data[name]):
                problems[name] = f"must be {rule.allowed}"
                labels[name] = f"{name}={data[name]!r}"
        for key in data:
            if key not in RULES:
                problems[key if isinstance(key, str) else repr(key)] = (
                    f"unknown field (allowed: {', '.join(RULES)})"
                )
        if problems:
            raise ConfigError(problems, labels)
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-serializable; ``from_dict`` reads it back to an equal config."""
        return {name: getattr(self, name) for name in RULES}

    @classmethod
    def from_json(cls, text: str | bytes) -> SpreadConfig:
        try:
            data = json.loads(text)
        except (ValueError, TypeError) as error:  # also UnicodeDecodeError, and None or other non-text
            raise ConfigError({"": f"not valid JSON: {error}"}) from error
        return cls.from_dict(data)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def default(cls) -> SpreadConfig:
        """The conservative configuration a brand-new backfill's Variable starts with."""
        return cls.from_dict(DEFAULTS)

    def with_changes(self, **changes: Any) -> SpreadConfig:
        """A validated copy with some fields replaced; unknown names are a ConfigError too."""
        unknown = [name for name in changes if name not in RULES]
        if unknown:
            raise ConfigError({name: f"unknown field (allowed: {', '.join(RULES)})" for name in unknown})
        return dataclasses.replace(self, **changes)

    @property
    def peak_schedule(self) -> PeakSchedule:
        # Imported here because peak.py validates with this module's rules.
        from airflow_spreader.core.peak import PeakSchedule  # noqa: PLC0415

        return PeakSchedule(
            self.on_peak_timezone,
            self.on_peak_wday_begin,
            self.on_peak_wday_end,
            self.on_peak_hour_begin,
            self.on_peak_hour_end,
        )

    def per_second(self, at: datetime) -> float:
        """The batch rate in force at ``at`` (an aware datetime)."""
        return self.per_second_on_peak if self.peak_schedule.is_on_peak(at) else self.per_second_off_peak

    @classmethod
    def reference(cls) -> str:
        """A Markdown table of every field, generated from the rules, for docs and Variable help."""
        lines = ["| field | allowed | default | meaning |", "| --- | --- | --- | --- |"]
        for f in dataclasses.fields(cls):
            default = "required" if f.name in REQUIRED else f"`{json.dumps(f.default)}`"
            rule = RULES[f.name]
            lines.append(f"| `{f.name}` | {rule.allowed} | {default} | {rule.doc} |")
        return "\n".join(lines)


RULES: dict[str, Rule] = {f.name: f.metadata["rule"] for f in dataclasses.fields(SpreadConfig)}
REQUIRED: frozenset[str] = frozenset(
    f.name for f in dataclasses.fields(SpreadConfig) if f.default is dataclasses.MISSING
)

#: A new backfill's Variable: slow enough to be safe on a busy database, then tuned by hand.
DEFAULTS: dict[str, Any] = {
    "batch_size": 100,
    "duration": 120,
    "per_second_on_peak": 0.5,
    "per_second_off_peak": 1.0,
    **{f.name: f.default for f in dataclasses.fields(SpreadConfig) if f.name not in REQUIRED},
}
