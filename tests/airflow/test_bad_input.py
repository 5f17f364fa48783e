"""Bad input gives one clear error, and nothing is advanced or lost (under dag.test())."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from airflow_spreader.core.names import checkpoint_variable
from airflow_spreader.state.checkpoint import Checkpoint
from tests.airflow.conftest import TABLE, Source, sparse_keys
from tests.airflow.test_backfill_dag import RATE, run_cycle, run_cycles_until_finished

pytestmark = pytest.mark.airflow

GOOD = {"batch_size": 10, "duration": 2, "max_tasks_per_cycle": 4, **RATE}


def failed_with(source: Source, capfd: pytest.CaptureFixture, message: str) -> None:
    assert run_cycle(source) == "failed"
    out, err = capfd.readouterr()
    assert message in out + err


@pytest.mark.parametrize(("config", "message"), [
    ("{batch_size: 10", "ConfigError: invalid spreader configuration: not valid JSON: Expecting property name"),
    (json.dumps({**GOOD, "per_second_on_peak": 0}), "per_second_on_peak=0: must be a finite number > 0"),
    (json.dumps({**GOOD, "per_second_off_peak": -2.5}), "per_second_off_peak=-2.5: must be a finite number > 0"),
    (json.dumps({**GOOD, "on_peak_timezone": "Mars/Olympus_Mons"}),
     "on_peak_timezone='Mars/Olympus_Mons': must be an IANA time zone name"),
])
@pytest.mark.parametrize("source", ["sqlite"], indirect=True)
def test_a_bad_variable_names_the_problem_and_plans_nothing(source: Source, config: str, message: str,
                                                            capfd: pytest.CaptureFixture) -> None:
    source.create(50)
    source.set_raw_config(config)
    failed_with(source, capfd, message)
    assert not source.tracker.is_started()
    assert set(source.counters().values()) == {0}


@pytest.mark.parametrize("source", ["sqlite"], indirect=True)
def test_a_missing_table_is_named(source: Source, capfd: pytest.CaptureFixture) -> None:
    with source.engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {TABLE}"))
    source.set_config(**GOOD)
    failed_with(source, capfd, f"TableError: table '{TABLE}' not found in sqlite:///")
    assert not source.tracker.is_started()


@pytest.mark.parametrize("source", ["sqlite"], indirect=True)
def test_an_empty_table_finishes_at_once_and_says_so(source: Source, capfd: pytest.CaptureFixture) -> None:
    source.create(0)
    source.set_config(**GOOD)
    assert run_cycle(source) == "success"
    out, err = capfd.readouterr()
    assert f"Table {TABLE} is empty: nothing to backfill" in out + err
    assert "Triggering the next cycle" not in out + err  # no empty runs after it
    assert source.tracker.progress().finished


@pytest.mark.parametrize("source", ["sqlite"], indirect=True)
def test_an_unreachable_source_database_is_named(source: Source, capfd: pytest.CaptureFixture,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SPREADER_TEST_SQLITE", json.dumps(
        {"conn_type": "postgres", "host": "127.0.0.1", "port": 1, "login": "nobody", "password": "s3cret",
         "schema": "nowhere"}))
    source.set_config(**GOOD)
    assert run_cycle(source) == "failed"
    out, err = capfd.readouterr()
    assert "cannot connect to source database postgresql+psycopg2://nobody@127.0.0.1:1/nowhere" in out + err
    assert "s3cret" not in out + err
    assert not source.tracker.is_started()


@pytest.mark.parametrize("source", ["sqlite"], indirect=True)
def test_an_unreachable_redis_is_named(source: Source, capfd: pytest.CaptureFixture,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    source.create(50)
    source.set_config(**GOOD)
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_DEFAULT", json.dumps({"conn_type": "redis", "host": "127.0.0.1",
                                                                 "port": 1}))
    failed_with(source, capfd, "TrackerUnavailable: cannot reach the Redis of connection 'redis_default'")
    assert set(source.counters().values()) == {0}


@pytest.mark.parametrize("source", ["sqlite"], indirect=True)
@pytest.mark.parametrize("batching", ["ids", "rows"])
def test_lost_redis_state_is_refused_then_resumed_from_the_checkpoint(source: Source, capfd: pytest.CaptureFixture,
                                                                      batching: str) -> None:
    from airflow.models.variable import Variable

    keys = sparse_keys(1000) if batching == "rows" else list(range(1, 1001))  # "rows": over 10^12 ids
    source.create_keys(keys)
    source.set_config(batch_size=10, duration=10, max_tasks_per_cycle=8, batching=batching, **RATE)
    assert run_cycle(source) == "success"  # the top 750 rows done (75 batches of 10 ids, or of 10 rows)
    saved = Checkpoint(**json.loads(Variable.get(checkpoint_variable(source.dag_id))))
    # "rows": the mark is the 751st key from the top, where the next carve begins (the cursor)
    assert (saved.low_water, saved.min_id, saved.max_id, saved.finished) == (keys[249], keys[0], keys[-1], False)
    assert saved.generation == source.tracker.generation()

    source.tracker.reset()  # Redis restarted without persistence: the tracker's state is gone
    failed_with(source, capfd, "has no state in Redis, but its checkpoint")
    assert not source.tracker.is_started()
    assert {k for k, n in source.counters().items() if n == 0} == set(keys[:250])

    saved.restore(source.tracker)
    assert source.tracker.generation() == saved.generation, "the restore continues the run's done-ledger"
    run_cycles_until_finished(source, 3)
    assert source.counters() == dict.fromkeys(keys, 1)
    assert source.tracker.progress().batches_done == 25, "the carve after the restore: 250 rows, 25 batches"
