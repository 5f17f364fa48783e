"""The bisection of a failed range (core.split): the cut, each piece's fate, a family's verdict."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_spreader.core.planner import IdRange
from airflow_spreader.core.split import (
    MAX_SPLIT_DEPTH,
    Family,
    PieceStep,
    Verdict,
    check_max_split_depth,
    halves,
    step_after_last_try,
)

INT64 = st.integers(-(2**63), 2**63 - 1)


@st.composite
def ranges(draw: st.DrawFn, min_size: int = 1) -> IdRange:
    begin = draw(st.integers(-(2**63), 2**63 - min_size))
    end = draw(st.integers(begin + min_size - 1, min(2**63 - 1, begin + 10**12)))
    return IdRange(begin, end)


@given(ranges(min_size=2))
def test_the_halves_partition_the_range_into_two_nearly_equal_parts(id_range: IdRange) -> None:
    lower, upper = halves(id_range)
    assert lower.begin_id == id_range.begin_id and upper.end_id == id_range.end_id
    assert lower.end_id + 1 == upper.begin_id
    assert 0 <= lower.size - upper.size <= 1


@given(ranges(min_size=1), st.data())
def test_halving_isolates_any_key_within_log2_levels(id_range: IdRange, data: st.DataObject) -> None:
    key = data.draw(st.integers(id_range.begin_id, id_range.end_id))
    piece, levels = id_range, 0
    while piece.size > 1:
        piece = next(half for half in halves(piece) if half.begin_id <= key <= half.end_id)
        levels += 1
    assert piece == IdRange(key, key)
    assert levels <= (id_range.size - 1).bit_length()  # ceil(log2(size)), exactly


def test_a_single_key_cannot_be_split() -> None:
    with pytest.raises(ValueError, match="one key cannot be split: 7-7"):
        halves(IdRange(7, 7))


@pytest.mark.parametrize(("size", "depth", "family_done", "expected"), [
    (1, 0, False, PieceStep.QUARANTINE),
    (1, 9, False, PieceStep.QUARANTINE),
    (70, 0, False, PieceStep.SPLIT),
    (35, 2, False, PieceStep.SPLIT),
    (9, 3, False, PieceStep.PARK),  # three levels, no success: the family waits for its verdict
    (9, 3, True, PieceStep.SPLIT),  # a success anywhere in the family: on to the poison rows
    (9, 12, True, PieceStep.SPLIT),
])
def test_the_fate_of_a_piece_after_its_last_try(size: int, depth: int, family_done: bool,
                                                expected: PieceStep) -> None:
    assert step_after_last_try(size, depth, 3, family_done) is expected


@given(st.integers(1, 10**9), st.integers(0, 40), st.booleans())
def test_without_isolation_every_failed_range_stays_a_failed_range(size: int, depth: int, done: bool) -> None:
    assert step_after_last_try(size, depth, 0, done) is PieceStep.FAIL


def test_a_family_verdict_follows_what_is_done_in_flight_parked_and_quarantined() -> None:
    root = IdRange(1, 100)
    fresh = Family(root, "E", 1)
    assert fresh.verdict(in_flight_pieces=2, in_flight_ids=100) is Verdict.OPEN
    parked = Family(root, "E", 1, parked=((IdRange(1, 25), 2),))
    assert parked.verdict(in_flight_pieces=3, in_flight_ids=75) is Verdict.OPEN  # nothing done yet: wait
    assert parked.verdict(in_flight_pieces=1, in_flight_ids=25) is Verdict.UNPARK  # 50 ids done meanwhile
    all_parked = Family(root, "E", 1, parked=((IdRange(1, 50), 1), (IdRange(51, 100), 1)))
    assert all_parked.verdict(0, 0) is Verdict.MERGE
    all_quarantined = Family(IdRange(1, 2), "E", 1, quarantined=(1, 2))
    assert all_quarantined.verdict(0, 0) is Verdict.MERGE  # every row failed: one failed range, not two keys
    some_done = Family(root, "E", 1, quarantined=(17,))
    assert some_done.verdict(0, 0) is Verdict.CLOSE
    one_key = Family(IdRange(5, 5), "E", 1, quarantined=(5,))
    assert one_key.verdict(0, 0) is Verdict.CLOSE  # a root of one key is its own quarantine


@given(ranges(min_size=2), st.lists(INT64, max_size=5), st.text(max_size=30), st.integers(0, 1000))
def test_a_family_round_trips_through_json_exactly(root: IdRange, keys: list[int], error: str, version: int) -> None:
    family = Family(root, error, 3, parked=((halves(root)[0], 2),), quarantined=tuple(keys), version=version)
    assert Family.from_json(family.to_json()) == family
    assert family.with_changes().version == version + 1


@pytest.mark.parametrize("bad", [-1, MAX_SPLIT_DEPTH + 1, 2.0, "3", True, None])
def test_a_bad_max_split_depth_is_refused_naming_it(bad: object) -> None:
    with pytest.raises(ValueError, match=rf"max_split_depth must be an integer from 0 .* to {MAX_SPLIT_DEPTH}, "
                                         rf"got {bad!r}"):
        check_max_split_depth(bad)
