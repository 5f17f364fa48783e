"""A halted backfill in the console: ``status`` says so, ``config --replace`` repairs, ``resume`` starts it again.

Real Redis and a real migrated SQLite metadata DB, with the fixtures of test_cli_airflow.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from airflow_spreader.core.config import SpreadConfig
from airflow_spreader.core.names import config_variable as variable_key
from tests.airflow.conftest import airflow_db, redis_connection  # noqa: F401 - fixtures
from tests.tools import test_cli_airflow
from tests.tools.test_cli_airflow import CONFIG, Backfill, error_line, output

pytestmark = pytest.mark.usefixtures("airflow_db")
backfill = test_cli_airflow.backfill  # the fixture

BAD = "ConfigError: invalid spreader configuration: batch_size=0: must be an integer >= 1"


def halted(item: Backfill) -> None:
    item.set_variable({**CONFIG, "batch_size": 0})
    item.set_paused(False)
    item.start()
    item.tracker.record_halt(BAD)


def test_status_of_a_halted_backfill_says_why_and_how_to_resume(backfill: Backfill,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    halted(backfill)
    assert backfill.cli("status", backfill.name, "--json") == 0
    status = output(capsys)
    hint = (f"the last plan failed: {BAD}; fix the Variable (airflow-spreader config {backfill.name} "
            f"--set/--replace), then airflow-spreader resume {backfill.name}")
    assert status["state"] == "halted"
    assert (status["halt"]["reason"], status["halt"]["message"]) == (BAD, hint)
    assert abs(datetime.fromisoformat(status["halt"]["at"]) - datetime.now(timezone.utc)).total_seconds() < 60
    assert (status["eta"]["state"], status["eta"]["finish"], status["eta"]["reason"]) == ("unknown", None,
                                                                                        f"halted: {hint}")
    assert backfill.cli("status", backfill.name) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{backfill.name}  halted"
    assert lines[1].startswith("  halted at ") and lines[1].endswith(f": {hint}")
    assert [line for line in lines if line.startswith("  ETA")] == [f"  ETA       none: halted: {hint}"]


def test_a_cleared_halt_is_running_again(backfill: Backfill, capsys: pytest.CaptureFixture[str]) -> None:
    halted(backfill)
    backfill.set_variable(CONFIG)
    backfill.tracker.clear_halt()
    assert backfill.cli("status", backfill.name, "--json") == 0
    status = output(capsys)
    assert (status["state"], status["halt"], status["eta"]["state"]) == ("running", None, "estimated")


def test_status_shows_lost_attempts_next_to_errors(backfill: Backfill, capsys: pytest.CaptureFixture[str]) -> None:
    backfill.set_variable(CONFIG)
    backfill.start()
    assert backfill.cli("status", backfill.name, "--json") == 0
    assert output(capsys)["progress"]["attempts_lost"] == 0  # no such counter yet: 0
    backfill.tracker.redis.hincrby(backfill.tracker.keys.stats, "attempts_lost", 2)
    assert backfill.cli("status", backfill.name, "--json") == 0
    assert output(capsys)["progress"]["attempts_lost"] == 2
    assert backfill.cli("status", backfill.name) == 0
    assert ("  batches   3 done, 1 in flight, 0 failed (0 ids), 1 cycle, 2 attempts lost (lease ran out: a task died "
            "or was killed)") in capsys.readouterr().out.splitlines()


# -- config --replace ------------------------------------------------------------------------------------------


def test_config_replace_repairs_a_variable_whose_json_is_broken(backfill: Backfill,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    backfill.set_variable('{"batch_size": 100,')
    assert backfill.cli("config", backfill.name, "--set", "batch_size=100") == 2
    assert error_line(capsys) == (f"airflow-spreader: the Variable {variable_key(backfill.name)} is not a JSON object, "
                                  "so there is no field to change in it; replace it whole: airflow-spreader config "
                                  f"{backfill.name} --replace '{{\"batch_size\": ...}}'")
    assert backfill.cli("config", backfill.name, "--replace", json.dumps(CONFIG), "--json") == 0
    result = output(capsys)
    assert result["config"] == SpreadConfig.from_dict(CONFIG).to_dict()
    assert result["changed"]["batch_size"] == [None, 100]
    text, description = backfill.variable()
    assert SpreadConfig.from_json(text) == SpreadConfig.from_dict(CONFIG)
    assert description == "set by the test"  # kept


def test_config_replace_of_a_valid_variable_tells_what_changed(backfill: Backfill,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    backfill.set_variable(CONFIG)
    assert backfill.cli("config", backfill.name, "--replace", json.dumps({**CONFIG, "batch_size": 20})) == 0
    assert capsys.readouterr().out.splitlines()[1:] == ["  batch_size: 100 -> 20"]
    assert SpreadConfig.from_json(backfill.variable()[0]).batch_size == 20


@pytest.mark.parametrize(("given", "message"), [
    ('{"batch_size": 100,', "--replace expects a JSON object, got '{\"batch_size\": 100,': Expecting property name"),
    ("[1, 2]", "--replace expects a JSON object, got list '[1, 2]'"),
    (json.dumps({**CONFIG, "batch_size": 0}), "invalid spreader configuration: batch_size=0: must be an integer >= 1"),
    (json.dumps({**CONFIG, "batch_sise": 5}), "batch_sise: unknown field (allowed: batch_size, "),
])
def test_config_replace_refuses_bad_json_or_an_invalid_config_and_writes_nothing(
        backfill: Backfill, capsys: pytest.CaptureFixture[str], given: str, message: str) -> None:
    backfill.set_variable('{"broken')
    before = backfill.variable()
    assert backfill.cli("config", backfill.name, "--replace", given) == 2
    assert message in error_line(capsys)
    assert backfill.variable() == before


def test_config_set_and_replace_do_not_go_together(backfill: Backfill, capsys: pytest.CaptureFixture[str]) -> None:
    backfill.set_variable(CONFIG)
    assert backfill.cli("config", backfill.name, "--set", "batch_size=5", "--replace", json.dumps(CONFIG)) == 2
    assert "--set and --replace do not go together" in error_line(capsys)


# -- resume ----------------------------------------------------------------------------------------------------


def test_resume_refuses_while_the_variable_is_invalid_naming_its_problems(backfill: Backfill,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    halted(backfill)
    assert backfill.cli("resume", backfill.name) == 2
    assert error_line(capsys) == (f"airflow-spreader: not resumed: Variable {variable_key(backfill.name)}: invalid "
                                  "spreader configuration: batch_size=0: must be an integer >= 1; fix it with "
                                  f"airflow-spreader config {backfill.name} --set FIELD=VALUE (or --replace JSON)")
    assert backfill.tracker.halt() is not None  # still halted


def test_resume_refuses_while_the_backfill_is_stopped(backfill: Backfill, capsys: pytest.CaptureFixture[str]) -> None:
    halted(backfill)
    backfill.set_variable(CONFIG)
    backfill.tracker.stop()
    assert backfill.cli("resume", backfill.name) == 1
    assert error_line(capsys) == (f"airflow-spreader: not resumed: {backfill.name} is stopped; clear the stop flag "
                                  f"first with airflow-spreader go {backfill.name}")
    assert backfill.tracker.halt() is not None


def test_resume_of_an_unknown_backfill_is_an_error(backfill: Backfill, capsys: pytest.CaptureFixture[str]) -> None:
    assert backfill.cli("resume", backfill.name) == 1
    assert f"unknown backfill {backfill.name!r}" in error_line(capsys)


def test_resume_reports_a_run_already_active_instead_of_triggering_another(
        backfill: Backfill, capsys: pytest.CaptureFixture[str]) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import delete, func, select

    halted(backfill)
    backfill.set_variable(CONFIG)
    with create_session() as session:
        session.add(DagRun(dag_id=backfill.name, run_id="manual__still_running", run_type="manual", state="running"))
    try:
        assert backfill.cli("resume", backfill.name, "--json") == 0
        result = output(capsys)
        assert (result["active_runs"], result["triggered"], result["halted"]) == (["manual__still_running"], None, BAD)
        with create_session() as session:
            assert session.scalar(select(func.count()).select_from(DagRun)
                                  .where(DagRun.dag_id == backfill.name)) == 1
    finally:
        with create_session() as session:
            session.execute(delete(DagRun).where(DagRun.dag_id == backfill.name))
