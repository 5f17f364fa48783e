"""The rules a configuration value must follow, and the one error that names every value that breaks them.

Shared by the configuration (core/config.py) and the peak schedule (core/peak.py), which validates its
own fields with the same rules; neither imports the other for it. Pure standard library.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airflow_spreader.errors import SpreaderError

Kind = Literal["int", "number", "zone", "bool", "choice"]
SUNDAY = "0 = Sunday"
ZONE_EXAMPLE = "an IANA time zone name such as 'UTC' or 'Europe/Paris'"
#: The largest batch (ids, or rows): the configured batch_size and the governor's bounds alike.
MAX_BATCH_SIZE = 1_000_000_000


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
    #: A largest value that keeps a cycle finite in time and memory; said in its own message.
    cap: int | None = None
    floor: float | None = None
    #: The accepted strings of a ``choice`` field, in the order the messages list them.
    choices: tuple[str, ...] = ()

    @property
    def allowed(self) -> str:
        """The accepted values in words, e.g. ``an integer from 0 to 6 (0 = Sunday)``."""
        if self.kind == "zone":
            return ZONE_EXAMPLE
        if self.kind == "bool":
            return "true or false"
        if self.kind == "choice":
            return "one of " + ", ".join(f'"{choice}"' for choice in self.choices)
        if self.kind == "number":
            text = "a finite number > 0"
        elif self.high is None:
            text = f"an integer >= {self.low}"
        else:
            text = f"an integer from {self.low} to {self.high}"
        return f"{text} ({self.note})" if self.note else text

    def accepts(self, value: object) -> bool:
        """No coercion: a bool is not a number, ``"10"`` and ``10.0`` are not integers, ``1`` is not true."""
        if self.kind == "bool":
            return isinstance(value, bool)
        if isinstance(value, bool):
            return False
        if self.kind == "zone":
            return isinstance(value, str) and is_zone_name(value)
        if self.kind == "choice":
            return isinstance(value, str) and value in self.choices
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
