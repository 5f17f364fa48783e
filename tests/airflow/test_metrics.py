"""Backfill metrics reach a real StatsD socket through Airflow's Stats facade, named as documented.

Airflow's task runner initializes the Stats backend from ``[metrics]`` when a task process starts
(``airflow.sdk.execution_time.task_runner.main``); :func:`statsd_on` does the same here, with StatsD
pointed at a UDP socket the test listens on, and puts the facade back to no metrics afterwards.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airflow_spreader import metrics

BACKFILL = "users_backfill"


class StatsdServer:
    """A UDP socket that reads StatsD lines: ``name:value|type``."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])

    def receive(self, count: int, timeout: float = 5.0) -> list[str]:
        """The next ``count`` lines, or fewer if no more arrive before ``timeout``."""
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while len(lines) < count and (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                lines += self.sock.recv(65536).decode().splitlines()
            except TimeoutError:
                break
        return lines

    def quiet(self, wait: float = 0.5) -> list[str]:
        """Whatever arrives within ``wait`` seconds (expected: nothing)."""
        return self.receive(1, timeout=wait)


def parse(lines: list[str]) -> dict[str, tuple[float, str]]:
    """``{name: (value, type)}``, e.g. ``{"airflow.spreader.ids_done": (500.0, "c")}``."""
    parsed = {}
    for line in lines:
        name, _, rest = line.partition(":")
        value, _, kind = rest.partition("|")
        parsed[name] = (float(value), kind)
    return parsed


@pytest.fixture
def statsd() -> Iterator[StatsdServer]:
    server = StatsdServer()
    yield server
    server.sock.close()


def initialize_like_a_task() -> None:
    from airflow_spreader.compat import initialize_stats

    initialize_stats()


@pytest.fixture
def statsd_on(statsd: StatsdServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[StatsdServer]:
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_ON", "True")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PORT", str(statsd.port))
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PREFIX", "airflow")
    initialize_like_a_task()
    yield statsd
    monkeypatch.undo()
    initialize_like_a_task()  # metrics off again for the rest of the session


def test_a_batch_done_counts_ids_rows_and_batches_and_times_the_batch(statsd_on: StatsdServer) -> None:
    metrics.batch_done(BACKFILL, ids=500, rows=498, seconds=1.5)
    got = parse(statsd_on.receive(8))
    assert got == {
        "airflow.spreader.batches_done": (1, "c"), f"airflow.spreader.{BACKFILL}.batches_done": (1, "c"),
        "airflow.spreader.ids_done": (500, "c"), f"airflow.spreader.{BACKFILL}.ids_done": (500, "c"),
        "airflow.spreader.rows_done": (498, "c"), f"airflow.spreader.{BACKFILL}.rows_done": (498, "c"),
        "airflow.spreader.batch_duration": (1500, "ms"), f"airflow.spreader.{BACKFILL}.batch_duration": (1500, "ms"),
    }


def test_rows_not_reported_are_not_counted(statsd_on: StatsdServer) -> None:
    metrics.batch_done(BACKFILL, ids=10, rows=None, seconds=0.25)
    assert not any("rows_done" in name for name in parse(statsd_on.receive(6)))
    assert statsd_on.quiet() == []


def test_a_batch_start_reports_its_lateness(statsd_on: StatsdServer) -> None:
    before = time.monotonic()
    started = metrics.batch_started(BACKFILL, datetime.now(timezone.utc) - timedelta(seconds=2.5))
    assert before <= started <= time.monotonic()
    got = parse(statsd_on.receive(2))
    late, kind = got["airflow.spreader.batch_lateness"]
    assert kind == "ms" and 2500 <= late < 2500 + 5000
    assert got[f"airflow.spreader.{BACKFILL}.batch_lateness"][1] == "ms"


def test_an_early_start_is_not_negative_lateness(statsd_on: StatsdServer) -> None:
    metrics.batch_started(BACKFILL, datetime.now(timezone.utc) + timedelta(seconds=30))
    assert parse(statsd_on.receive(2))["airflow.spreader.batch_lateness"] == (0, "ms")


def test_failures_count_every_attempt_and_the_final_ones_apart(statsd_on: StatsdServer) -> None:
    metrics.batch_failed(BACKFILL, final=False)
    assert set(parse(statsd_on.receive(2))) == {"airflow.spreader.batch_errors",
                                                f"airflow.spreader.{BACKFILL}.batch_errors"}
    metrics.batch_failed(BACKFILL, final=True)
    assert set(parse(statsd_on.receive(4))) == {
        "airflow.spreader.batch_errors", f"airflow.spreader.{BACKFILL}.batch_errors",
        "airflow.spreader.batches_failed", f"airflow.spreader.{BACKFILL}.batches_failed"}


def test_a_planned_cycle_reports_the_cursor_and_the_rate_in_force(statsd_on: StatsdServer) -> None:
    metrics.cycle_planned(BACKFILL, batches=180, cursor=82_000, per_second=7.5)
    got = parse(statsd_on.receive(8))
    assert got["airflow.spreader.cycles"] == (1, "c")
    assert got["airflow.spreader.batches_planned"] == (180, "c")
    assert got["airflow.spreader.cursor"] == (82_000, "g")
    assert got[f"airflow.spreader.{BACKFILL}.cursor"] == (82_000, "g")
    assert got["airflow.spreader.per_second"] == (7.5, "g")


def test_the_governor_reports_its_state_the_time_held_the_factor_and_the_batch_size(
        statsd_on: StatsdServer) -> None:
    metrics.cycle_planned(BACKFILL, batches=4, cursor=900, per_second=1.5, rate_factor=0.5, batch_size=120)
    metrics.governor_checked(BACKFILL, decision="hold", held_seconds=42.5)
    got = parse(statsd_on.receive(16))
    assert got["airflow.spreader.rate_factor"] == (0.5, "g")
    assert got[f"airflow.spreader.{BACKFILL}.batch_size"] == (120, "g")
    assert got["airflow.spreader.governor_state"] == (1, "g")
    assert got["airflow.spreader.held_seconds"] == (42.5, "g")
    metrics.governor_checked(BACKFILL, decision="stop", held_seconds=42.5)
    assert parse(statsd_on.receive(4))["airflow.spreader.governor_state"] == (2, "g")


def test_without_legacy_names_only_the_tagged_names_are_sent(statsd_on: StatsdServer,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__METRICS__LEGACY_NAMES_ON", "False")
    metrics.batch_failed(BACKFILL, final=False)
    assert statsd_on.receive(1) == ["airflow.spreader.batch_errors:1|c"]
    assert statsd_on.quiet() == []


def test_influxdb_style_statsd_carries_the_backfill_tag(statsd_on: StatsdServer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED", "True")
    monkeypatch.setenv("AIRFLOW__METRICS__LEGACY_NAMES_ON", "False")
    initialize_like_a_task()
    metrics.batch_failed(BACKFILL, final=False)
    assert statsd_on.receive(1) == [f"airflow.spreader.batch_errors,backfill={BACKFILL}:1|c"]
    assert statsd_on.quiet() == []


def test_dots_in_a_backfill_name_keep_the_legacy_hierarchy(statsd_on: StatsdServer) -> None:
    metrics.batch_failed("sales.orders", final=False)
    assert "airflow.spreader.sales__orders.batch_errors" in parse(statsd_on.receive(2))


def test_with_metrics_off_nothing_is_sent_and_nothing_breaks(statsd: StatsdServer,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PORT", str(statsd.port))  # listening, but statsd_on is off
    initialize_like_a_task()
    metrics.batch_done(BACKFILL, ids=500, rows=500, seconds=1.0)
    metrics.cycle_planned(BACKFILL, batches=1, cursor=1, per_second=1.0)
    assert statsd.quiet() == []


def test_the_docs_table_lists_every_metric_with_its_kind() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "console.md").read_text()
    rows = re.findall(r"^\| `spreader\.(\w+)` \| `spreader\.<backfill>\.(\w+)` \| (\w+)", docs, re.MULTILINE)
    kinds = {"counter": "incr", "gauge": "gauge", "timer": "timing"}
    assert {name: kinds[kind] for name, legacy, kind in rows if legacy == name} == \
        {name: kind for name, (kind, _) in metrics.METRICS.items()}
    assert len(rows) == len(metrics.METRICS)
