"""The console's Redis side: stop, go, retry-failed, reset and its errors, in-process and as the real script.

Commands that need Airflow's metadata DB (status with a configuration, config, plan) are in
test_cli_airflow.py; here Airflow is either not needed or deliberately unreachable.
"""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import airflow.settings  # noqa: F401 - Airflow sets its logging up on import: now, not inside a capsys test
import pytest
import redis

from airflow_spreader.state.tracker import Tracker
from airflow_spreader.tools.cli import main
from airflow_spreader.tools.cli_status import duration_text
from devtools.embedded import free_port

SCRIPT = Path(sys.executable).parent / "airflow-spreader"


@pytest.fixture
def live(redis_client: redis.Redis, backfill_name: str) -> Iterator[Tracker]:
    """A started backfill of ids 1..10,000 with one cycle of 8 batches of 100 claimed, on the real clock."""
    tracker = Tracker(backfill_name, redis_client)
    tracker.start(max_id=10_000)
    tracker.claim_cycle(batch_size=100, per_second=4, duration=2, begin_at=datetime.now(timezone.utc),
                        lease_seconds=600)
    yield tracker
    tracker.reset()


def run(*args: str, url: str) -> int:
    return main(["--redis-url", url, *args])


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line on stderr (and nothing on stdout)."""
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1, err
    return err.strip()


def test_stop_then_go_flips_the_stop_flag(live: Tracker, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("stop", live.name, url=redis_url) == 0
    assert live.is_stopped()
    assert f"go {live.name}" in capsys.readouterr().out  # says how to resume
    assert run("go", live.name, "--json", url=redis_url) == 0
    assert not live.is_stopped()
    assert json.loads(capsys.readouterr().out) == {"backfill": live.name, "stopped": False}


def test_stop_reports_the_batches_in_flight_as_json(live: Tracker, redis_url: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "--redis-url", redis_url, "stop", live.name]) == 0
    assert json.loads(capsys.readouterr().out) == {"backfill": live.name, "stopped": True, "in_flight": 8}


def test_retry_failed_plans_the_failed_ranges_again(live: Tracker, redis_url: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    batch = live.claim_cycle(batch_size=100, per_second=1, duration=1, begin_at=datetime.now(timezone.utc),
                             lease_seconds=600).batches[0]
    live.begin(batch)
    live.fail(batch, "ValueError: boom", final=True)
    assert len(live.failed_ranges()) == 1
    assert run("retry-failed", live.name, "--json", url=redis_url) == 0
    assert json.loads(capsys.readouterr().out) == {"backfill": live.name, "retried": 1, "ranges": 1,
                                                   "quarantined_keys": 0}
    assert live.failed_ranges() == []
    assert batch.id_range in live.in_flight()


def test_reset_with_yes_forgets_the_backfill(live: Tracker, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("reset", live.name, "--yes", url=redis_url) == 0
    assert not live.is_started()
    assert live.name not in Tracker.names(live.redis)


def test_reset_without_a_terminal_refuses_even_with_the_name_piped_in(
        live: Tracker, redis_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{live.name}\n"))
    assert run("reset", live.name, url=redis_url) == 1
    assert error_line(capsys) == f"airflow-spreader: refusing to reset {live.name} without --yes: no terminal to " \
                                 "confirm on"
    assert live.is_started()


def reset_on_a_terminal(name: str, url: str, typed: str) -> subprocess.CompletedProcess[str]:
    """The real script with a pseudo-terminal as stdin, answering the prompt with ``typed``."""
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen([str(SCRIPT), "--redis-url", url, "reset", name], stdin=follower,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        os.close(follower)
        os.write(leader, f"{typed}\n".encode())
        out, err = process.communicate(timeout=60)
    finally:
        os.close(leader)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_reset_on_a_terminal_asks_for_the_name(live: Tracker, redis_url: str) -> None:
    wrong = reset_on_a_terminal(live.name, redis_url, typed="yes")
    assert (wrong.returncode, wrong.stderr) == (1, f"airflow-spreader: not reset: 'yes' is not {live.name!r}\n")
    assert "Type the name to confirm" in wrong.stdout
    assert live.is_started()
    right = reset_on_a_terminal(live.name, redis_url, typed=live.name)
    assert right.returncode == 0, right.stderr
    assert not live.is_started()


def test_an_unknown_backfill_is_one_line_naming_the_known_ones(live: Tracker, redis_url: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert run("stop", "no-such-backfill", url=redis_url) == 1
    line = error_line(capsys)
    assert line.startswith(f"airflow-spreader: unknown backfill 'no-such-backfill' in Redis at {redis_url} (known: ")
    assert live.name in line
    assert not Tracker("no-such-backfill", live.redis).is_stopped()  # no flag left behind by the typo


def test_an_unreachable_redis_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    assert run("go", "anything", url=url) == 1
    assert error_line(capsys).startswith(f"airflow-spreader: cannot reach Redis at {url}: ConnectionError: ")


def test_a_password_in_the_redis_url_is_not_printed(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"redis://user:s3cret@127.0.0.1:{free_port()}/0"
    assert run("go", "anything", url=url) == 1
    line = error_line(capsys)
    assert "s3cret" not in line and "user:***@127.0.0.1" in line


def test_an_invalid_name_is_a_bad_argument(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("stop", "bad name!", url=redis_url) == 2
    assert error_line(capsys).startswith("airflow-spreader: ValueError: invalid backfill name 'bad name!'")


def test_plan_only_previews(live: Tracker, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("plan", live.name, url=redis_url) == 2
    assert "add --dry-run" in error_line(capsys)


def test_redis_url_comes_from_the_environment(live: Tracker, redis_url: str, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    assert main(["stop", live.name]) == 0
    assert live.is_stopped()


def test_else_redis_comes_from_an_airflow_connection(live: Tracker, redis_url: str, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from tests.airflow.conftest import redis_connection

    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_SPREADER_CLI_REDIS", redis_connection(redis_url))
    assert main(["--redis-conn-id", "spreader_cli_redis", "stop", live.name]) == 0
    assert live.is_stopped()


def test_the_console_script_degrades_to_redis_when_airflow_is_unreachable(live: Tracker, redis_url: str) -> None:
    env = {**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "sqlite:////nonexistent-dir/airflow.db"}
    result = subprocess.run([str(SCRIPT), "status", live.name, "--json", "--redis-url", redis_url], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert (result.returncode, result.stderr) == (0, "")
    status = json.loads(result.stdout)
    assert status["state"] == "running"
    assert status["progress"]["ids_planned"] == 800
    problem = status["airflow"]["paused_problem"]
    assert problem.startswith("Airflow metadata DB unreachable (OperationalError: ")
    assert status["airflow"]["config_problem"] == problem
    assert status["in_force"] is None
    assert status["eta"] == {"state": "unknown", "finish": None, "seconds_left": None, "efficiency": None,
                             "reason": f"needs the configuration: {problem}", "idle_seconds": None,
                             "rate_factor": 1.0}


def test_python_dash_m_is_the_same_console(redis_url: str) -> None:
    result = subprocess.run([sys.executable, "-m", "airflow_spreader", "stop", "no-such-backfill", "--redis-url",
                             redis_url], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("airflow-spreader: unknown backfill 'no-such-backfill'")
    assert "Traceback" not in result.stderr


def test_a_reader_leaving_early_is_no_traceback(live: Tracker, redis_url: str) -> None:
    env = {**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "sqlite:////nonexistent-dir/airflow.db"}
    process = subprocess.Popen([str(SCRIPT), "status", live.name, "--json", "--redis-url", redis_url], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    process.stdout.close()  # like `| head -1` leaving before the status is printed
    _, err = process.communicate(timeout=120)
    assert (process.returncode, err) == (1, "")


@pytest.mark.parametrize(("seconds", "text"), [(59, "<1 min"), (60, "1 min"), (3599, "59 min"), (3600, "1 h 0 min"),
                                               (86_399, "23 h 59 min"), (86_400 * 2 + 3600 * 4 + 59, "2 d 4 h")])
def test_durations_read_at_a_glance(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


REDIS_ONLY_COMMANDS = [["stop"], ["go"], ["status", "--redis-only", "--json"]]


@pytest.mark.parametrize("command", REDIS_ONLY_COMMANDS, ids=" ".join)
def test_commands_that_need_only_redis_never_import_airflow(live: Tracker, redis_url: str,
                                                            command: list[str]) -> None:
    """Importing Airflow takes seconds: `stop` must take effect at once (bench/console_latency.py times it)."""
    code = ("import sys; from airflow_spreader.tools.cli import main; "
            f"code = main({[command[0], live.name, *command[1:], '--redis-url', redis_url]!r}); "
            "loaded = [m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')]; "
            "assert not loaded, loaded[:5]; sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    if command[0] == "status":
        status = json.loads(result.stdout)
        assert status["progress"]["total_ids"] > 0
        assert status["airflow"]["config_problem"] == "Airflow not read (--redis-only)"


def test_skip_passes_over_ids_not_yet_planned_and_status_counts_them(live: Tracker, redis_url: str,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert run("skip", live.name, "--from", "2251", url=redis_url) == 0
    assert "Skipped ids 2251..9200" in capsys.readouterr().out
    assert live.progress().cursor == 2250 and live.progress().ids_skipped == 6950
    assert run("skip", live.name, "--from", "1", "--to", "100", url=redis_url) == 2
    assert "only ids not yet planned can be skipped, from the cursor 2250 down" in error_line(capsys)
    assert run("skip", live.name, "--from", "2001", "--to", "2250", "--json", url=redis_url) == 0
    assert json.loads(capsys.readouterr().out)["ids_skipped"] == 250
    assert run("status", live.name, "--redis-only", url=redis_url) == 0
    assert "7,200 skipped" in capsys.readouterr().out
