"""The Backfills page's plugin and rate history, without a server (tests/scheduler/test_backfills_page.py runs
the page in a real Chromium against a real api-server)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from importlib.metadata import entry_points

import pytest
import redis

from airflow_spreader.state.tracker import Tracker
from airflow_spreader.tools.ui.api import STATIC, rate_history
from airflow_spreader.tools.ui.plugin import PAGE, URL_PREFIX, SpreaderBackfillsPlugin
from tests.airflow.conftest import airflow_db  # noqa: F401 - a fixture

NOW = datetime(2026, 11, 23, 10, 30, 30, tzinfo=timezone.utc)  # 30 s into the minute 10:30
MINUTE = int(datetime(2026, 11, 23, 10, 30, tzinfo=timezone.utc).timestamp())


def test_the_plugin_is_registered_through_the_airflow_plugins_entry_point() -> None:
    from airflow.plugins_manager import is_valid_plugin

    found = [ep for ep in entry_points(group="airflow.plugins") if ep.value.startswith("airflow_spreader.")]
    assert [ep.load() for ep in found] == [SpreaderBackfillsPlugin]
    assert is_valid_plugin(SpreaderBackfillsPlugin)
    [app] = SpreaderBackfillsPlugin.fastapi_apps
    assert app["url_prefix"] == URL_PREFIX and not URL_PREFIX.startswith(("/api", "/ui", "/auth", "/execution"))
    [view] = SpreaderBackfillsPlugin.external_views
    assert view["href"] == PAGE and view["href"].startswith(URL_PREFIX + "/") and view["url_route"]


def test_the_page_files_ship_with_the_package() -> None:
    assert sorted(p.name for p in STATIC.iterdir()) == ["backfills.css", "backfills.html", "backfills.js"]
    html = (STATIC / "backfills.html").read_text()
    assert 'src="static/backfills.js"' in html and 'href="static/backfills.css"' in html  # relative: any base URL


def test_loading_the_plugin_imports_no_web_stack() -> None:
    """Airflow loads plugins in every task process: the FastAPI app and Airflow's API security wait for the
    api-server's first request."""
    code = ("import sys, airflow_spreader.tools.ui.plugin; "
            "bad = [m for m in ('fastapi', 'airflow.api_fastapi.core_api.security', 'airflow_spreader.tools.ui.api') "
            "if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_rate_history_is_ids_per_second_minute_by_minute_since_the_start() -> None:
    started = NOW - timedelta(minutes=2, seconds=10)  # 10:28:20
    done = {MINUTE - 120: 80, MINUTE - 60: 600, MINUTE: 300, MINUTE - 3600: 999}
    history = rate_history(done, NOW, started)
    assert [p["minute"][11:16] for p in history] == ["10:28", "10:29", "10:30"]
    assert [p["ids"] for p in history] == [80, 600, 300]
    assert [round(p["ids_per_second"], 3) for p in history] == [2.0, 10.0, 10.0]  # 80 ids in 40 s, 300 in 30 s


def test_rate_history_keeps_the_last_hour_and_fills_quiet_minutes() -> None:
    history = rate_history({MINUTE - 60: 120}, NOW, NOW - timedelta(days=1))
    assert len(history) == 60 and history[-1]["minute"][11:16] == "10:30" and history[0]["minute"][11:16] == "09:31"
    assert [p["ids_per_second"] for p in history[-2:]] == [2.0, 0.0]
    assert rate_history({}, NOW, None)[-1]["ids_per_second"] == 0.0


@pytest.mark.usefixtures("airflow_db")
def test_the_page_reads_a_backfill_named_apart_from_its_dag_through_the_dag_it_recorded(
        redis_url: str, redis_client: redis.Redis, backfill_name: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Permissions, the Variable and the paused flag all belong to the DAG; the page must ask the right one."""
    from airflow.models.variable import Variable

    from airflow_spreader.core.names import config_variable
    from airflow_spreader.tools.readmodel.sources import AirflowSource
    from airflow_spreader.tools.ui.api import Backfills

    monkeypatch.setenv("REDIS_URL", redis_url)
    tracker, dag_id = Tracker(backfill_name, redis_client), f"{backfill_name}-dag"
    tracker.start(max_id=100)
    backfills = Backfills("redis_default")
    assert backfills.dag_of(backfill_name) == backfill_name, "before its first plan: the name, as the console"
    tracker.record_dag(dag_id)
    Variable.set(config_variable(dag_id), json.dumps({"batch_size": 7, "duration": 10, "per_second_on_peak": 1,
                                                      "per_second_off_peak": 1}))
    try:
        assert backfills.dag_of(backfill_name) == dag_id
        data = backfills.status(tracker, AirflowSource(), NOW)
        assert data["dag_id"] == dag_id
        assert data["airflow"]["config_problem"] is None and data["in_force"]["batch_size"] == 7
        assert backfills.dag_of("not a name") == "not a name", "an invalid name is left to the lookup's 404"
    finally:
        Variable.delete(config_variable(dag_id))
        tracker.reset()


def test_the_page_lists_the_quarantined_keys_with_their_errors_and_count_bounded(
        redis_url: str, redis_client: redis.Redis, backfill_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranges of one key that fail their last try are quarantined: the page's JSON (and the text status)
    counts all of them and lists the first ``QUARANTINE_LISTED``, lowest first."""
    from airflow_spreader.state.quarantine import Quarantine
    from airflow_spreader.tools.cli_status import render
    from airflow_spreader.tools.readmodel.sources import NoAirflow
    from airflow_spreader.tools.readmodel.status import QUARANTINE_LISTED, gather
    from airflow_spreader.tools.ui.api import Backfills

    monkeypatch.setenv("REDIS_URL", redis_url)
    tracker = Tracker(backfill_name, redis_client)
    tracker.start(max_id=150)
    claim = tracker.claim_cycle(batch_size=1, per_second=150, duration=1, begin_at=NOW, lease_seconds=600)
    try:
        quarantine = Quarantine(tracker)
        for batch in claim.batches:
            tracker.begin(batch)
            assert quarantine.fail(batch, f"ValueError: bad row {batch.begin_id}", final=True) == "quarantine"
        data = Backfills("redis_default").status(tracker, NoAirflow(), NOW)
        assert data["state"] == "failed" and data["progress"]["keys_quarantined"] == 150
        assert (data["quarantine"]["count"], data["quarantine"]["listed"]) == (150, QUARANTINE_LISTED)
        listed = data["quarantine"]["keys"]
        assert [k["key"] for k in listed] == list(range(1, QUARANTINE_LISTED + 1))
        assert all(k["error"] == f"ValueError: bad row {k['key']}" and k["attempts"] == 1 for k in listed)
        text = render(gather(tracker, NoAirflow(), backfill_name, NOW, 15))
        assert "quarantined 150 keys" in text and "quarantine ... 145 more (see --json)" in text
    finally:
        tracker.reset()
