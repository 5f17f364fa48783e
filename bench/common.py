"""What every benchmark shares: statistics over repeated runs, the machine and versions, Markdown tables.

The machines these run on are shared and noisy, so each figure is the median of several runs with its
spread, next to a baseline measured in the same run: ratios hold up where absolute figures drift.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import psutil
import redis

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Stats:
    """Median and spread of repeated measurements (more robust than a mean on a shared machine)."""

    median: float
    low: float
    high: float
    q1: float
    q3: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Stats:
        data = sorted(values)
        if not data:
            raise ValueError("no measurements")
        if len(data) == 1:
            return cls(data[0], data[0], data[0], data[0], data[0], 1)
        q1, _, q3 = statistics.quantiles(data, n=4, method="inclusive")
        return cls(statistics.median(data), data[0], data[-1], q1, q3, len(data))

    def fmt(self, digits: int = 3, scale: float = 1.0, unit: str = "") -> str:
        """``median [min .. max]`` in ``unit`` (after multiplying by ``scale``)."""
        def num(x: float) -> str:
            return _fmt(x * scale, digits)
        spread = f" [{num(self.low)} .. {num(self.high)}]" if self.n > 1 else ""
        return f"{num(self.median)}{unit}{spread}"


def _fmt(x: float, digits: int) -> str:
    if x == 0:
        return "0"
    magnitude = abs(x)
    if magnitude >= 10 ** digits:
        return f"{x:,.0f}"
    return f"{x:,.{max(0, digits - 1 - int(f'{magnitude:e}'.split('e')[1]))}f}"


def fmt(x: float, digits: int = 3) -> str:
    """A number to ``digits`` significant digits, with thousands separators."""
    return _fmt(x, digits)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear interpolation, of a non-empty sequence."""
    data = sorted(values)
    if not data:
        raise ValueError("no values")
    pos = (len(data) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


@dataclass
class Table:
    """One Markdown table of a benchmark, with the text around it."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    intro: str = ""
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        if self.intro:
            lines += [self.intro, ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("| " + " | ".join("---" for _ in self.columns) + " |")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += self.notes
        return "\n".join(lines) + "\n"


@dataclass
class Section:
    """A benchmark's part of RESULTS.md: method, parameters, tables, analysis."""

    title: str
    method: str
    parameters: dict[str, object] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    analysis: list[str] = field(default_factory=list)
    headline: dict[str, str] = field(default_factory=dict)
    verdicts: list[tuple[str, str, str, str]] = field(default_factory=list)

    def verdict(self, what: str, figure: str, target: str, met: bool | None) -> None:
        """A line of the summary: ``met`` None for figures reported without a target."""
        self.verdicts.append((what, figure, target, "-" if met is None else ("met" if met else "**missed**")))

    def markdown(self) -> str:
        lines = [f"## {self.title}", "", self.method, ""]
        if self.parameters:
            lines.append("Parameters: " + "; ".join(f"{k} = {v}" for k, v in self.parameters.items()) + ".")
            lines.append("")
        text = "\n".join(lines) + "\n"
        text += "\n".join(table.markdown() for table in self.tables)
        if self.analysis:
            text += "\n" + "\n\n".join(self.analysis) + "\n"
        return text


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def version_of(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def redis_server_version(url: str) -> str:
    try:
        client = redis.Redis.from_url(url)
        info = client.info("server")
        client.close()
        return str(info.get("redis_version", "?"))
    except redis.RedisError as error:
        return f"unreachable ({type(error).__name__})"


def postgres_version(url: str | None) -> str:
    if not url:
        return "not used"
    import sqlalchemy as sa  # noqa: PLC0415 (only when PostgreSQL is in use)
    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            version = str(conn.execute(sa.text("SHOW server_version")).scalar_one())
        engine.dispose()
        return version
    except sa.exc.SQLAlchemyError as error:
        return f"unreachable ({type(error).__name__})"


def git_revision() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=False)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    rev = out.stdout.strip() or "unknown"
    return f"{rev}{' (with uncommitted changes)' if dirty.stdout.strip() else ''}"


def machine_table(redis_url: str | None, postgres_url: str | None) -> Table:
    """Where and with what the figures were measured."""
    import sqlite3  # noqa: PLC0415

    memory = psutil.virtual_memory().total / 2**30
    load = os.getloadavg()
    table = Table("Machine and versions", ["item", "value"])
    table.add("CPU", f"{cpu_model()}, {psutil.cpu_count(logical=True)} logical cores "
                     f"({psutil.cpu_count(logical=False) or '?'} physical)")
    table.add("memory", f"{memory:.1f} GiB")
    table.add("load average at start (1/5/15 min)", " / ".join(f"{x:.2f}" for x in load))
    table.add("OS", platform.platform())
    table.add("Python", f"{platform.python_implementation()} {platform.python_version()}")
    for dist in ("apache-airflow", "apache-airflow-task-sdk", "SQLAlchemy", "redis", "psycopg2-binary",
                 "airflow-spreader"):
        table.add(dist, version_of(dist))
    table.add("Redis server", redis_server_version(redis_url) if redis_url else "not used")
    table.add("PostgreSQL server", postgres_version(postgres_url))
    table.add("SQLite library", sqlite3.sqlite_version)
    table.add("git revision", git_revision())
    table.add("command", " ".join(["python -m bench.run", *sys.argv[1:]]))
    return table
