"""Poison rows under dag.test(): a failing range is bisected by later cycles until its bad rows are quarantined."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from airflow_spreader.tools.cli import main
from tests.airflow.conftest import Source
from tests.airflow.test_backfill_dag import run_cycle
from tests.conftest import AIRFLOW_HOME

pytestmark = pytest.mark.airflow

#: All the first cycle's batches in half a second (4 task instances); the bisection then runs 6 pieces a cycle.
CONFIG = {"batch_size": 32, "duration": 0.5, "per_second_on_peak": 700, "per_second_off_peak": 700,
          "max_tasks_per_cycle": 4, "lead_seconds": 0}
POISON = [17, 5000, 9999]


POISON_FILE = AIRFLOW_HOME / "poison-ids.json"  # read by the work of spreader_test_poison


@pytest.fixture
def remove_the_poison_file() -> Iterator[None]:
    """Removes the file of poison ids after the test, whatever happened."""
    yield
    POISON_FILE.unlink(missing_ok=True)


def write(ids: list[int]) -> None:
    POISON_FILE.write_text(json.dumps(ids))


def fix_the_work() -> None:
    POISON_FILE.unlink()


def run_until_settled(source: Source, cycles: int) -> int:
    """Cycles until every id is planned and nothing is in flight; how many ran."""
    for ran in range(1, cycles + 1):
        run_cycle(source)
        progress = source.tracker.progress()
        if progress.exhausted and progress.in_flight == 0:
            return ran
    raise AssertionError(f"not settled after {cycles} cycles: {source.tracker.progress()}")


def status_json(source: Source, redis_url: str, capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    assert main(["--redis-url", redis_url, "--json", "status", source.dag_id]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.usefixtures("remove_the_poison_file")
@pytest.mark.parametrize("source", ["poison"], indirect=True)
def test_three_poison_rows_among_10000_are_quarantined_and_replayed_after_the_fix(
        source: Source, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    source.create(10_000)
    source.set_config(**CONFIG)
    write(POISON)

    cycles = run_until_settled(source, cycles=10)
    assert cycles == 6  # the first cycle, then five levels of halving 32 ids down to one
    counters = source.counters()
    assert {i for i, n in counters.items() if n == 0} == set(POISON)
    assert {i for i, n in counters.items() if n != 0} == set(range(1, 10_001)) - set(POISON)
    assert set(counters.values()) == {0, 1}, "a row was done twice"
    progress = source.tracker.progress()
    assert (progress.keys_quarantined, progress.ids_done, progress.batches_failed) == (3, 9_997, 0)
    assert source.tracker.failed_ranges() == []

    status = status_json(source, redis_url, capsys)
    assert status["state"] == "failed"
    assert status["quarantine"]["count"] == 3 and status["progress"]["keys_quarantined"] == 3
    assert [(k["key"], k["error"]) for k in status["quarantine"]["keys"]] == [
        (key, f"PoisonRow: row {key} cannot be processed") for key in POISON]
    capsys.readouterr()
    assert main(["--redis-url", redis_url, "status", source.dag_id]) == 0
    text = capsys.readouterr().out
    assert "quarantined 3 keys" in text and "quarantine 5000  1 attempt  PoisonRow: row 5000" in text

    fix_the_work()
    assert main(["--redis-url", redis_url, "--json", "retry-failed", source.dag_id]) == 0
    assert json.loads(capsys.readouterr().out)["quarantined_keys"] == 3
    assert run_cycle(source) == "success"
    assert set(source.counters().values()) == {1}
    progress = source.tracker.progress()
    assert progress.finished and progress.keys_quarantined == 0 and progress.ids_done == 10_000


@pytest.mark.usefixtures("remove_the_poison_file")
@pytest.mark.parametrize("source", ["poison"], indirect=True)
def test_a_range_where_every_row_fails_stays_one_failed_range(source: Source) -> None:
    source.create(128)
    source.set_config(**CONFIG)
    write(list(range(65, 97)))  # every row of the batch 65-96

    assert run_until_settled(source, cycles=6) == 3  # the batch, its halves, its quarters (max_split_depth=2)
    [failed] = source.tracker.failed_ranges()
    assert (failed.begin_id, failed.end_id, failed.error) == (65, 96, "PoisonRow: row 65 cannot be processed")
    progress = source.tracker.progress()
    assert (progress.batches_failed, progress.ids_failed, progress.keys_quarantined) == (1, 32, 0)
    counters = source.counters()
    assert {i for i, n in counters.items() if n == 0} == set(range(65, 97))
    assert {i for i, n in counters.items() if n == 1} == set(range(1, 65)) | set(range(97, 129))


@pytest.mark.parametrize("bad", [-1, 31, "3"])
def test_the_dag_factory_refuses_a_bad_max_split_depth_naming_it(bad: object) -> None:
    from airflow_spreader.dag_factory import backfill_dag

    with pytest.raises(ValueError, match=rf"max_split_depth must be an integer from 0 .* to 30, got {bad!r}"):
        backfill_dag("spreader_bad_depth", table="t", source_conn_id="c", work=lambda *a: 0,
                     max_split_depth=bad)  # type: ignore[arg-type]
