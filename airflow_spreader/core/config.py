"""The spreader's configuration: what one backfill may do, checked before anything runs.

A configuration usually lives in an Airflow Variable as JSON and is edited by hand while a
backfill runs, so every check reports *all* the bad fields at once, each with its value and
what is allowed. The rules for each field live in one place, the ``rule`` metadata of the
dataclass fields below; validation, error messages and :meth:`SpreadConfig.reference` all
read them. Pure standard library: no Airflow here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow_spreader.core.governor_config import GovernorConfig
from airflow_spreader.core.peak import PEAK_RULES, PeakSchedule
from airflow_spreader.core.rules import (
    MAX_BATCH_SIZE,
    SUNDAY,
    ZONE_EXAMPLE,
    ConfigError,
    Kind,
    Rule,
    check,
    is_zone_name,
)

__all__ = ["MAX_BATCH_SIZE", "RULES", "SUNDAY", "ZONE_EXAMPLE", "ConfigError", "Rule", "SpreadConfig", "check",
           "is_zone_name"]


def _rule(kind: Kind, doc: str, low: int | None = None, high: int | None = None, note: str = "",
          cap: int | None = None, floor: float | None = None, choices: tuple[str, ...] = ()) -> Any:
    return {"rule": Rule(kind, doc, low, high, note, cap, floor, choices)}


#: How batches are cut: ``ids`` by arithmetic on the key (no read at planning), ``rows`` by reading the
#: key's index so that each batch covers up to ``batch_size`` existing rows (sparse keys).
BATCHING_MODES = ("ids", "rows")


#: The most batch slots one cycle may hold (per_second x duration): the reference's busiest cycle
#: holds 1,350; 20,000 plan in well under a second and keep the cycle's XCom to a few MB.
MAX_SLOTS_PER_CYCLE = 20_000
MAX_DURATION = 86_400
MAX_PER_SECOND = 1_000
#: One slot at least every day: a slower rate would make a cycle (whole slots) longer than a day.
MIN_PER_SECOND = 1 / 86_400
MAX_LEASE_SECONDS = 30 * 86_400
#: The most passes over the key with ``follow_new_rows`` (the first walk included): a table that never stops
#: growing still ends its backfill, after a known number of look-ups of its MAX.
MAX_PASSES = 1_000


def limit_problems(rules: Mapping[str, Rule], values: Mapping[str, Any]) -> dict[str, str]:
    """Values of the right kind that would hang, exhaust memory or overflow: field -> why, and the bound."""
    problems = {}
    for name, value in values.items():
        rule = rules[name]
        if rule.cap is not None and value > rule.cap:
            problems[name] = (f"must be at most {rule.cap:,} (larger would hang or exhaust memory), "
                              f"got {repr(value)[:40]}")
        elif rule.floor is not None and value < rule.floor:
            problems[name] = (f"must be at least 1/86400 = {rule.floor:.9f} (one batch a day; a slower cycle "
                              f"would last more than a day), got {value!r}")
    if not problems and "duration" in values:
        from airflow_spreader.core.planner import slot_count  # noqa: PLC0415  (planner is pure too)

        for name in ("per_second_on_peak", "per_second_off_peak"):
            if name in values and slot_count(values[name], values["duration"]) > MAX_SLOTS_PER_CYCLE:
                most = MAX_SLOTS_PER_CYCLE / values[name]
                problems[name] = (
                    f"{name} x duration = {values[name]!r} x {values['duration']!r} is "
                    f"{slot_count(values[name], values['duration']):,} batch slots per cycle, more than the "
                    f"{MAX_SLOTS_PER_CYCLE:,} a cycle may hold: set duration to at most {most:g} s "
                    f"or a lower rate")
    return problems


@dataclass(frozen=True, kw_only=True, slots=True)
class SpreadConfig:
    """How fast one backfill runs, and when its peak (slower) hours are."""

    batch_size: int = field(metadata=_rule("int", "ids per batch (one range of the id space); rows per batch "
                                           "with `batching` \"rows\"", 1, cap=MAX_BATCH_SIZE))
    duration: float = field(metadata=_rule(
        "number", "seconds of work planned per cycle; the cycle lasts its whole slots, "
        "ceil(per_second x duration) / per_second, so the rate is never exceeded", cap=MAX_DURATION))
    per_second_on_peak: float = field(metadata=_rule("number", "batches started per second in peak hours",
                                                     cap=MAX_PER_SECOND, floor=MIN_PER_SECOND))
    per_second_off_peak: float = field(metadata=_rule("number", "batches started per second off peak",
                                                      cap=MAX_PER_SECOND, floor=MIN_PER_SECOND))
    on_peak_timezone: str = field(default="UTC", metadata={"rule": PEAK_RULES["timezone"]})
    on_peak_wday_begin: int = field(default=1, metadata={"rule": PEAK_RULES["wday_begin"]})
    on_peak_wday_end: int = field(default=5, metadata={"rule": PEAK_RULES["wday_end"]})
    on_peak_hour_begin: int = field(default=9, metadata={"rule": PEAK_RULES["hour_begin"]})
    on_peak_hour_end: int = field(default=17, metadata={"rule": PEAK_RULES["hour_end"]})
    lease_seconds: int = field(
        default=3600,
        metadata=_rule(
            "int",
            "seconds a planned range may stay unfinished before it is planned again; "
            "must exceed the longest batch",
            1,
            cap=MAX_LEASE_SECONDS,
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
    batching: str = field(default="ids", metadata=_rule(
        "choice", "how batches are cut: \"ids\", batch_size consecutive ids (no read at planning); \"rows\", "
        "up to batch_size existing rows each, boundaries read from the key's index (sparse keys)",
        choices=BATCHING_MODES))

    follow_new_rows: bool = field(
        default=False,
        metadata=_rule(
            "bool",
            "when the walk reaches the bottom, read the key's MAX again and walk the ids added above the top "
            "(top-down, at the same rate), pass after pass until one finds nothing new or max_passes is reached; "
            "rows inserted below the top are not visited",
        ),
    )
    max_passes: int = field(
        default=10,
        metadata=_rule("int", "most passes over the key with follow_new_rows, the first walk included; at the "
                       "bound the backfill ends and status shows the ids left above the top", 1, MAX_PASSES),
    )
    #: The health signals that hold or stop the backfill (core/governor_config.py; docs/governor.md).
    governor: GovernorConfig | None = None

    def __post_init__(self) -> None:
        values = {name: getattr(self, name) for name in RULES}
        check(RULES, values)
        problems = limit_problems(RULES, values)
        if problems:
            raise ConfigError(problems)

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
            if key not in FIELDS:
                problems[key if isinstance(key, str) else repr(key)] = (
                    f"unknown field (allowed: {', '.join(FIELDS)})"
                )
        governor = None
        try:
            governor = None if data.get("governor") is None else GovernorConfig.from_dict(data["governor"])
        except ConfigError as error:
            problems.update(error.problems)
        if not problems:
            problems = limit_problems(RULES, {name: value for name, value in data.items() if name in RULES})
        if problems:
            raise ConfigError(problems, labels)
        return cls(**{**data, "governor": governor})

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-serializable; ``from_dict`` reads it back to an equal config."""
        values = {name: getattr(self, name) for name in RULES}
        return values if self.governor is None else {**values, "governor": self.governor.to_dict()}

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
        unknown = [name for name in changes if name not in FIELDS]
        if unknown:
            raise ConfigError({name: f"unknown field (allowed: {', '.join(FIELDS)})" for name in unknown})
        return dataclasses.replace(self, **changes)

    @property
    def peak_schedule(self) -> PeakSchedule:
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
            if f.name not in RULES:  # the governor's nested object: docs/governor.md
                continue
            default = "required" if f.name in REQUIRED else f"`{json.dumps(f.default)}`"
            rule = RULES[f.name]
            bound = [f"at most {rule.cap:,}"] if rule.cap is not None else []
            if rule.floor is not None:
                bound.insert(0, "at least 1/86400")
            if f.name.startswith("per_second"):
                bound.append(f"and x duration at most {MAX_SLOTS_PER_CYCLE:,} slots per cycle")
            doc = f"{rule.doc} ({', '.join(bound)})" if bound else rule.doc
            lines.append(f"| `{f.name}` | {rule.allowed} | {default} | {doc} |")
        return "\n".join(lines)


RULES: dict[str, Rule] = {f.name: f.metadata["rule"] for f in dataclasses.fields(SpreadConfig) if "rule" in f.metadata}
#: Every top-level field: the flat ones with their rules, then the governor's object.
FIELDS: tuple[str, ...] = (*RULES, "governor")
REQUIRED: frozenset[str] = frozenset(
    f.name for f in dataclasses.fields(SpreadConfig) if f.default is dataclasses.MISSING
)

#: A new backfill's Variable: slow enough to be safe on a busy database, then tuned by hand.
DEFAULTS: dict[str, Any] = {
    "batch_size": 100,
    "duration": 120,
    "per_second_on_peak": 0.5,
    "per_second_off_peak": 1.0,
    **{f.name: f.default for f in dataclasses.fields(SpreadConfig) if f.name not in REQUIRED and f.name in RULES},
}
