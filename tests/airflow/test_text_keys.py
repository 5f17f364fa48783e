"""Text keys in ``"rows"`` batching under dag.test(): the database's collation, every row once, a stop and a
go, a poison row quarantined and shown as its text, and what is refused."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from airflow_spreader.core.keys import is_text_image
from airflow_spreader.tools.cli import main
from tests.airflow.conftest import TABLE, Source
from tests.airflow.test_backfill_dag import run_cycle, run_cycle_stopped_at_batch, run_cycles_until_finished
from tests.airflow.test_poison_rows import CONFIG as POISON_CONFIG
from tests.airflow.test_poison_rows import POISON_FILE
from tests.sql.test_text_walk import KEYS

pytestmark = pytest.mark.airflow

RATE = {"per_second_on_peak": 10, "per_second_off_peak": 10, "max_tasks_per_cycle": 4}


def create_text_keys(source: Source, keys: list[str], column: str = "TEXT") -> None:
    with source.engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {TABLE}"))
        conn.execute(sa.text(f"CREATE TABLE {TABLE} (id {column} PRIMARY KEY, counter INTEGER NOT NULL, "
                             "processed_at DOUBLE PRECISION)"))
        conn.execute(sa.text(f"INSERT INTO {TABLE} (id, counter) VALUES (:id, 0)"), [{"id": k} for k in keys])


def counters(source: Source) -> dict[str, int]:
    with source.engine.connect() as conn:
        return {str(k): n for k, n in conn.execute(sa.text(f"SELECT id, counter FROM {TABLE}")).all()}


@pytest.mark.parametrize("source, column", [
    ("sqlite", "TEXT"),
    pytest.param("postgres", 'TEXT COLLATE "en-x-icu"', marks=pytest.mark.postgres),
    pytest.param("mariadb", "VARCHAR(40)", marks=pytest.mark.mariadb),  # utf8mb4_general_ci
], indirect=["source"])
def test_text_keys_are_walked_in_the_collations_order_each_row_exactly_once(source: Source, column: str) -> None:
    create_text_keys(source, KEYS, column)
    source.set_config(batch_size=16, duration=2, batching="rows", **RATE)  # 20 batches a cycle: one cycle
    assert run_cycle(source) == "success"
    progress = source.tracker.progress()
    assert progress.finished and progress.max_id is not None and is_text_image(progress.max_id)
    assert progress.batches_planned == progress.batches_done == 10 + 1  # 156 rows / 16, and the empty bottom
    assert progress.rows_done == len(KEYS) and progress.ids_done == 0
    assert counters(source) == dict.fromkeys(KEYS, 1)
    with source.engine.connect() as conn:  # one text-ledger row a batch with rows (not the empty bottom one)
        recorded = conn.execute(sa.text("SELECT low, high, rows_done FROM spreader_ledger_text WHERE backfill = :b "
                                        "AND generation = :g ORDER BY high"),
                                {"b": source.dag_id, "g": source.tracker.generation()}).all()
        assert [n for _, _, n in recorded] == [156 - 16 * 9] + [16] * 9
        assert [low for low, _, _ in recorded] == [None] + [high for _, high, _ in recorded[:-1]], "disjoint"


@pytest.mark.parametrize("source", ["sqlite"], indirect=True)
def test_ids_batching_on_a_text_key_fails_the_first_cycle_telling_to_set_rows(
        source: Source, capfd: pytest.CaptureFixture) -> None:
    create_text_keys(source, ["a", "B", "c"])
    source.set_config(batch_size=10, duration=2, **RATE)  # "ids", the default
    assert run_cycle(source) == "failed"
    assert not source.tracker.is_started()
    assert set(counters(source).values()) == {0}
    out, err = capfd.readouterr()
    assert (f"ConfigError: invalid spreader configuration: batching: key column 'id' of table '{TABLE}' holds "
            "text: id arithmetic cannot cut them; set \"rows\"") in out + err
    source.set_config(batch_size=10, duration=2, batching="rows", follow_new_rows=True, **RATE)
    assert run_cycle(source) == "failed"
    assert not source.tracker.is_started()
    assert "follow_new_rows: key column 'id' of table" in "".join(capfd.readouterr())


@pytest.mark.parametrize("source", ["sqlite"], indirect=True)
def test_a_stop_mid_cycle_on_a_text_key_hands_the_rest_back_and_go_finishes_exactly_once(source: Source) -> None:
    keys = KEYS[:80]  # 8 batches in 2 task instances of 4 (see the UUID test of this name)
    create_text_keys(source, keys)
    source.set_config(batch_size=10, duration=8, per_second_on_peak=1, per_second_off_peak=1,
                      max_tasks_per_cycle=2, lead_seconds=8, batching="rows")
    run_cycle_stopped_at_batch(source, 3, go_after=2)  # the 3rd batch's work stops the backfill
    assert 3 <= source.tracker.progress().batches_done < 8, "the stop came mid-cycle"
    run_cycles_until_finished(source, 3)
    progress = source.tracker.progress()
    assert progress.finished and progress.counters.get("batches_replanned", 0) > 0
    assert (progress.batches_done, progress.rows_done) == (9, 80), "the handed-back ranges kept their bounds"
    assert counters(source) == dict.fromkeys(keys, 1)


@pytest.mark.parametrize("source", ["poison"], indirect=True)
def test_a_poison_row_under_a_text_key_is_quarantined_by_bisection_and_reads_as_its_text(
        source: Source, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    keys = KEYS[:40]
    create_text_keys(source, keys)
    poison = "é"
    POISON_FILE.write_text(json.dumps([poison]))  # the work raises on it (SQLite's BINARY order is Python's)
    try:
        source.set_config(**{**POISON_CONFIG, "batch_size": 8, "batching": "rows"})
        for _ in range(6):
            run_cycle(source)
            progress = source.tracker.progress()
            if progress.exhausted and progress.in_flight == 0:
                break
    finally:
        POISON_FILE.unlink(missing_ok=True)
    assert counters(source) == {k: 0 if k == poison else 1 for k in keys}
    assert (progress.keys_quarantined, progress.rows_done, source.tracker.failed_ranges()) == (1, 39, [])
    capsys.readouterr()
    assert main(["--redis-url", redis_url, "--json", "status", source.dag_id]) == 0
    [shown] = json.loads(capsys.readouterr().out)["quarantine"]["keys"]
    assert shown["label"] == poison
    assert main(["--redis-url", redis_url, "status", source.dag_id]) == 0
    assert f"quarantine {poison}  1 attempt  PoisonRow: row {poison}" in capsys.readouterr().out
