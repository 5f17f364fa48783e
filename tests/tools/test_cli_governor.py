"""Saying why: `status` (text and --json) and the Backfills page's JSON show the governor's state, the
signal against its threshold, since when, the time held, and its last decisions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import airflow.settings  # noqa: F401 - Airflow sets its logging up on import: now, not inside a capsys test
import pytest
import redis

from airflow_spreader.core.governor import Reading, Verdict
from airflow_spreader.core.governor_config import GovernorConfig
from airflow_spreader.core.names import config_variable
from airflow_spreader.state.adapt import AdaptRecord, AdaptState
from airflow_spreader.state.governor import GovernorState
from airflow_spreader.state.idle import IdleLog
from airflow_spreader.state.tracker import Tracker
from tests.airflow.conftest import airflow_db  # noqa: F401 - a fixture
from tests.conftest import ManualClock
from tests.tools.test_cli_airflow import CONFIG, Backfill, output

pytestmark = pytest.mark.usefixtures("airflow_db")

GOVERNOR = GovernorConfig.from_dict({"health_interval": 5, "signals": [
    {"kind": "replica_lag", "conn_id": "replica", "hold_above": 2, "stop_above": 30},
    {"kind": "active_sessions", "conn_id": "db", "hold_above": 20}]})


@pytest.fixture
def governed(redis_client: redis.Redis, redis_url: str, backfill_name: str) -> Iterator[Backfill]:
    from airflow.models.variable import Variable

    item = Backfill(Tracker(backfill_name.replace("-", "_"), redis_client), redis_url)
    item.set_variable({**CONFIG, "governor": GOVERNOR.to_dict()})
    item.set_paused(False)
    item.start()
    yield item
    item.tracker.reset()
    Variable.delete(config_variable(item.name))


def held_for_a_while(backfill: Backfill) -> GovernorState:
    """Healthy 100 s ago, held since 60 s ago (replica lag 4.2 s > 2 s), still held."""
    clock = ManualClock(datetime.now(timezone.utc).timestamp() - 100)
    state = GovernorState(backfill.tracker.redis, backfill.name, clock=clock)
    state.publish(GOVERNOR)
    state.record(Verdict("ok"), [("replica lag", Reading(0.4)), ("active sessions", Reading(3))])
    clock.advance(40)
    hold = Verdict("hold", "replica lag", "replica_lag", 4.2, 2.0)
    state.record(hold, [("replica lag", Reading(4.2)), ("active sessions", Reading(5))])
    clock.advance(50)
    state.record(hold, [("replica lag", Reading(9.5)), ("active sessions", Reading(None, "OperationalError: x"))])
    return state


def test_status_says_held_why_since_when_and_for_how_long(governed: Backfill,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    state = held_for_a_while(governed)
    record = state.current()
    assert record is not None and record.since is not None
    since = record.since.strftime("%H:%M:%S")  # the Variable's zone: UTC
    assert governed.cli("status", governed.name, "--json") == 0
    status = output(capsys)
    governor = status["governor"]
    assert (status["state"], governor["state"]) == ("held", "held")
    assert governor["message"] == f"held: replica lag 4.2 s > 2 s since {since}"
    assert 59 <= governor["seconds_in_state"] <= 70 and 59 <= governor["held_seconds_total"] <= 70
    assert governor["verdict"]["value"] == 4.2 and governor["verdict"]["threshold"] == 2.0
    assert governor["readings"][0] == {"signal": "replica lag", "kind": "replica_lag", "unit": "s", "value": 9.5,
                                       "error": None, "hold_above": 2, "stop_above": 30}
    assert governor["readings"][1]["error"] == "OperationalError: x"
    assert [(h["from"], h["to"], h["reason"]) for h in governor["history"]] == [
        ("ok", "hold", "replica lag 4.2 s > 2 s"), ("none", "ok", "all signals healthy")]
    assert governed.cli("status", governed.name) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{governed.name}  held"
    at = lines.index(f"  governor  held: replica lag 4.2 s > 2 s since {since}")
    assert lines[at + 1] == ("  signals   replica lag 9.5 s (hold above 2 s, stop above 30 s); active sessions "
                             "failed (OperationalError: x) (hold above 20); held 1 min; 1 min held in all")
    assert lines[at + 2].endswith(" ok -> hold: replica lag 4.2 s > 2 s")


def test_status_tells_a_governors_stop_from_an_operators(governed: Backfill,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    state = held_for_a_while(governed)
    state.record(Verdict("stop", "replica lag", "replica_lag", 31.0, 30.0), [("replica lag", Reading(31.0))])
    assert governed.cli("status", governed.name, "--json") == 0
    status = output(capsys)
    assert (status["state"], status["governor"]["state"]) == ("stopped", "stopped")
    assert status["governor"]["message"].startswith("stopped by the governor: replica lag 31 s > 30 s since ")
    governed.tracker.go()
    governed.tracker.stop()  # now an operator's stop
    assert governed.cli("status", governed.name, "--json") == 0
    assert output(capsys)["governor"]["state"] != "stopped"


def test_the_backfills_page_serves_the_same_governor(governed: Backfill, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_spreader.tools.readmodel.sources import AirflowSource
    from airflow_spreader.tools.ui.api import Backfills

    monkeypatch.setenv("REDIS_URL", governed.url)
    held_for_a_while(governed)
    data = Backfills("redis_default").status(governed.tracker, AirflowSource(), datetime.now(timezone.utc))
    assert data["state"] == "held" and data["governor"]["message"].startswith("held: replica lag 4.2 s > 2 s since ")
    assert len(data["governor"]["history"]) == 2


def test_status_and_the_page_show_the_rate_factor_the_batch_size_and_idle_time(
        governed: Backfill, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_spreader.tools.readmodel.sources import AirflowSource
    from airflow_spreader.tools.ui.api import Backfills

    adapting = GovernorConfig.from_dict({**GOVERNOR.to_dict(), "adaptive_rate": True, "target_batch_seconds": 1})
    governed.set_variable({**CONFIG, "governor": adapting.to_dict()})
    GovernorState(governed.tracker.redis, governed.name).publish(adapting)
    AdaptState(governed.tracker.redis, governed.name).save(AdaptRecord(0.5, 40, 0.02, 1, "run/1"))
    IdleLog(governed.tracker.redis, governed.name, clock=lambda: datetime.now(timezone.utc).timestamp() - 1).open(
        "held")
    assert governed.cli("status", governed.name, "--json") == 0
    status = output(capsys)
    assert {k: status["in_force"][k] for k in ("per_second", "calendar_per_second", "rate_factor", "batch_size",
                                                "configured_batch_size", "ids_per_second")} == {
        "per_second": 1.0, "calendar_per_second": 2, "rate_factor": 0.5, "batch_size": 40,
        "configured_batch_size": 100, "ids_per_second": 40.0}
    assert (status["governor"]["rate_factor"], status["governor"]["batch_size"]) == (0.5, 40)
    assert status["eta"]["rate_factor"] == 0.5 and "x0.5 (governor)" in status["eta"]["reason"]
    assert status["eta"]["idle_seconds"]["held"] > 0 and status["eta"]["idle_seconds"]["stopped"] == 0
    assert governed.cli("status", governed.name) == 0
    lines = capsys.readouterr().out.splitlines()
    assert ("  in force  on peak: 1 batches/s (the calendar's 2/s x0.5, governor) x 40 ids (governor; configured "
            "100) = 40.0 ids/s") in lines
    assert "  adapts    rate factor x0.5, batches of 40" in lines
    assert any(line.startswith("  idle      held ") and line.endswith("not counted as slowness") for line in lines)
    monkeypatch.setenv("REDIS_URL", governed.url)
    data = Backfills("redis_default").status(governed.tracker, AirflowSource(), datetime.now(timezone.utc))
    assert (data["governor"]["rate_factor"], data["in_force"]["batch_size"]) == (0.5, 40)
