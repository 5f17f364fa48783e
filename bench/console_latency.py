"""Benchmark: how soon the console answers, from Enter to exit, as an operator types the command.

``stop`` must take effect at once. Each command runs as its own process (the console script of the venv),
several times; the baseline in the same run is ``python -c pass``, the floor of any Python command. The
commands that need only Redis get ``--redis-url`` (and ``status --redis-only``); ``status`` with Airflow
details imports Airflow and reads its metadata database (a migrated SQLite one here).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

from airflow_spreader.state.tracker import Tracker
from bench.common import Section, Stats, Table

RUNS = 7
TARGET_SECONDS = 1.0


def _time(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")
    return seconds


def run(redis_url: str, quick: bool = False) -> Section:
    runs = 3 if quick else RUNS
    script = str(Path(sys.executable).with_name("airflow-spreader"))
    name = f"bench-console-{uuid.uuid4().hex[:8]}"
    tracker = Tracker(name, redis.Redis.from_url(redis_url))
    tracker.start(max_id=1_000_000)
    home = tempfile.mkdtemp(prefix="bench-console-airflow-")
    env = {**os.environ, "AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"], env=env,
                   capture_output=True, check=True, timeout=600)
    url = ["--redis-url", redis_url]
    commands = {
        "python -c pass (baseline)": [sys.executable, "-c", "pass"],
        "stop NAME --redis-url": [script, "stop", name, *url],
        "go NAME --redis-url": [script, "go", name, *url],
        "status NAME --redis-only --redis-url": [script, "status", name, "--redis-only", *url],
        "status NAME --redis-url (with Airflow: Variable, paused)": [script, "status", name, *url],
    }
    table = Table("Console commands, Enter to exit", ["command", "seconds (median [min .. max])", "x baseline"],
                  intro=f"{runs} runs each, one process per run.")
    try:
        stats = {label: Stats.of(_time(command, env) for _ in range(runs)) for label, command in commands.items()}
    finally:
        tracker.reset()
    baseline = stats["python -c pass (baseline)"].median
    for label, value in stats.items():
        table.add(label, value.fmt(3, unit=" s"), f"{value.median / baseline:.1f}")
    section = Section("Console latency", __doc__.split("\n\n")[1].replace("\n", " ") if __doc__ else "",
                      tables=[table])
    slowest = max(stats[label].median for label in commands if "--redis-url" in label and "Airflow" not in label)
    section.verdict("Redis-only console commands (stop, go, status --redis-only)", f"{slowest:.2f} s (slowest median)",
                    f"< {TARGET_SECONDS:g} s", slowest < TARGET_SECONDS)
    section.headline["console stop"] = stats["stop NAME --redis-url"].fmt(2, unit=" s")
    return section


if __name__ == "__main__":
    print(run(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), quick="--quick" in sys.argv).markdown())
