"""Issue 13 items 8 and 10 against a real Redis: tiled cycles keep the rate, and run at their begin's rate."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow_spreader.core.config import SpreadConfig
from airflow_spreader.state.tracker import Tracker

T = datetime.fromtimestamp(1_800_000_000, tz=timezone.utc)  # the ManualClock start


def tiled_starts(tracker: Tracker, per_second: float, duration: float, cycles: int) -> list[datetime]:
    """Claim ``cycles`` cycles the way the plan task does (after_previous), each asked for at T."""
    starts: list[datetime] = []
    for _ in range(cycles):
        claim = tracker.claim_cycle(batch_size=1, per_second=per_second, duration=duration, begin_at=T,
                                    lease_seconds=600, after_previous=True)
        starts += [b.run_at for b in claim.batches]
    return starts


def test_a_tenth_per_second_in_one_second_cycles_is_one_batch_every_ten_seconds(tracker: Tracker) -> None:
    tracker.start(max_id=1000)
    starts = tiled_starts(tracker, 0.1, 1, 5)
    assert starts == [T + timedelta(seconds=10 * k) for k in range(5)]  # was one a second: 10x the rate
    assert tracker.planned_until() == (T + timedelta(seconds=50)).timestamp()


def test_a_quarter_per_second_in_ten_second_cycles_is_a_quarter_per_second(tracker: Tracker) -> None:
    tracker.start(max_id=1000)
    starts = tiled_starts(tracker, 0.25, 10, 4)
    assert starts == [T + timedelta(seconds=4 * k) for k in range(12)]  # 3 a cycle, cycles 12 s apart
    assert tracker.planned_until() == (T + timedelta(seconds=48)).timestamp()  # 12 batches / 48 s = 0.25/s


PEAK = SpreadConfig.from_dict({"batch_size": 1, "duration": 10, "per_second_on_peak": 0.5, "per_second_off_peak": 2,
                               "on_peak_wday_begin": 0, "on_peak_wday_end": 6, "on_peak_hour_begin": 9,
                               "on_peak_hour_end": 16})
NINE = datetime(2027, 1, 14, 9, 0, tzinfo=timezone.utc)  # peak begins


def test_a_cycle_that_begins_after_a_peak_boundary_runs_at_the_peak_rate(tracker: Tracker) -> None:
    tracker.start(max_id=1000)
    before = NINE - timedelta(seconds=5)
    first = tracker.claim_cycle(batch_size=1, per_second=PEAK.per_second, duration=10, begin_at=before,
                                lease_seconds=600, after_previous=True)
    assert first.per_second == 2 and len(first.batches) == 20  # off peak: the whole cycle at its begin's rate
    assert first.end_at == NINE + timedelta(seconds=5)
    now = NINE - timedelta(seconds=1)  # the next plan runs before the boundary (lead_seconds early)
    assert PEAK.per_second(now) == 2
    preview = tracker.preview_cycle(batch_size=1, per_second=PEAK.per_second, duration=10, begin_at=now,
                                    after_previous=True)
    second = tracker.claim_cycle(batch_size=1, per_second=PEAK.per_second, duration=10, begin_at=now,
                                 lease_seconds=600, after_previous=True)
    assert second.begin_at == NINE + timedelta(seconds=5) and second.per_second == 0.5
    assert [b.run_at for b in second.batches] == [NINE + timedelta(seconds=5 + 2 * k) for k in range(5)]
    assert [b.run_at for b in preview.batches] == [b.run_at for b in second.batches]
    assert preview.per_second == 0.5


def test_a_fixed_rate_still_works_and_is_reported(tracker: Tracker) -> None:
    tracker.start(max_id=1000)
    claim = tracker.claim_cycle(batch_size=1, per_second=3, duration=2, begin_at=T, lease_seconds=600)
    assert claim.per_second == 3 and len(claim.batches) == 6 and claim.end_at == T + timedelta(seconds=2)
