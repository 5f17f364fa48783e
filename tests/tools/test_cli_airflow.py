"""The console with Airflow's metadata DB: the Variable (config), the DAG's paused flag, status, plan preview.

A real migrated SQLite metadata DB (the ``airflow_db`` fixture) and real Redis; the Variables and DAG
rows are written with Airflow's server-side models, as an operator's `airflow variables set` would.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import airflow.settings  # noqa: F401 - Airflow sets its logging up on import: now, not inside a capsys test
import pytest
import redis

from airflow_spreader.core.config import SpreadConfig
from airflow_spreader.core.names import config_variable as variable_key
from airflow_spreader.state.tracker import Tracker
from airflow_spreader.tools.cli import main
from tests.airflow.conftest import airflow_db, redis_connection  # noqa: F401 - airflow_db is a fixture

pytestmark = pytest.mark.usefixtures("airflow_db")

ALWAYS_ON_PEAK = {"on_peak_wday_begin": 0, "on_peak_wday_end": 6, "on_peak_hour_begin": 0, "on_peak_hour_end": 23}
CONFIG = {"batch_size": 100, "duration": 60, "per_second_on_peak": 2, "per_second_off_peak": 5, **ALWAYS_ON_PEAK}


class Backfill:
    """A backfill's three homes: its tracker in Redis, its Variable and its DAG row in Airflow."""

    def __init__(self, tracker: Tracker, url: str) -> None:
        self.tracker = tracker
        self.name = tracker.name
        self.url = url

    def set_variable(self, value: Any, description: str | None = "set by the test") -> None:
        from airflow.models.variable import Variable

        Variable.set(variable_key(self.name), value if isinstance(value, str) else json.dumps(value),
                     description=description)

    def variable(self) -> tuple[str, str | None]:
        from airflow.models.variable import Variable
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            row = session.scalars(select(Variable).where(Variable.key == variable_key(self.name))).one()
            return row.val, row.description

    def set_paused(self, paused: bool) -> None:
        from airflow.models.dag import DagModel
        from airflow.models.dagbundle import DagBundleModel
        from airflow.utils.session import create_session

        with create_session() as session:
            if session.get(DagBundleModel, "spreader-cli-tests") is None:
                session.add(DagBundleModel(name="spreader-cli-tests"))
                session.flush()
            session.merge(DagModel(dag_id=self.name, bundle_name="spreader-cli-tests", is_paused=paused))

    def start(self, max_id: int = 10_000) -> None:
        """Started now on the real clock: 4 batches of 100 claimed, 3 done."""
        self.tracker.start(max_id=max_id)
        claim = self.tracker.claim_cycle(batch_size=100, per_second=4, duration=1,
                                         begin_at=datetime.now(timezone.utc), lease_seconds=600)
        for batch in claim.batches[:3]:
            self.tracker.complete(batch, rows=batch.size - 1)

    def cli(self, *args: str) -> int:
        return main(["--redis-url", self.url, *args])


@pytest.fixture
def backfill(redis_client: redis.Redis, redis_url: str, backfill_name: str) -> Iterator[Backfill]:
    from airflow.models.variable import Variable

    name = backfill_name.replace("-", "_")
    item = Backfill(Tracker(name, redis_client), redis_url)
    yield item
    item.tracker.reset()
    Variable.delete(variable_key(name))


def output(capsys: pytest.CaptureFixture[str]) -> Any:
    out, err = capsys.readouterr()
    assert err == ""
    return json.loads(out)


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    _, err = capsys.readouterr()
    assert len(err.splitlines()) == 1, err
    return err.strip()


# -- config --------------------------------------------------------------------------------------------------


def test_config_shows_the_variable_with_its_defaults(backfill: Backfill, capsys: pytest.CaptureFixture[str]) -> None:
    backfill.set_variable({"batch_size": 100, "duration": 60, "per_second_on_peak": 2, "per_second_off_peak": 5})
    assert backfill.cli("config", backfill.name, "--json") == 0
    shown = output(capsys)
    assert shown["config"] == SpreadConfig(batch_size=100, duration=60, per_second_on_peak=2,
                                           per_second_off_peak=5).to_dict()
    assert backfill.cli("config", backfill.name) == 0
    text = capsys.readouterr().out
    assert f"{variable_key(backfill.name)} (read at the start of every cycle):" in text
    assert "on_peak_timezone     \"UTC\"" in text


def test_config_set_validates_and_writes_the_variable(backfill: Backfill, capsys: pytest.CaptureFixture[str]) -> None:
    backfill.set_variable(CONFIG)
    assert backfill.cli("config", backfill.name, "--set", "batch_size=20", "--set", "per_second_on_peak=4") == 0
    assert capsys.readouterr().out.splitlines()[1:] == ["  batch_size: 100 -> 20", "  per_second_on_peak: 2 -> 4"]
    text, description = backfill.variable()
    assert SpreadConfig.from_json(text) == SpreadConfig.from_dict({**CONFIG, "batch_size": 20, "per_second_on_peak": 4})
    assert description == "set by the test"  # kept


def test_config_set_takes_text_values_as_they_are(backfill: Backfill, capsys: pytest.CaptureFixture[str]) -> None:
    backfill.set_variable(CONFIG)
    assert backfill.cli("config", backfill.name, "--set", "on_peak_timezone=Europe/Paris", "--json") == 0
    assert output(capsys)["changed"] == {"on_peak_timezone": ["UTC", "Europe/Paris"]}


def test_config_set_refuses_bad_values_naming_each_and_writes_nothing(backfill: Backfill,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    backfill.set_variable(CONFIG)
    before = backfill.variable()
    assert backfill.cli("config", backfill.name, "--set", "batch_size=0", "--set", "per_second_on_peak=fast") == 2
    assert error_line(capsys) == ("airflow-spreader: invalid spreader configuration: batch_size=0: must be an integer "
                                  ">= 1; per_second_on_peak='fast': must be a finite number > 0")
    assert backfill.variable() == before


@pytest.mark.parametrize(("assignment", "message"), [
    ("batch_sise=20", "batch_sise: unknown field (allowed: batch_size, duration, "),
    ("batch_size", "--set expects FIELD=VALUE, got 'batch_size'"),
])
def test_config_set_refuses_unknown_fields_and_bad_syntax(backfill: Backfill, capsys: pytest.CaptureFixture[str],
                                                          assignment: str, message: str) -> None:
    backfill.set_variable(CONFIG)
    assert backfill.cli("config", backfill.name, "--set", assignment) == 2
    assert message in error_line(capsys)


def test_config_set_can_repair_an_invalid_variable(backfill: Backfill, capsys: pytest.CaptureFixture[str]) -> None:
    backfill.set_variable({**CONFIG, "batch_size": "100"})
    assert backfill.cli("config", backfill.name) == 2
    assert "batch_size='100': must be an integer >= 1" in capsys.readouterr().err
    assert backfill.cli("config", backfill.name, "--set", "batch_size=100") == 0
    assert SpreadConfig.from_json(backfill.variable()[0]).batch_size == 100


def test_config_of_a_backfill_without_variable_says_who_creates_it(backfill: Backfill,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert backfill.cli("config", backfill.name, "--set", "batch_size=20") == 1
    assert error_line(capsys) == (f"airflow-spreader: no Variable {variable_key(backfill.name)}: the first run of the "
                                  f"DAG {backfill.name} creates it from its initial_config (or --dag-id names another "
                                  "DAG)")


def test_config_refuses_when_an_environment_variable_hides_the_variable(
        backfill: Backfill, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    backfill.set_variable(CONFIG)
    shadow = f"AIRFLOW_VAR_{variable_key(backfill.name).upper()}"
    monkeypatch.setenv(shadow, json.dumps({**CONFIG, "batch_size": 7}))
    assert backfill.cli("config", backfill.name, "--set", "batch_size=20") == 1
    assert error_line(capsys) == f"airflow-spreader: the environment variable {shadow} hides the Variable here: " \
                                 "unset it to read or change the Variable in Airflow"
    assert SpreadConfig.from_json(backfill.variable()[0]).batch_size == 100


def test_the_console_and_the_plan_task_name_the_same_variable() -> None:
    from airflow_spreader.dag_factory import config_variable as used_by_the_dag

    assert variable_key("users_backfill") == used_by_the_dag("users_backfill") == "spreader__users_backfill"


# -- status --------------------------------------------------------------------------------------------------


def test_status_of_a_running_backfill(backfill: Backfill, capsys: pytest.CaptureFixture[str]) -> None:
    backfill.set_variable(CONFIG)
    backfill.set_paused(False)
    backfill.start()
    before = datetime.now(timezone.utc)
    assert backfill.cli("status", backfill.name, "--json") == 0
    status = output(capsys)
    assert (status["state"], status["progress"]["ids_done"], status["progress"]["rows_done"]) == ("running", 300, 297)
    assert status["ids_per_second"]["since_start"] > 0
    assert status["in_force"] == {"on_peak": True, "per_second": 2, "batch_size": 100, "ids_per_second": 200.0,
                                  "timezone": "UTC", "next_change": None, "next_per_second": 5,
                                  "calendar_per_second": 2, "rate_factor": 1.0, "configured_batch_size": 100}
    # Just started, too early to judge the pace: 9,700 ids left at 200 ids/s.
    eta = status["eta"]
    assert (eta["state"], eta["efficiency"]) == ("estimated", None)
    expected = before + timedelta(seconds=9_700 / 200)
    assert abs(datetime.fromisoformat(eta["finish"]) - expected) < timedelta(seconds=30)
    assert status["airflow"] == {"paused": False, "paused_problem": None, "config_problem": None}


def test_status_text_reads_at_a_glance(backfill: Backfill, capsys: pytest.CaptureFixture[str]) -> None:
    backfill.set_variable(CONFIG)
    backfill.set_paused(False)
    backfill.start()
    batch = backfill.tracker.claim_cycle(batch_size=100, per_second=1, duration=1,
                                         begin_at=datetime.now(timezone.utc), lease_seconds=600).batches[0]
    backfill.tracker.begin(batch)
    backfill.tracker.fail(batch, "ValueError: boom\nmore detail", final=True)
    assert backfill.cli("status", backfill.name) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{backfill.name}  running"
    assert lines[1] == "  progress  [..............................]   3.0%  300 of 10,000 ids (297 rows)"
    assert lines[3] == "  in force  on peak: 2 batches/s x 100 ids = 200.0 ids/s"
    assert lines[4] == ("  batches   3 done, 1 in flight, 1 failed (100 ids), 2 cycles, 0 attempts lost (lease ran "
                        "out: a task died or was killed)")
    assert lines[5].startswith("  ETA       ") and "walking the peak calendar at the configured rates" in lines[5]
    assert lines[6] == f"  failed    {batch.begin_id}-{batch.end_id}  1 attempt  ValueError: boom"
    assert lines[7] == f"  airflow   DAG {backfill.name} not paused"


@pytest.mark.parametrize(("setup", "state", "eta_state", "why"), [
    ("pause", "paused", "unknown", "paused"),
    ("stop", "stopped", "unknown", "stopped"),
    ("finish", "done", "done", "finished"),
    ("fail", "failed", "unknown", "only failed ranges are left (100 ids)"),
])
def test_status_states(backfill: Backfill, capsys: pytest.CaptureFixture[str], setup: str, state: str,
                       eta_state: str, why: str) -> None:
    backfill.set_variable(CONFIG)
    backfill.set_paused(setup == "pause")
    backfill.tracker.start(max_id=200)
    batches = backfill.tracker.claim_cycle(batch_size=100, per_second=2, duration=1, lease_seconds=600,
                                           begin_at=datetime.now(timezone.utc)).batches
    backfill.tracker.complete(batches[0])
    if setup == "stop":
        backfill.tracker.stop()
    if setup == "finish":
        backfill.tracker.complete(batches[1])
    if setup == "fail":
        backfill.tracker.begin(batches[1])
        backfill.tracker.fail(batches[1], "boom", final=True)
    assert backfill.cli("status", backfill.name, "--json") == 0
    status = output(capsys)
    assert (status["state"], status["eta"]["state"]) == (state, eta_state)
    assert why in status["eta"]["reason"]


def test_status_of_every_backfill_lists_this_one(backfill: Backfill, capsys: pytest.CaptureFixture[str]) -> None:
    backfill.start()
    assert backfill.cli("status", "--json") == 0
    mine = [s for s in output(capsys) if s["backfill"] == backfill.name]
    assert len(mine) == 1
    assert mine[0]["airflow"]["config_problem"] == f"no Variable {variable_key(backfill.name)} (the DAG's first run " \
                                                   "creates it)"


def test_status_of_a_configured_backfill_not_started_yet(backfill: Backfill,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    backfill.set_variable(CONFIG)
    assert backfill.cli("status", backfill.name, "--json") == 0
    status = output(capsys)
    assert (status["state"], status["eta"]["state"]) == ("not started", "unknown")


def test_status_of_an_unknown_backfill_is_an_error(backfill: Backfill, capsys: pytest.CaptureFixture[str]) -> None:
    assert backfill.cli("status", backfill.name) == 1
    assert error_line(capsys).startswith(f"airflow-spreader: unknown backfill {backfill.name!r} in Redis at ")


def test_status_reads_the_variable_of_another_dag_id(backfill: Backfill, capsys: pytest.CaptureFixture[str]) -> None:
    backfill.start()
    assert backfill.cli("status", backfill.name, "--dag-id", "some_other_dag", "--json") == 0
    status = output(capsys)
    assert status["dag_id"] == "some_other_dag"
    assert status["airflow"]["config_problem"] == \
        "no Variable spreader__some_other_dag (the DAG's first run creates it)"
    assert status["airflow"]["paused_problem"] == "no DAG 'some_other_dag' in Airflow (not parsed yet, or another " \
                                                  "--dag-id)"


def test_a_backfill_named_apart_from_its_dag_is_found_through_the_dag_its_tracker_recorded(
        backfill: Backfill, capsys: pytest.CaptureFixture[str]) -> None:
    from airflow.models.variable import Variable

    dag_id = f"{backfill.name}_dag"
    backfill.start()
    backfill.tracker.record_dag(dag_id)  # as the plan task of backfill_dag(dag_id, backfill=name) does
    Variable.set(variable_key(dag_id), json.dumps(CONFIG), description="set by the test")
    try:
        assert backfill.cli("status", backfill.name, "--json") == 0
        status = output(capsys)
        assert status["dag_id"] == dag_id
        assert status["airflow"]["config_problem"] is None
        assert status["in_force"]["batch_size"] == 100
        assert backfill.cli("status", "--json") == 0
        assert [s["dag_id"] for s in output(capsys) if s["backfill"] == backfill.name] == [dag_id]
        assert backfill.cli("config", backfill.name, "--set", "batch_size=20") == 0
        capsys.readouterr()
        assert SpreadConfig.from_json(Variable.get(variable_key(dag_id))).batch_size == 20
        assert backfill.cli("plan", backfill.name, "--dry-run", "--json") == 0
        first = output(capsys)["batches"][0]
        assert first["end_id"] - first["begin_id"] + 1 == 20, "the plan preview reads the DAG's Variable"
    finally:
        Variable.delete(variable_key(dag_id))


# -- plan --dry-run ------------------------------------------------------------------------------------------


def test_plan_dry_run_shows_the_next_cycle_without_claiming_it(backfill: Backfill,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    backfill.set_variable({**CONFIG, "duration": 3})  # 2 batches/s for 3 s: 6 batches
    backfill.tracker.start(max_id=1000)
    before = backfill.tracker.progress()
    assert backfill.cli("plan", backfill.name, "--dry-run", "--json") == 0
    plan = output(capsys)
    begin = datetime.fromisoformat(plan["begin_at"])
    assert [(b["begin_id"], b["end_id"]) for b in plan["batches"]] == [(901, 1000), (801, 900), (701, 800),
                                                                     (601, 700), (501, 600), (401, 500)]
    assert [(datetime.fromisoformat(b["run_at"]) - begin).total_seconds() for b in plan["batches"]] == \
        [0, 0, 1, 1, 2, 2]
    assert (plan["cursor_before"], plan["cursor_after"], plan["on_peak"]) == (1000, 400, True)
    assert backfill.tracker.progress() == before  # nothing claimed
    assert backfill.cli("plan", backfill.name, "--dry-run") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "  6 batches (0 re-planned), cursor 1000 -> 400"
    assert lines[3].split()[2:] == ["901", "1000"]


def test_plan_dry_run_begins_where_the_cycle_under_way_ends(backfill: Backfill,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    backfill.set_variable(CONFIG)
    backfill.tracker.start(max_id=100_000)
    under_way = backfill.tracker.claim_cycle(batch_size=100, per_second=1, duration=30,
                                             begin_at=datetime.now(timezone.utc), lease_seconds=600)
    assert under_way.begin_at is not None
    assert backfill.cli("plan", backfill.name, "--dry-run", "--json") == 0
    plan = output(capsys)
    ends = under_way.begin_at + timedelta(seconds=30)
    assert datetime.fromisoformat(plan["begin_at"]) == ends == datetime.fromisoformat(plan["batches"][0]["run_at"])


def test_plan_dry_run_of_a_stopped_backfill_plans_nothing(backfill: Backfill,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    backfill.set_variable(CONFIG)
    backfill.tracker.start(max_id=1000)
    backfill.tracker.stop()
    assert backfill.cli("plan", backfill.name, "--dry-run", "--json") == 0
    plan = output(capsys)
    assert (plan["stopped"], plan["batches"]) == (True, [])


def test_plan_dry_run_shows_rows_batching_boundaries_read_from_the_recorded_table(
        backfill: Backfill, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlalchemy as sa

    from airflow_spreader.state.source_record import SourceRecord, record_source

    engine = sa.create_engine(f"sqlite:///{tmp_path}/sparse.db")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE sparse (id INTEGER PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO sparse (id) VALUES (:id)"), [{"id": i * 10**9} for i in range(1, 1001)])
    monkeypatch.setenv("AIRFLOW_CONN_SPREADER_CLI_SPARSE", json.dumps({"conn_type": "sqlite",
                                                                      "host": f"{tmp_path}/sparse.db"}))
    backfill.set_variable({**CONFIG, "duration": 2, "batching": "rows"})  # 4 batches of 100 rows
    backfill.tracker.start(max_id=1000 * 10**9, min_id=10**9)
    assert backfill.cli("plan", backfill.name, "--dry-run") == 1  # no plan has recorded the table yet
    assert "no plan has recorded its source table" in error_line(capsys)
    record_source(backfill.tracker, SourceRecord("spreader_cli_sparse", "sparse", "id"))
    assert backfill.cli("plan", backfill.name, "--dry-run", "--json") == 0
    plan = output(capsys)
    assert plan["batching"] == "rows"
    assert [(b["begin_id"], b["end_id"]) for b in plan["batches"]] == [
        (900 * 10**9 + 1, 1000 * 10**9), (800 * 10**9 + 1, 900 * 10**9), (700 * 10**9 + 1, 800 * 10**9),
        (600 * 10**9 + 1, 700 * 10**9)]
    assert plan["cursor_after"] == 600 * 10**9
    assert backfill.tracker.progress().batches_planned == 0  # nothing claimed
    assert backfill.cli("plan", backfill.name, "--dry-run") == 0
    assert "batches of rows read from the key's index" in capsys.readouterr().out


def test_plan_dry_run_of_a_text_key_shows_its_texts_and_mints_nothing(
        backfill: Backfill, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlalchemy as sa

    from airflow_spreader.state.source_record import SourceRecord, record_source
    from airflow_spreader.state.text_keys import TextKeyStore

    engine = sa.create_engine(f"sqlite:///{tmp_path}/words.db")
    words = ["a", "B", "c", "é", "_x", " a", "zz"]  # SQLite's BINARY order: é zz c a _x B ' a'
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE words (id TEXT PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO words (id) VALUES (:id)"), [{"id": w} for w in words])
    monkeypatch.setenv("AIRFLOW_CONN_SPREADER_CLI_WORDS", json.dumps({"conn_type": "sqlite",
                                                                     "host": f"{tmp_path}/words.db"}))
    backfill.set_variable({**CONFIG, "batch_size": 2, "duration": 2, "batching": "rows"})  # 4 slots
    store = TextKeyStore(backfill.tracker)
    backfill.tracker.start(*store.begin("é"))
    record_source(backfill.tracker, SourceRecord("spreader_cli_words", "words", "id"))
    minted = store.entries()
    assert backfill.cli("plan", backfill.name, "--dry-run", "--json") == 0
    plan = output(capsys)
    assert [b["label"] for b in plan["batches"]] == ["(c..é]", "(_x..c]", "( a.._x]", "(.. a]"]  # é, zz | c, a | ...
    assert (plan["cursor_before_label"], plan["cursor_after_label"]) == ("é", "(below all)")
    assert store.entries() == minted  # a preview mints nothing
    assert backfill.cli("plan", backfill.name, "--dry-run") == 0
    assert "  4 batches (0 re-planned), cursor é -> (below all)" in capsys.readouterr().out


def test_plan_dry_run_needs_the_configuration(backfill: Backfill, capsys: pytest.CaptureFixture[str]) -> None:
    backfill.tracker.start(max_id=1000)
    assert backfill.cli("plan", backfill.name, "--dry-run") == 1
    assert error_line(capsys).startswith("airflow-spreader: cannot preview without the configuration: no Variable")


# -- Redis through a connection kept in the metadata DB ------------------------------------------------------


@pytest.fixture
def stored_connection(redis_url: str) -> Iterator[str]:
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    conn_id = "spreader_cli_stored_redis"
    spec = json.loads(redis_connection(redis_url))
    with create_session() as session:
        session.merge(Connection(conn_id=conn_id, conn_type="redis", host=spec["host"], port=spec["port"],
                                 password=spec["password"], extra=json.dumps(spec["extra"])))
    yield conn_id
    os.environ.pop(f"AIRFLOW_CONN_{conn_id.upper()}", None)  # handed to the hook by the console
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == conn_id).delete()


def test_redis_from_a_connection_in_the_metadata_db(backfill: Backfill, stored_connection: str,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    backfill.start()
    assert main(["--redis-conn-id", stored_connection, "stop", backfill.name]) == 0
    assert backfill.tracker.is_stopped()


def test_no_redis_anywhere_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert main(["--redis-conn-id", "spreader_cli_nowhere", "stop", "x"]) == 1
    assert error_line(capsys) == ("airflow-spreader: no Redis: pass --redis-url or set REDIS_URL, or define the "
                                  "Airflow connection 'spreader_cli_nowhere' (AirflowNotFoundException: The conn_id "
                                  "`spreader_cli_nowhere` isn't defined)")


# -- restore and reset: the Airflow-side checkpoint ----------------------------------------------------------


def set_checkpoint(name: str, **fields: Any) -> str:
    from airflow.models.variable import Variable

    key = f"{variable_key(name)}__checkpoint"
    checkpoint = {"low_water": 7_000, "min_id": 1, "max_id": 10_000, "finished": False,
                  "at": "2026-11-20T10:00:00+00:00"}
    Variable.set(key, json.dumps({**checkpoint, **fields}))
    return key


def test_restore_starts_a_lost_backfill_again_from_its_checkpoint(
        backfill: Backfill, capsys: pytest.CaptureFixture[str]) -> None:
    from airflow.models.variable import Variable

    key = set_checkpoint(backfill.name)
    assert backfill.cli("restore", backfill.name, "--json") == 0
    assert output(capsys)["cursor"] == 7_000
    progress = backfill.tracker.progress()
    assert (progress.cursor, progress.min_id, progress.batches_done) == (7_000, 1, 0)
    assert backfill.cli("restore", backfill.name) == 1  # the state is back: a second restore has nothing to do
    assert error_line(capsys) == (f"airflow-spreader: {backfill.name} still has its state in Redis: nothing to "
                                  f"restore (airflow-spreader status {backfill.name})")
    Variable.delete(key)


def test_restore_without_a_checkpoint_or_of_a_finished_backfill_changes_nothing(
        backfill: Backfill, capsys: pytest.CaptureFixture[str]) -> None:
    from airflow.models.variable import Variable

    assert backfill.cli("restore", backfill.name) == 1
    assert error_line(capsys).startswith(f"airflow-spreader: no checkpoint Variable {variable_key(backfill.name)}"
                                         "__checkpoint")
    key = set_checkpoint(backfill.name, finished=True)
    assert backfill.cli("restore", backfill.name) == 1
    assert "finished (checkpoint 2026-11-20T10:00:00+00:00): nothing to restore" in error_line(capsys)
    assert not backfill.tracker.is_started()
    Variable.delete(key)


def test_reset_also_deletes_the_checkpoint_so_the_next_run_starts_over(
        backfill: Backfill, capsys: pytest.CaptureFixture[str]) -> None:
    from airflow.models.variable import Variable

    backfill.start()
    key = set_checkpoint(backfill.name)
    assert backfill.cli("reset", backfill.name, "--yes", "--json") == 0
    assert output(capsys) == {"backfill": backfill.name, "reset": True, "checkpoint_deleted": True}
    assert not backfill.tracker.is_started()
    assert Variable.get(key, default_var=None) is None


def test_plan_dry_run_of_a_uuid_key_shows_its_boundaries_as_uuids(
        backfill: Backfill, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import uuid

    import sqlalchemy as sa

    from airflow_spreader.core.keys import from_key
    from airflow_spreader.state.source_record import SourceRecord, record_source

    keys = sorted(str(uuid.UUID(int=i * 2**100 + 0xABC)) for i in range(1, 1001))
    engine = sa.create_engine(f"sqlite:///{tmp_path}/uuids.db")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE uuids (id TEXT PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO uuids (id) VALUES (:id)"), [{"id": k} for k in keys])
    monkeypatch.setenv("AIRFLOW_CONN_SPREADER_CLI_UUIDS", json.dumps({"conn_type": "sqlite",
                                                                     "host": f"{tmp_path}/uuids.db"}))
    backfill.set_variable({**CONFIG, "duration": 2, "batching": "rows"})  # 4 batches of 100 rows
    backfill.tracker.start(max_id=from_key(keys[-1]), min_id=from_key(keys[0]))
    record_source(backfill.tracker, SourceRecord("spreader_cli_uuids", "uuids", "id"))
    assert backfill.cli("plan", backfill.name, "--dry-run", "--json") == 0
    plan = output(capsys)
    assert [b["end_id"] for b in plan["batches"]] == [from_key(keys[-1 - 100 * i]) for i in range(4)]
    assert plan["cursor_after"] == from_key(keys[-401])  # exact: JSON keeps the whole integer
    assert backfill.cli("plan", backfill.name, "--dry-run") == 0
    text = capsys.readouterr().out
    assert f"cursor {keys[-1]} -> {keys[-401]}" in text and keys[-101] in text
