"""The bisection of a failed range (core.split): the cut, each piece's fate, a family's verdict."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_spreader.core.planner import IdRange
from airflow_spreader.core.split import (
    MAX_SPLIT_DEPTH,
    Family,
    Parked,
    PieceStep,
    Settlement,
    ancestor,
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


@pytest.mark.parametrize(("size", "depth", "anchor_done", "expected"), [
    (1, 0, False, PieceStep.QUARANTINE),
    (1, 9, False, PieceStep.QUARANTINE),
    (70, 0, False, PieceStep.SPLIT),
    (35, 2, False, PieceStep.SPLIT),
    (9, 3, False, PieceStep.PARK),  # three levels, no success: it waits for the verdict on its anchor
    (9, 3, True, PieceStep.SPLIT),  # a success under its anchor: on to the poison rows
    (9, 12, True, PieceStep.SPLIT),
])
def test_the_fate_of_a_piece_after_its_last_try(size: int, depth: int, anchor_done: bool,
                                                expected: PieceStep) -> None:
    assert step_after_last_try(size, depth, 3, anchor_done) is expected


@given(st.integers(1, 10**9), st.integers(0, 40), st.booleans())
def test_without_isolation_every_failed_range_stays_a_failed_range(size: int, depth: int, done: bool) -> None:
    assert step_after_last_try(size, depth, 0, done) is PieceStep.FAIL


@given(ranges(min_size=1), st.data())
def test_the_ancestor_of_a_piece_is_the_node_of_its_lineage_at_that_depth(root: IdRange, data: st.DataObject) -> None:
    key = data.draw(st.integers(root.begin_id, root.end_id))
    lineage = [root]
    while lineage[-1].size > 1:
        lineage.append(next(h for h in halves(lineage[-1]) if h.begin_id <= key <= h.end_id))
    piece = lineage[data.draw(st.integers(0, len(lineage) - 1))]
    for depth in range(lineage.index(piece) + 1):
        assert ancestor(root, piece, depth) == lineage[depth]


ROOT = IdRange(1, 100)
LOW, HIGH = halves(ROOT)  # 1-50, 51-100
QUARTERS = [*halves(LOW), *halves(HIGH)]  # 1-25, 26-50, 51-75, 76-100


def test_the_ids_done_in_a_node_are_what_is_not_held_in_it() -> None:
    family = Family(ROOT, "E", 1, parked=(Parked(QUARTERS[0], 2, ROOT),), quarantined=(30,), failed=(HIGH,))
    assert family.done_within(ROOT, in_flight=[IdRange(31, 50)]) == 100 - 25 - 1 - 50 - 20
    assert family.done_within(LOW, in_flight=[IdRange(31, 50)]) == 4  # 26-29
    assert family.done_within(HIGH, in_flight=[]) == 0


def test_a_family_is_settled_by_what_succeeded_under_each_parked_piece_s_anchor() -> None:
    fresh = Family(ROOT, "E", 1)
    assert fresh.settlement({LOW, HIGH}) == Settlement()
    assert fresh.anchor_of(QUARTERS[0], depth=2, max_split_depth=2) == ROOT
    assert fresh.anchor_of(IdRange(1, 13), depth=3, max_split_depth=2) == LOW
    parked = Family(ROOT, "E", 1, parked=(Parked(QUARTERS[0], 2, ROOT),))
    assert parked.settlement(set(QUARTERS[1:])) == Settlement()  # nothing done yet, siblings in flight: wait
    assert parked.settlement({QUARTERS[1]}) == Settlement(unpark=parked.parked)  # 51-100 done meanwhile
    all_parked = Family(ROOT, "E", 1, parked=tuple(Parked(q, 2, ROOT) for q in QUARTERS))
    assert all_parked.settlement(set()) == Settlement(merge=(ROOT,), close=True)
    assert all_parked.without(Settlement(merge=(ROOT,))).parked == ()


def test_a_half_where_every_row_fails_is_kept_whole_though_its_sibling_succeeded() -> None:
    """51-100 was done; 1-50 failed on and on: its pieces two levels below it wait, then 1-50 is one failed range."""
    eighths = [*halves(QUARTERS[0]), *halves(QUARTERS[1])]
    family = Family(ROOT, "E", 1, parked=tuple(Parked(e, 3, LOW) for e in eighths[:3]))
    assert family.settlement({eighths[3]}) == Settlement()
    family = Family(ROOT, "E", 1, parked=tuple(Parked(e, 3, LOW) for e in eighths), quarantined=())
    settled = family.settlement(set())
    assert settled == Settlement(merge=(LOW,), close=True)
    assert family.without(settled).failed == (LOW,)


def test_a_root_where_every_row_was_quarantined_is_one_failed_range_and_a_one_key_root_its_key() -> None:
    assert Family(IdRange(1, 2), "E", 1, quarantined=(1, 2)).settlement(set()) == \
        Settlement(merge=(IdRange(1, 2),), close=True)
    assert Family(IdRange(5, 5), "E", 1, quarantined=(5,)).settlement(set()) == Settlement(close=True)
    assert Family(ROOT, "E", 1, quarantined=(17,)).settlement(set()) == Settlement(close=True)


@given(ranges(min_size=2), st.lists(INT64, max_size=5), st.text(max_size=30), st.integers(0, 1000))
def test_a_family_round_trips_through_json_exactly(root: IdRange, keys: list[int], error: str, version: int) -> None:
    lower, upper = halves(root)
    family = Family(root, error, 3, parked=(Parked(lower, 2, root),), quarantined=tuple(keys), failed=(upper,),
                    version=version)
    assert Family.from_json(family.to_json()) == family
    assert family.with_changes().version == version + 1


@pytest.mark.parametrize("bad", [-1, MAX_SPLIT_DEPTH + 1, 2.0, "3", True, None])
def test_a_bad_max_split_depth_is_refused_naming_it(bad: object) -> None:
    with pytest.raises(ValueError, match=rf"max_split_depth must be an integer from 0 .* to {MAX_SPLIT_DEPTH}, "
                                         rf"got {bad!r}"):
        check_max_split_depth(bad)
