"""UUID keys as integer images (core/keys.py): exact round trips, the databases' order, and bad values."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_spreader.core.carving import ranges_from_tops
from airflow_spreader.core.keys import (
    INT64_MAX,
    KeyForm,
    UuidKeyError,
    counted_ids,
    form_of,
    from_key,
    is_uuid_image,
    key_label,
    to_key,
)
from airflow_spreader.core.planner import IdRange
from airflow_spreader.core.split import halves

uuids = st.builds(uuid.UUID, int=st.integers(0, 2**128 - 1))
FORMS = {KeyForm.NATIVE: lambda u: u, KeyForm.LOWER: str, KeyForm.UPPER: lambda u: str(u).upper(),
         KeyForm.BYTES: lambda u: u.bytes}


@given(uuids, st.sampled_from(list(FORMS)))
def test_a_uuid_round_trips_as_the_same_value_of_the_same_type(value: uuid.UUID, form: KeyForm) -> None:
    stored = FORMS[form](value)
    image = from_key(stored, form)  # the key's form: a UUID with no letters is lowercase and uppercase at once
    assert (to_key(image), type(to_key(image))) == (stored, type(stored))
    assert form_of(image) is form and is_uuid_image(image) and image > INT64_MAX
    assert key_label(image) == str(value) and counted_ids(image, image) == 0


@given(uuids, uuids, st.sampled_from(list(FORMS)))
def test_images_order_as_the_databases_order_uuids_bytes_and_canonical_text(a: uuid.UUID, b: uuid.UUID,
                                                                           form: KeyForm) -> None:
    assert (from_key(FORMS[form](a), form) < from_key(FORMS[form](b), form)) == (a.bytes < b.bytes) == (str(a) < str(b))


@given(st.integers(-2**63, 2**63 - 1))
def test_integer_keys_are_left_as_they_are(value: int) -> None:
    assert to_key(value) == value and not is_uuid_image(value) and key_label(value) == str(value)
    assert counted_ids(value, value) == 1


@given(st.lists(uuids, min_size=2, max_size=60, unique=True), st.integers(1, 7), st.integers(1, 5))
def test_tops_of_uuid_images_carve_contiguous_ranges_holding_every_key_once(keys: list[uuid.UUID], batch_size: int,
                                                                           count: int) -> None:
    images = sorted((from_key(str(k)) for k in keys), reverse=True)
    cursor, low, ranges = images[0], images[-1], []
    while cursor >= low:
        below = [i for i in images if i <= cursor][:count * batch_size + 1]
        fresh = ranges_from_tops(cursor, low, below[::batch_size], count)
        ranges += fresh
        cursor = fresh[-1].begin_id - 1
    assert all(form_of(r.begin_id) is KeyForm.LOWER for r in ranges)  # +1 / -1 never leave the form
    assert sorted(i for r in ranges for i in images if r.begin_id <= i <= r.end_id) == sorted(images)
    assert all(r.counted == 0 for r in ranges)


@given(uuids, uuids)
def test_a_uuid_range_halves_into_uuid_ranges_of_the_same_form(a: uuid.UUID, b: uuid.UUID) -> None:
    low, high = sorted([from_key(a.bytes), from_key(b.bytes)])
    if low == high:
        return
    for half in halves(IdRange(low, high)):
        assert form_of(half.begin_id) is form_of(half.end_id) is KeyForm.BYTES
        assert isinstance(to_key(half.begin_id), bytes)


def test_a_range_of_uuids_reads_as_uuids() -> None:
    a, b = uuid.UUID(int=5), uuid.UUID(int=2**127)
    assert IdRange(from_key(str(a)), from_key(str(b))).label == f"{a}..{b}"
    assert IdRange(-149, -50).label == "-149--50"


@pytest.mark.parametrize("value, message", [
    ("alice", "key value 'alice' is not a UUID in canonical text"),
    ("0190C8A4-7e1f-4c7b-9a44-3f2d1e0b5a6c", "is not a UUID in canonical text (36 characters, one case"),
    ("{0190c8a4-7e1f-4c7b-9a44-3f2d1e0b5a6c}", "is not a UUID in canonical text"),
    (b"\x01" * 15, "has 15 bytes, not the 16 of a UUID"),
    (1.5, "key value 1.5 (float) is neither an integer nor a UUID"),
])
def test_a_value_that_is_no_uuid_is_refused_naming_it(value: object, message: str) -> None:
    with pytest.raises(UuidKeyError) as raised:
        from_key(value)
    assert message in str(raised.value)


def test_a_uuid_of_another_form_than_the_key_s_is_refused() -> None:
    value = uuid.UUID(int=0xABC)
    with pytest.raises(UuidKeyError, match="is a UUID of form UPPER, the key's others are LOWER"):
        from_key(str(value).upper(), KeyForm.LOWER)
    assert from_key(str(value), KeyForm.LOWER) == from_key(str(value))
