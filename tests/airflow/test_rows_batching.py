"""``"rows"`` batching end to end under dag.test(): sparse and signed keys, every row exactly once."""

from __future__ import annotations

import math
import random

import pytest
import sqlalchemy as sa

from airflow_spreader.state.source_record import SourceRecord, recorded_source
from tests.airflow.conftest import TABLE, Source
from tests.airflow.test_backfill_dag import run_cycle

pytestmark = pytest.mark.airflow

ALL_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                pytest.param("mariadb", marks=pytest.mark.mariadb)]
RATE = {"per_second_on_peak": 10, "per_second_off_peak": 10, "max_tasks_per_cycle": 4}
#: 240 snowflake-style ids (milliseconds << 22 | sequence) over about 10^17 ids.
SNOWFLAKES = sorted({(1_700_000_000_000 + random.Random(11).randrange(10**10) + i * 10**7) << 22 | (i % 5)
                     for i in range(240)})
#: 240 signed ids spread over -2^61..2^61 (the id span must stay below 2^63: the tracker's counters).
SIGNED = sorted({random.Random(5 + i).randint(-2**61, 2**61) for i in range(238)} | {-1, 0})


def run_until_finished(source: Source, cycles: int) -> int:
    for done in range(1, cycles + 1):
        assert run_cycle(source) == "success"
        if source.tracker.progress().finished:
            return done
    raise AssertionError(f"not finished after {cycles} cycles: {source.tracker.progress()}")


@pytest.mark.parametrize("source", ALL_BACKENDS, indirect=True)
@pytest.mark.parametrize("keys", [SNOWFLAKES, SIGNED], ids=["snowflake", "signed"])
def test_rows_batching_visits_every_sparse_row_exactly_once_in_rows_per_batch(source: Source,
                                                                               keys: list[int]) -> None:
    source.create_keys(keys)
    source.set_config(batch_size=10, duration=2, batching="rows", **RATE)  # 20 batches a cycle
    assert run_until_finished(source, 3) == 2
    progress = source.tracker.progress()
    assert progress.batches_planned == progress.batches_done == math.ceil(len(keys) / 10)  # 24, not 10^16
    assert progress.rows_done == len(keys)
    assert source.counters() == dict.fromkeys(keys, 1)
    assert progress.counts_rows and progress.rows_estimate is not None  # from the statistics at the first cycle
    assert (progress.rows_total, progress.rows_total_is_estimate, progress.fraction_done) == (len(keys), False, 1.0)


@pytest.mark.parametrize("source", ALL_BACKENDS, indirect=True)
def test_a_switch_from_ids_to_rows_between_cycles_loses_and_repeats_nothing(source: Source) -> None:
    keys = [*range(1, 151), *range(10**12 + 1, 10**12 + 151)]
    source.create_keys(keys)
    source.set_config(batch_size=10, duration=2, **RATE)  # "ids": 20 batches of 10 ids from the top
    assert run_cycle(source) == "success"
    assert source.tracker.progress().cursor == 10**12 + 150 - 200
    assert {k for k, n in source.counters().items() if n == 1} == set(range(10**12 - 49, 10**12 + 151)) & set(keys)
    source.set_config(batch_size=10, duration=2, batching="rows", **RATE)  # live: the next cycle walks rows
    assert run_until_finished(source, 2) == 1
    progress = source.tracker.progress()
    assert progress.batches_planned == 20 + 15  # 150 rows left: 15 batches, the last down to the lowest id
    assert source.counters() == dict.fromkeys(keys, 1)
    # for `plan --dry-run`, which reads the boundaries from the same table
    assert recorded_source(source.tracker) == SourceRecord(source.dag_id, TABLE, "id")


@pytest.mark.parametrize("source", ["sqlite"], indirect=True)
def test_rows_batching_on_a_key_without_an_index_fails_the_first_cycle_naming_it(
        source: Source, capfd: pytest.CaptureFixture) -> None:
    with source.engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {TABLE}"))
        conn.execute(sa.text(f"CREATE TABLE {TABLE} (id BIGINT, counter INTEGER NOT NULL, processed_at REAL)"))
        conn.execute(sa.text(f"INSERT INTO {TABLE} (id, counter) VALUES (1, 0), (2, 0)"))
    source.set_config(batch_size=10, duration=2, batching="rows", **RATE)
    assert run_cycle(source) == "failed"
    assert not source.tracker.is_started()
    assert set(source.counters().values()) == {0}
    out, err = capfd.readouterr()
    assert f"TableError: key column 'id' of table '{TABLE}' has no index" in out + err


@pytest.mark.parametrize("source", ["sqlite"], indirect=True)
def test_a_composite_primary_key_without_key_fails_the_first_cycle_listing_its_columns(
        source: Source, capfd: pytest.CaptureFixture) -> None:
    with source.engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {TABLE}"))
        conn.execute(sa.text(f"CREATE TABLE {TABLE} (id BIGINT, part INTEGER, counter INTEGER NOT NULL, "
                             "processed_at REAL, PRIMARY KEY (id, part))"))
        conn.execute(sa.text(f"INSERT INTO {TABLE} (id, part, counter) VALUES (1, 1, 0), (1, 2, 0)"))
    source.set_config(batch_size=10, duration=2, **RATE)
    assert run_cycle(source) == "failed"
    assert not source.tracker.is_started()
    out, err = capfd.readouterr()
    assert f"TableError: table '{TABLE}' has a composite primary key (id, part) and no key= was given" in out + err


@pytest.mark.parametrize("source", ["sqlite"], indirect=True)
def test_rows_batching_of_keys_spanning_more_than_the_counters_hold_fails_the_first_cycle(
        source: Source, capfd: pytest.CaptureFixture) -> None:
    source.create_keys([-2**63, 0, 2**63 - 1])
    source.set_config(batch_size=10, duration=2, batching="rows", **RATE)
    assert run_cycle(source) == "failed"
    assert not source.tracker.is_started()
    out, err = capfd.readouterr()
    assert "more than 2^63 - 1 ids: \"rows\" batching needs a span" in out + err
