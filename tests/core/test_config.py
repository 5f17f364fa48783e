"""SpreadConfig: strict validation that names every bad field, defaults, and round trips."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_spreader.core.config import DEFAULTS, ConfigError, SpreadConfig, is_zone_name
from airflow_spreader.core.peak import PeakSchedule

PREFIX = "invalid spreader configuration: "
REQUIRED = {"batch_size": 10, "duration": 30, "per_second_on_peak": 2, "per_second_off_peak": 4.5}
ALLOWED = (
    "batch_size, duration, per_second_on_peak, per_second_off_peak, on_peak_timezone, on_peak_wday_begin, "
    "on_peak_wday_end, on_peak_hour_begin, on_peak_hour_end, lease_seconds, max_tasks_per_cycle, lead_seconds, "
    "batching, follow_new_rows, max_passes, governor"
)
ZONE_RULE = "must be an IANA time zone name such as 'UTC' or 'Europe/Paris'"
INT_GE_1 = "must be an integer >= 1"
NUMBER = "must be a finite number > 0"
WDAY = "must be an integer from 0 to 6 (0 = Sunday)"
HOUR = "must be an integer from 0 to 23"
TASKS = "must be an integer from 1 to 1024"
LEAD = "must be an integer from 0 to 3600"
BOOL = "must be true or false"
PASSES = "must be an integer from 1 to 1000"


def error_of(data: object) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        SpreadConfig.from_dict(data)
    return caught.value


def test_optional_fields_have_documented_defaults() -> None:
    config = SpreadConfig(batch_size=10, duration=30, per_second_on_peak=2, per_second_off_peak=4.5)
    assert config.to_dict() == {
        **REQUIRED,
        "on_peak_timezone": "UTC",
        "on_peak_wday_begin": 1,
        "on_peak_wday_end": 5,
        "on_peak_hour_begin": 9,
        "on_peak_hour_end": 17,
        "lease_seconds": 3600,
        "max_tasks_per_cycle": 64,
        "lead_seconds": 6,
        "follow_new_rows": False,
        "max_passes": 10,
        "batching": "ids",
    }
    assert SpreadConfig.from_dict(REQUIRED) == config


def test_defaults_for_a_new_backfill() -> None:
    assert SpreadConfig.default().to_dict() == DEFAULTS
    assert SpreadConfig.default().to_json(indent=None) == (
        '{"batch_size": 100, "duration": 120, "per_second_on_peak": 0.5, "per_second_off_peak": 1.0, '
        '"on_peak_timezone": "UTC", "on_peak_wday_begin": 1, "on_peak_wday_end": 5, "on_peak_hour_begin": 9, '
        '"on_peak_hour_end": 17, "lease_seconds": 3600, "max_tasks_per_cycle": 64, "lead_seconds": 6, '
        '"batching": "ids", "follow_new_rows": false, "max_passes": 10}'
    )
    assert json.dumps(DEFAULTS) == SpreadConfig.default().to_json(indent=None)


def test_example_message_from_the_docs() -> None:
    error = error_of({**REQUIRED, "batch_size": 0, "on_peak_timezone": "Mars/Olympus"})
    assert str(error) == (
        "invalid spreader configuration: batch_size=0: must be an integer >= 1; "
        "on_peak_timezone='Mars/Olympus': must be an IANA time zone name such as 'UTC' or 'Europe/Paris'"
    )
    assert error.problems == {"batch_size": INT_GE_1, "on_peak_timezone": ZONE_RULE}
    assert isinstance(error, ValueError)


BAD_VALUES = [
    ("batch_size", 0, INT_GE_1),
    ("batch_size", -5, INT_GE_1),
    ("batch_size", True, INT_GE_1),  # a bool is not an int here
    ("batch_size", "10", INT_GE_1),  # no coercion from text
    ("batch_size", 10.0, INT_GE_1),  # nor from a whole float
    ("batch_size", None, INT_GE_1),
    ("duration", 0, NUMBER),
    ("duration", -1.5, NUMBER),
    ("duration", math.nan, NUMBER),
    ("duration", math.inf, NUMBER),
    ("duration", False, NUMBER),
    ("duration", "60", NUMBER),
    ("per_second_on_peak", 0.0, NUMBER),
    ("per_second_on_peak", -math.inf, NUMBER),
    ("per_second_off_peak", math.nan, NUMBER),
    ("per_second_off_peak", True, NUMBER),
    ("per_second_off_peak", [1], NUMBER),
    ("on_peak_timezone", "Mars/Olympus", ZONE_RULE),
    ("on_peak_timezone", "utc", ZONE_RULE),
    ("on_peak_timezone", "localtime", ZONE_RULE),
    ("on_peak_timezone", "Europe", ZONE_RULE),
    ("on_peak_timezone", "", ZONE_RULE),
    ("on_peak_timezone", 0, ZONE_RULE),
    ("on_peak_wday_begin", 7, WDAY),
    ("on_peak_wday_begin", -1, WDAY),
    ("on_peak_wday_end", 1.0, WDAY),
    ("on_peak_wday_end", True, WDAY),
    ("on_peak_hour_begin", 24, HOUR),
    ("on_peak_hour_begin", "9", HOUR),
    ("on_peak_hour_end", -1, HOUR),
    ("on_peak_hour_end", 17.5, HOUR),
    ("lease_seconds", 0, INT_GE_1),
    ("lease_seconds", 3600.0, INT_GE_1),
    ("max_tasks_per_cycle", 0, TASKS),
    ("max_tasks_per_cycle", 1025, TASKS),
    ("max_tasks_per_cycle", False, TASKS),
    ("lead_seconds", -1, LEAD),
    ("lead_seconds", 3601, LEAD),
    ("lead_seconds", 2.5, LEAD),
    ("follow_new_rows", 1, BOOL),  # no coercion: 1 is not true
    ("follow_new_rows", "true", BOOL),
    ("follow_new_rows", None, BOOL),
    ("max_passes", 0, PASSES),
    ("max_passes", 1001, PASSES),
    ("max_passes", True, PASSES),
    ("max_passes", 2.0, PASSES),
]


@pytest.mark.parametrize(("name", "value", "problem"), BAD_VALUES)
def test_each_bad_field_is_named_with_its_value(name: str, value: object, problem: str) -> None:
    error = error_of({**REQUIRED, name: value})
    assert str(error) == f"{PREFIX}{name}={value!r}: {problem}"
    assert error.problems == {name: problem}
    # Direct construction validates the same way (__post_init__).
    with pytest.raises(ConfigError) as caught:
        SpreadConfig(**{**REQUIRED, name: value})  # type: ignore[arg-type]
    assert str(caught.value) == str(error)


def test_every_bad_field_is_named_at_once_in_field_order() -> None:
    error = error_of(
        {
            "max_tasks_per_cycle": 0,
            "batch_size": True,
            "duration": math.nan,
            "per_second_on_peak": 1,
            "per_second_off_peak": "fast",
            "on_peak_hour_end": 24,
        }
    )
    assert str(error) == (
        f"{PREFIX}batch_size=True: {INT_GE_1}; duration=nan: {NUMBER}; "
        f"per_second_off_peak='fast': {NUMBER}; on_peak_hour_end=24: {HOUR}; max_tasks_per_cycle=0: {TASKS}"
    )
    assert list(error.problems) == [
        "batch_size", "duration", "per_second_off_peak", "on_peak_hour_end", "max_tasks_per_cycle",
    ]


def test_missing_required_fields() -> None:
    error = error_of({"per_second_on_peak": 1, "per_second_off_peak": 2})
    assert str(error) == (
        f"{PREFIX}batch_size: missing (required: an integer >= 1); "
        "duration: missing (required: a finite number > 0)"
    )
    assert set(error_of({}).problems) == {"batch_size", "duration", "per_second_on_peak", "per_second_off_peak"}


def test_unknown_field_lists_the_allowed_ones() -> None:
    error = error_of({**REQUIRED, "batch_sise": 10})
    assert str(error) == f"{PREFIX}batch_sise: unknown field (allowed: {ALLOWED})"
    assert error.problems == {"batch_sise": f"unknown field (allowed: {ALLOWED})"}


def test_missing_unknown_and_bad_together() -> None:
    data = {"batch_size": 0, "duration": 1, "per_second_on_peak": 1, "speed": 3}
    error = error_of(data)
    assert list(error.problems) == ["batch_size", "per_second_off_peak", "speed"]
    assert str(error).startswith(
        f"{PREFIX}batch_size=0: {INT_GE_1}; per_second_off_peak: missing (required: a finite number > 0); "
        "speed: unknown field"
    )


@pytest.mark.parametrize(("data", "kind"), [([1, 2], "list"), (None, "NoneType"), ("{}", "str"), (3, "int")])
def test_from_dict_of_a_non_mapping(data: object, kind: str) -> None:
    error = error_of(data)
    assert str(error) == f"{PREFIX}must be a JSON object of field: value pairs, got {kind}"
    assert list(error.problems) == [""]


def test_huge_integers_are_finite_numbers() -> None:
    # Was: accepted as a duration. Issue 13 item 9 bounds durations at a day: refused clearly, no OverflowError.
    with pytest.raises(ConfigError, match=r"duration: must be at most 86,400"):
        SpreadConfig.from_dict({**REQUIRED, "duration": 10**400})


def test_numbers_keep_their_type() -> None:
    config = SpreadConfig.from_dict({**REQUIRED, "duration": 30, "per_second_on_peak": 0.25})
    assert type(config.duration) is int
    assert type(config.per_second_on_peak) is float
    assert type(config.per_second_off_peak) is float
    assert type(SpreadConfig.from_json(config.to_json()).duration) is int


def test_json_round_trip() -> None:
    config = SpreadConfig.from_dict({**REQUIRED, "on_peak_timezone": "Asia/Kolkata", "on_peak_hour_begin": 22})
    text = config.to_json()
    assert json.loads(text) == config.to_dict()
    assert SpreadConfig.from_json(text) == config
    assert SpreadConfig.from_json(text.encode()) == config
    assert SpreadConfig.from_json(config.to_json(indent=None)) == config


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "not valid JSON: Expecting value: line 1 column 1 (char 0)"),
        ('{"batch_size": 10,', "not valid JSON: Expecting property name enclosed in double quotes: "
                               "line 1 column 19 (char 18)"),
        ("[1, 2]", "must be a JSON object of field: value pairs, got list"),
        (None, "not valid JSON: the JSON object must be str, bytes or bytearray, not NoneType"),
    ],
)
def test_bad_json(text: Any, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SpreadConfig.from_json(text)
    assert str(caught.value) == PREFIX + problem


def test_json_nan_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"duration=nan: must be a finite number > 0$"):
        SpreadConfig.from_json(json.dumps({**REQUIRED, "duration": math.nan}))


def test_with_changes_validates_and_copies() -> None:
    config = SpreadConfig.default()
    faster = config.with_changes(per_second_off_peak=3, on_peak_timezone="Europe/Paris")
    assert faster.per_second_off_peak == 3
    assert faster.on_peak_timezone == "Europe/Paris"
    assert config == SpreadConfig.default()
    with pytest.raises(ConfigError, match=r"^invalid spreader configuration: batch_size=0: must be an integer >= 1$"):
        config.with_changes(batch_size=0)
    with pytest.raises(ConfigError, match=r"^invalid spreader configuration: size: unknown field \(allowed: "):
        config.with_changes(size=3)


def test_frozen() -> None:
    config = SpreadConfig.default()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.batch_size = 5  # type: ignore[misc]


def test_peak_schedule_and_rate() -> None:
    config = SpreadConfig.from_dict({**REQUIRED, "on_peak_timezone": "America/New_York"})
    assert config.peak_schedule == PeakSchedule("America/New_York", 1, 5, 9, 17)
    monday = datetime(2026, 7, 6, tzinfo=timezone.utc)
    assert config.per_second(monday.replace(hour=13)) == 2  # 09:00 EDT
    assert config.per_second(monday.replace(hour=12, minute=59)) == 4.5  # 08:59 EDT
    assert config.per_second(monday.replace(day=4, hour=15)) == 4.5  # a Saturday
    with pytest.raises(ValueError, match="timezone-aware"):
        config.per_second(datetime(2026, 7, 6, 13))


def test_config_error_survives_pickling() -> None:
    error = error_of({**REQUIRED, "batch_size": 0})
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is ConfigError
    assert str(copy) == str(error)
    assert copy.problems == error.problems


def test_reference_documents_every_field_from_the_rules() -> None:
    text = SpreadConfig.reference()
    assert "| `batch_size` | an integer >= 1 | required | ids per batch" in text
    assert "| `on_peak_timezone` | an IANA time zone name such as 'UTC' or 'Europe/Paris' | `\"UTC\"` |" in text
    assert "| `max_tasks_per_cycle` | an integer from 1 to 1024 | `64` |" in text
    assert len(text.splitlines()) == 2 + len(DEFAULTS)


@pytest.mark.parametrize("name", ["UTC", "Europe/Paris", "Asia/Kolkata", "America/Argentina/Buenos_Aires"])
def test_zone_names_accepted(name: str) -> None:
    assert is_zone_name(name)


@pytest.mark.parametrize(
    "name", ["localtime", "posixrules", "posix/Europe/Paris", "right/UTC", "Europe", "../etc/passwd",
             "/etc/localtime", "Europe/Paris/", "zone.tab", "Mars/Olympus", ""],
)
def test_zone_names_refused(name: str) -> None:
    assert not is_zone_name(name)


# --- properties ---------------------------------------------------------------------------

ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
# Within the bounds of issue 13 item 9 (a rate x duration of at most 20,000 slots: 20 s x 1,000/s).
positive = st.one_of(st.integers(1, 20), st.floats(min_value=1e-4, max_value=20, allow_nan=False))
VALID: dict[str, st.SearchStrategy[Any]] = {
    "batch_size": st.integers(1, 10**9),
    "duration": positive,
    "per_second_on_peak": positive,
    "per_second_off_peak": positive,
    "on_peak_timezone": st.sampled_from(ZONES),
    "on_peak_wday_begin": st.integers(0, 6),
    "on_peak_wday_end": st.integers(0, 6),
    "on_peak_hour_begin": st.integers(0, 23),
    "on_peak_hour_end": st.integers(0, 23),
    "lease_seconds": st.integers(1, 30 * 86_400),
    "max_tasks_per_cycle": st.integers(1, 1024),
    "lead_seconds": st.integers(0, 3600),
    "follow_new_rows": st.booleans(),
    "max_passes": st.integers(1, 1000),
    "batching": st.sampled_from(["ids", "rows"]),
}
valid_dicts = st.fixed_dictionaries(
    {name: VALID[name] for name in REQUIRED},
    optional={name: strategy for name, strategy in VALID.items() if name not in REQUIRED},
)
not_a_number = st.one_of(st.booleans(), st.none(), st.text(max_size=3), st.lists(st.integers(), max_size=1))
bad_int = st.one_of(not_a_number, st.floats(allow_nan=True))
bad_number = st.one_of(
    not_a_number, st.sampled_from([math.nan, math.inf, -math.inf]), st.integers(max_value=0), st.floats(max_value=0)
)
INVALID: dict[str, st.SearchStrategy[Any]] = {
    "batch_size": st.one_of(bad_int, st.integers(max_value=0)),
    "duration": bad_number,
    "per_second_on_peak": bad_number,
    "per_second_off_peak": bad_number,
    "on_peak_timezone": st.one_of(st.integers(), st.none(), st.sampled_from(["Mars/Olympus", "utc", "Europe", ""])),
    "on_peak_wday_begin": st.one_of(bad_int, st.integers(max_value=-1), st.integers(min_value=7)),
    "on_peak_wday_end": st.one_of(bad_int, st.integers(max_value=-1), st.integers(min_value=7)),
    "on_peak_hour_begin": st.one_of(bad_int, st.integers(max_value=-1), st.integers(min_value=24)),
    "on_peak_hour_end": st.one_of(bad_int, st.integers(max_value=-1), st.integers(min_value=24)),
    "lease_seconds": st.one_of(bad_int, st.integers(max_value=0)),
    "max_tasks_per_cycle": st.one_of(bad_int, st.integers(max_value=0), st.integers(min_value=1025)),
    "lead_seconds": st.one_of(bad_int, st.integers(max_value=-1), st.integers(min_value=3601)),
    "follow_new_rows": st.one_of(st.integers(), st.none(), st.text(max_size=5), st.floats()),
    "max_passes": st.one_of(bad_int, st.integers(max_value=0), st.integers(min_value=1001)),
    "batching": st.one_of(not_a_number.filter(lambda v: v not in ("ids", "rows")), st.sampled_from(["Rows", "id"])),
}


def test_strategies_cover_every_field() -> None:
    assert set(VALID) == set(INVALID) == set(DEFAULTS)


@settings(max_examples=300, deadline=None)
@given(valid_dicts)
def test_any_valid_dict_round_trips(data: dict[str, Any]) -> None:
    config = SpreadConfig.from_dict(data)
    full = config.to_dict()
    assert {name: full[name] for name in data} == data
    assert {name: type(full[name]) for name in data} == {name: type(value) for name, value in data.items()}
    assert SpreadConfig.from_dict(full) == config
    assert SpreadConfig.from_json(config.to_json()) == config


@settings(max_examples=300, deadline=None)
@given(valid_dicts, st.data())
def test_any_single_bad_field_is_named(data: dict[str, Any], draw: st.DataObject) -> None:
    name = draw.draw(st.sampled_from(sorted(VALID)))
    value = draw.draw(INVALID[name])
    error = error_of({**data, name: value})
    assert list(error.problems) == [name]
    assert str(error) == f"{PREFIX}{name}={value!r}: {error.problems[name]}"
    assert error.problems[name].startswith("must be ")


def test_the_readme_documents_every_field_as_the_code_defines_it() -> None:
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    start = readme.index("<!-- config-reference:start -->\n") + len("<!-- config-reference:start -->\n")
    end = readme.index("<!-- config-reference:end -->")
    assert readme[start:end].strip() == SpreadConfig.reference().strip()


@pytest.mark.parametrize("value", ["IDS", "row", "", 1, None, True])
def test_batching_names_the_field_and_the_allowed_values(value: object) -> None:
    error = error_of({**REQUIRED, "batching": value})
    assert error.problems == {"batching": 'must be one of "ids", "rows"'}
    assert f"batching={value!r}" in str(error)


def test_batching_rows_is_accepted_and_round_trips() -> None:
    config = SpreadConfig.from_dict({**REQUIRED, "batching": "rows"})
    assert config.batching == "rows"
    assert SpreadConfig.from_json(config.to_json()) == config
    assert config.with_changes(batching="ids").batching == "ids"
    with pytest.raises(ConfigError, match=r'batching=.*must be one of "ids", "rows"'):
        config.with_changes(batching="uuid")
