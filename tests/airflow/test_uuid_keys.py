"""UUID keys in ``"rows"`` batching under dag.test(): every row once, exact bounds, and what is refused."""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_spreader.core.keys import from_key, to_key
from airflow_spreader.tools.cli import main
from tests.airflow.conftest import TABLE, Source
from tests.airflow.test_backfill_dag import run_cycle, run_cycle_stopped_at_batch, run_cycles_until_finished
from tests.airflow.test_poison_rows import CONFIG as POISON_CONFIG
from tests.airflow.test_poison_rows import POISON_FILE

pytestmark = pytest.mark.airflow

RATE = {"per_second_on_peak": 10, "per_second_off_peak": 10, "max_tasks_per_cycle": 4}


def uuids(count: int, seed: int) -> list[uuid.UUID]:
    rng = random.Random(seed)
    return [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(count)]


def create_uuid_keys(source: Source, keys: list[uuid.UUID], column: str) -> list[Any]:
    """The table keyed by ``column`` (a UUID type), one row per key; returns the keys as stored."""
    stored = [k.bytes if column == "BINARY(16)" else str(k) for k in keys]
    with source.engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {TABLE}"))
        conn.execute(sa.text(f"CREATE TABLE {TABLE} (id {column} PRIMARY KEY, counter INTEGER NOT NULL, "
                             "processed_at DOUBLE PRECISION)"))
        conn.execute(sa.text(f"INSERT INTO {TABLE} (id, counter) VALUES (:id, 0)"), [{"id": k} for k in stored])
    return stored


def counters(source: Source) -> dict[Any, int]:
    with source.engine.connect() as conn:
        return {(bytes(k) if isinstance(k, (bytes, memoryview)) else str(k)): n
                for k, n in conn.execute(sa.text(f"SELECT id, counter FROM {TABLE}")).all()}


def ledger_rows(source: Source) -> int:
    with source.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT COUNT(*) FROM spreader_ledger_uuid WHERE backfill = :b AND "
                                        "generation = :g"),
                                {"b": source.dag_id, "g": source.tracker.generation()}).scalar_one())


@pytest.mark.parametrize("source, column", [
    ("sqlite", "TEXT"),
    pytest.param("postgres", "UUID", marks=pytest.mark.postgres),
    pytest.param("mariadb", "CHAR(36)", marks=pytest.mark.mariadb),
    pytest.param("mariadb", "BINARY(16)", marks=pytest.mark.mariadb),
], indirect=["source"])
def test_uuid_keys_are_walked_in_batches_of_real_rows_each_row_exactly_once(source: Source, column: str) -> None:
    stored = create_uuid_keys(source, uuids(115, seed=3), column)
    source.set_config(batch_size=10, duration=2, batching="rows", **RATE)  # 20 batches a cycle: one cycle
    assert run_cycle(source) == "success"
    progress = source.tracker.progress()
    assert progress.finished
    assert progress.batches_planned == progress.batches_done == 12  # 115 rows / 10, not 2^128 / 10
    assert progress.rows_done == 115 and progress.ids_done == 0  # UUID ranges count rows, no ids
    assert counters(source) == dict.fromkeys(stored, 1)
    with source.engine.connect() as conn:  # the bound round-trips as the value the driver returns (uuid.UUID on PG)
        top = conn.execute(sa.text(f"SELECT id FROM {TABLE} ORDER BY id DESC LIMIT 1")).scalar()
    assert (to_key(progress.max_id), type(to_key(progress.max_id))) == (top, type(top))
    assert ledger_rows(source) == 12  # the done-ledger of UUID ranges, one row a batch


@pytest.mark.parametrize("source", ["sqlite"], indirect=True)
def test_ids_batching_on_a_uuid_key_fails_the_first_cycle_telling_to_set_rows(
        source: Source, capfd: pytest.CaptureFixture) -> None:
    create_uuid_keys(source, uuids(5, seed=4), "TEXT")
    source.set_config(batch_size=10, duration=2, **RATE)  # "ids", the default
    assert run_cycle(source) == "failed"
    assert not source.tracker.is_started()
    assert set(counters(source).values()) == {0}
    out, err = capfd.readouterr()
    assert (f"ConfigError: invalid spreader configuration: batching: key column 'id' of table '{TABLE}' holds "
            "UUIDs: id arithmetic cannot cut them; set \"rows\"") in out + err


@pytest.mark.parametrize("source", ["sqlite"], indirect=True)
def test_a_stop_mid_cycle_on_a_uuid_key_hands_the_rest_back_and_go_finishes_exactly_once(source: Source) -> None:
    # 8 batches in 2 task instances of 4: the 3rd batch to run is never a task instance's last, so the task
    # that runs it always has batches left to hand back, whichever task dag.test() runs first (with 6 batches
    # in 2 x 3, the other task could start after the go and run all of its own: 6 of 6 done, seen 1 run in 4).
    stored = create_uuid_keys(source, uuids(80, seed=5), "TEXT")
    source.set_config(batch_size=10, duration=8, per_second_on_peak=1, per_second_off_peak=1,
                      max_tasks_per_cycle=2, lead_seconds=8, batching="rows")
    run_cycle_stopped_at_batch(source, 3, go_after=2)  # the 3rd batch's work stops the backfill
    assert 3 <= source.tracker.progress().batches_done < 8, "the stop came mid-cycle"
    run_cycles_until_finished(source, 3)
    progress = source.tracker.progress()
    assert progress.finished and progress.counters.get("batches_replanned", 0) > 0
    assert (progress.batches_done, progress.rows_done) == (8, 80), "the handed-back ranges kept their bounds"
    assert counters(source) == dict.fromkeys(stored, 1)


@pytest.mark.parametrize("source", ["poison"], indirect=True)
def test_a_poison_row_under_a_uuid_key_is_quarantined_by_bisection_and_reads_as_its_uuid(
        source: Source, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    # 40 adjacent UUIDs: bisection halves a range's span, so adjacent keys single one out in 3 levels (a span
    # of random UUIDs needs up to 128, one a cycle: see the README)
    base = 0xC0FFEE00_0000_4000_8000_0000_0000_0000
    stored = create_uuid_keys(source, [uuid.UUID(int=base + i) for i in range(40)], "TEXT")
    poison = stored[13]
    POISON_FILE.write_text(json.dumps([poison]))  # the work of spreader_test_poison raises on it
    try:
        source.set_config(**{**POISON_CONFIG, "batch_size": 8, "batching": "rows"})
        for _ in range(6):
            run_cycle(source)
            progress = source.tracker.progress()
            if progress.exhausted and progress.in_flight == 0:
                break
    finally:
        POISON_FILE.unlink(missing_ok=True)
    done = counters(source)
    assert done == {k: 0 if k == poison else 1 for k in stored}
    assert (progress.keys_quarantined, progress.rows_done, source.tracker.failed_ranges()) == (1, 39, [])
    capsys.readouterr()
    assert main(["--redis-url", redis_url, "--json", "status", source.dag_id]) == 0
    [shown] = json.loads(capsys.readouterr().out)["quarantine"]["keys"]
    assert (shown["key"], shown["label"]) == (from_key(poison), poison)
    assert shown["error"] == f"PoisonRow: row {poison} cannot be processed"
    assert main(["--redis-url", redis_url, "status", source.dag_id]) == 0
    assert f"quarantine {poison}  1 attempt  PoisonRow: row {poison}" in capsys.readouterr().out
