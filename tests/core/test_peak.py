"""PeakSchedule: inclusive, wrapping, cron-numbered, local wall-clock peak windows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_spreader.core.config import ConfigError
from airflow_spreader.core.peak import PeakSchedule

UTC = timezone.utc
PARIS = ZoneInfo("Europe/Paris")
WEEKDAYS = PeakSchedule("UTC", 1, 5, 9, 17)  # Monday..Friday, 09:00-17:59:59
ZONES = [
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Asia/Kolkata",  # +05:30
    "Asia/Kathmandu",  # +05:45
    "Australia/Lord_Howe",  # DST shifts by 30 minutes
    "Pacific/Chatham",  # +12:45, DST starts at 02:45 local
    "America/Sao_Paulo",
]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(text: str, zone: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


def test_weekday_dates_used_below() -> None:
    assert utc("2026-05-03T12:00").strftime("%A") == "Sunday"
    assert utc("2026-05-04T12:00").strftime("%A") == "Monday"


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        ("2026-05-04T09:00:00", True),  # hour_begin:00:00 is on
        ("2026-05-04T08:59:59.999999", False),  # just before is off
        ("2026-05-04T17:59:59.999999", True),  # hour_end means up to hh:59:59.999
        ("2026-05-04T18:00:00", False),
        ("2026-05-04T12:00:00", True),  # Monday = 1
        ("2026-05-08T12:00:00", True),  # Friday = 5
        ("2026-05-09T12:00:00", False),  # Saturday = 6
        ("2026-05-03T12:00:00", False),  # Sunday = 0, not 7 and not Python's 6
        ("2026-05-04T00:00:00", False),
        ("2026-05-08T23:59:59", False),
    ],
)
def test_inclusive_edges_in_utc(instant: str, expected: bool) -> None:
    assert WEEKDAYS.is_on_peak(utc(instant)) is expected


@pytest.mark.parametrize(
    ("wday", "on_day"),
    [(0, "2026-05-03"), (1, "2026-05-04"), (3, "2026-05-06"), (5, "2026-05-08"), (6, "2026-05-09")],
)
def test_cron_weekday_numbering(wday: int, on_day: str) -> None:
    schedule = PeakSchedule("UTC", wday, wday, 0, 23)
    days = [f"2026-05-{day:02d}" for day in range(3, 10)]  # Sunday 3rd .. Saturday 9th
    assert [d for d in days if schedule.is_on_peak(utc(d + "T12:00"))] == [on_day]


def test_wrapping_hours_overnight() -> None:
    night = PeakSchedule("UTC", 0, 6, 22, 5)
    assert night.is_on_peak(utc("2026-05-04T22:00"))
    assert not night.is_on_peak(utc("2026-05-04T21:59:59"))
    assert night.is_on_peak(utc("2026-05-05T02:00"))
    assert night.is_on_peak(utc("2026-05-05T05:59:59"))
    assert not night.is_on_peak(utc("2026-05-05T06:00"))
    assert not night.is_on_peak(utc("2026-05-05T12:00"))


def test_wrapping_weekdays_friday_to_monday() -> None:
    long_weekend = PeakSchedule("UTC", 5, 1, 0, 23)
    noons = [utc(f"2026-05-{day:02d}T12:00") for day in range(3, 10)]  # Sunday 3rd .. Saturday 9th
    assert [noon.strftime("%a") for noon in noons if long_weekend.is_on_peak(noon)] == ["Sun", "Mon", "Fri", "Sat"]


def test_single_hour_and_single_day() -> None:
    schedule = PeakSchedule("UTC", 3, 3, 14, 14)  # Wednesdays 14:00-14:59
    assert schedule.is_on_peak(utc("2026-05-06T14:00"))
    assert schedule.is_on_peak(utc("2026-05-06T14:59:59"))
    assert not schedule.is_on_peak(utc("2026-05-06T13:59:59"))
    assert not schedule.is_on_peak(utc("2026-05-06T15:00"))
    assert not schedule.is_on_peak(utc("2026-05-07T14:30"))


def test_new_york_and_kolkata_read_their_own_wall_clock() -> None:
    new_york = PeakSchedule("America/New_York", 1, 5, 9, 17)
    assert new_york.is_on_peak(utc("2026-07-06T13:00"))  # 09:00 EDT
    assert not new_york.is_on_peak(utc("2026-07-06T12:59:59"))
    assert not new_york.is_on_peak(utc("2026-07-06T09:00"))  # on peak in UTC, 05:00 in New York
    kolkata = PeakSchedule("Asia/Kolkata", 1, 5, 9, 17)
    assert kolkata.is_on_peak(utc("2026-05-04T03:30"))  # 09:00 IST, +05:30
    assert not kolkata.is_on_peak(utc("2026-05-04T03:29:59"))
    assert kolkata.is_on_peak(utc("2026-05-04T12:29:59"))  # 17:59:59 IST
    assert not kolkata.is_on_peak(utc("2026-05-04T12:30"))
    # Sunday 20:00 UTC is already Monday 01:30 in Kolkata.
    assert PeakSchedule("Asia/Kolkata", 1, 1, 0, 23).is_on_peak(utc("2026-05-03T20:00"))
    assert not PeakSchedule("UTC", 1, 1, 0, 23).is_on_peak(utc("2026-05-03T20:00"))


def test_input_zone_does_not_matter_only_the_instant() -> None:
    instant = utc("2026-05-04T09:30")
    for zone in ZONES:
        assert WEEKDAYS.is_on_peak(instant.astimezone(ZoneInfo(zone)))
    assert WEEKDAYS.is_on_peak(instant.astimezone(timezone(timedelta(hours=-7))))


def test_spring_forward_in_paris() -> None:
    assert utc("2026-03-29T01:00").astimezone(PARIS).utcoffset() == timedelta(hours=2)
    office = PeakSchedule("Europe/Paris", 0, 6, 9, 17)
    # 07:30 UTC is 08:30 on the Saturday (+01:00) but 09:30 on the Sunday (+02:00).
    assert not office.is_on_peak(utc("2026-03-28T07:30"))
    assert office.is_on_peak(utc("2026-03-29T07:30"))
    # 02:xx does not exist that night: 01:59:59 CET is followed by 03:00 CEST.
    two = PeakSchedule("Europe/Paris", 0, 6, 2, 2)
    three = PeakSchedule("Europe/Paris", 0, 6, 3, 3)
    assert not two.is_on_peak(utc("2026-03-29T00:59:59"))
    assert not two.is_on_peak(utc("2026-03-29T01:00"))
    assert three.is_on_peak(utc("2026-03-29T01:00"))


def test_fall_back_in_paris_covers_both_two_oclock_hours() -> None:
    two = PeakSchedule("Europe/Paris", 0, 0, 2, 2)
    assert not two.is_on_peak(utc("2026-10-24T23:59:59"))  # 01:59:59 CEST
    assert two.is_on_peak(utc("2026-10-25T00:00"))  # 02:00 CEST
    assert two.is_on_peak(utc("2026-10-25T00:59:59"))  # 02:59:59 CEST
    assert two.is_on_peak(utc("2026-10-25T01:00"))  # 02:00 CET, again
    assert two.is_on_peak(utc("2026-10-25T01:59:59"))
    assert not two.is_on_peak(utc("2026-10-25T02:00"))  # 03:00 CET


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="expected a timezone-aware datetime, got naive 2026-05-04T09:00:00"):
        WEEKDAYS.is_on_peak(datetime(2026, 5, 4, 9))
    with pytest.raises(ValueError, match="timezone-aware"):
        WEEKDAYS.next_change(datetime(2026, 5, 4, 9))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("Mars/Olympus", 1, 5, 9, 17),
         "timezone='Mars/Olympus': must be an IANA time zone name such as 'UTC' or 'Europe/Paris'"),
        (("localtime", 1, 5, 9, 17), "timezone='localtime': must be an IANA"),
        (("UTC", 7, 5, 9, 17), "wday_begin=7: must be an integer from 0 to 6 (0 = Sunday)"),
        (("UTC", 1, -1, 9, 17), "wday_end=-1: must be an integer from 0 to 6 (0 = Sunday)"),
        (("UTC", 1, 5, 24, 17), "hour_begin=24: must be an integer from 0 to 23"),
        (("UTC", 1, 5, 9, 17.0), "hour_end=17.0: must be an integer from 0 to 23"),
        (("UTC", True, 5, 9, 17), "wday_begin=True: must be an integer from 0 to 6 (0 = Sunday)"),
        (("UTC", 1, 5, "9", 17), "hour_begin='9': must be an integer from 0 to 23"),
    ],
)
def test_bad_construction_is_a_config_error(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        PeakSchedule(*args)  # type: ignore[arg-type]
    assert str(caught.value).startswith("invalid spreader configuration: " + message)
    assert len(caught.value.problems) == 1


def test_all_bad_fields_are_named_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        PeakSchedule("Nowhere", 9, 5, 9, 99)
    assert list(caught.value.problems) == ["timezone", "wday_begin", "hour_end"]


@pytest.mark.parametrize(
    ("schedule", "at", "expected"),
    [
        (WEEKDAYS, "2026-05-04T08:30", "2026-05-04T09:00"),
        (WEEKDAYS, "2026-05-04T08:59:59.999999", "2026-05-04T09:00"),
        (WEEKDAYS, "2026-05-04T09:00", "2026-05-04T18:00"),  # strictly after: not 09:00 itself
        (WEEKDAYS, "2026-05-04T17:59:59", "2026-05-04T18:00"),
        (WEEKDAYS, "2026-05-08T18:00", "2026-05-11T09:00"),  # Friday evening to Monday morning
        (WEEKDAYS, "2026-05-09T03:00", "2026-05-11T09:00"),
        (PeakSchedule("UTC", 0, 6, 22, 5), "2026-05-04T12:00", "2026-05-04T22:00"),
        (PeakSchedule("UTC", 0, 6, 22, 5), "2026-05-04T23:00", "2026-05-05T06:00"),
        (PeakSchedule("UTC", 5, 1, 0, 23), "2026-05-08T00:00", "2026-05-12T00:00"),  # Fri..Mon, to Tuesday
        (PeakSchedule("Asia/Kolkata", 1, 5, 9, 17), "2026-05-04T00:00", "2026-05-04T03:30"),
        (PeakSchedule("Asia/Kathmandu", 0, 6, 9, 9), "2026-05-04T00:00", "2026-05-04T03:15"),
        # Chatham's clocks jump from 02:44:59 (+12:45) to 03:45 (+13:45): hour 3 starts at 03:45.
        (PeakSchedule("Pacific/Chatham", 0, 6, 3, 3), "2026-09-26T13:00", "2026-09-26T14:00"),
        # Paris, 02:xx: there is none on 2026-03-29, so the next one is on the 30th (+02:00).
        (PeakSchedule("Europe/Paris", 0, 6, 2, 2), "2026-03-28T02:00", "2026-03-30T00:00"),
        # Fall back: on at 02:00 CEST, stays on through the repeated 02:xx, off at 03:00 CET.
        (PeakSchedule("Europe/Paris", 0, 6, 2, 2), "2026-10-24T23:30", "2026-10-25T00:00"),
        (PeakSchedule("Europe/Paris", 0, 6, 2, 2), "2026-10-25T00:00", "2026-10-25T02:00"),
        # Sundays 02:xx only: the skipped hour on 2026-03-29 pushes the change 14 days away.
        (PeakSchedule("Europe/Paris", 0, 0, 2, 2), "2026-03-22T02:00", "2026-04-05T00:00"),
    ],
)
def test_next_change(schedule: PeakSchedule, at: str, expected: str) -> None:
    assert schedule.next_change(utc(at)) == utc(expected)


def test_next_change_is_in_the_zone_of_its_argument() -> None:
    at = local("2026-05-04T08:30", "Europe/Paris")
    change = WEEKDAYS.next_change(at)
    assert change is not None
    assert change.tzinfo is at.tzinfo
    assert change == utc("2026-05-04T09:00")


@pytest.mark.parametrize("ranges", [(0, 6, 0, 23), (3, 2, 0, 23), (0, 6, 5, 4), (4, 3, 12, 11)])
def test_next_change_is_none_when_always_on_peak(ranges: tuple[int, int, int, int]) -> None:
    schedule = PeakSchedule("Europe/Paris", *ranges)
    assert schedule.always_on
    assert schedule.next_change(utc("2026-03-29T00:30")) is None
    assert schedule.is_on_peak(utc("2026-03-29T00:30"))


def test_one_hour_short_of_always_on_still_changes() -> None:
    schedule = PeakSchedule("UTC", 0, 6, 0, 22)
    assert not schedule.always_on
    assert schedule.next_change(utc("2026-05-04T00:00")) == utc("2026-05-04T23:00")


# --- properties, against a reference written differently -------------------------------

def reference_on_peak(at: datetime, zone: str, wdays: tuple[int, int], hours: tuple[int, int]) -> bool:
    """Enumerate the allowed values instead of comparing bounds; weekday from isoweekday."""

    def members(begin: int, end: int, modulus: int) -> set[int]:
        values = {begin}
        while begin != end:
            begin = (begin + 1) % modulus
            values.add(begin)
        return values

    wall = ZoneInfo(zone).fromutc(at.astimezone(UTC).replace(tzinfo=ZoneInfo(zone)))
    cron_day = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 0}[wall.isoweekday()]
    return cron_day in members(*wdays, 7) and wall.hour in members(*hours, 24)


instants = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2060, 1, 1), timezones=st.just(UTC))
schedules = st.builds(
    PeakSchedule,
    st.sampled_from(ZONES),
    st.integers(0, 6),
    st.integers(0, 6),
    st.integers(0, 23),
    st.integers(0, 23),
)


@settings(max_examples=500, deadline=None)
@given(schedules, instants)
def test_is_on_peak_matches_reference(schedule: PeakSchedule, at: datetime) -> None:
    expected = reference_on_peak(
        at, schedule.timezone, (schedule.wday_begin, schedule.wday_end), (schedule.hour_begin, schedule.hour_end)
    )
    assert schedule.is_on_peak(at) is expected


QUARTER = timedelta(minutes=15)


def brute_force_next_change(schedule: PeakSchedule, at: datetime) -> datetime | None:
    """Since 1990 every zone above changes offset and hour on a UTC quarter hour: scan those."""
    start = schedule.is_on_peak(at)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    t = epoch + ((at - epoch) // QUARTER + 1) * QUARTER
    for _ in range(16 * 24 * 4):
        if schedule.is_on_peak(t) != start:
            return t
        t += QUARTER
    return None


@settings(max_examples=150, deadline=None)
@given(schedules, instants)
def test_next_change_matches_brute_force(schedule: PeakSchedule, at: datetime) -> None:
    assert schedule.next_change(at) == brute_force_next_change(schedule, at)


@settings(max_examples=200, deadline=None)
@given(schedules, instants, st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=8))
def test_next_change_is_the_first_flip(schedule: PeakSchedule, at: datetime, fractions: list[float]) -> None:
    change = schedule.next_change(at)
    start = schedule.is_on_peak(at)
    if change is None:
        assert schedule.always_on
        return
    assert at < change <= at + timedelta(days=15)
    assert schedule.is_on_peak(change) is not start
    assert schedule.is_on_peak(change - timedelta(microseconds=1)) is start
    span = (change - at) // timedelta(microseconds=1)
    for fraction in fractions:
        assert schedule.is_on_peak(at + timedelta(microseconds=int(span * fraction))) is start
