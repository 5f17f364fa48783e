"""The governor benchmark's production: a private PostgreSQL and pgbench's TPC-B workload at a fixed rate.

The server is started from the machine's PostgreSQL packages (devtools/replica.py, no replica) with fsync
on, so that other sessions' databases do not share its buffers, WAL and locks and a commit costs what it
costs. pgbench runs back-to-back chunks of a few seconds (``-R``, per-transaction logs) for as long as the
benchmark lasts: each chunk's log is complete when it exits, and any phase is a window of that one timeline.
A transaction's latency is pgbench's (it includes the wait behind its schedule: a stalled server shows).
"""

from __future__ import annotations

import subprocess
import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from bench.common import percentile
from devtools.replica import StreamingPair

SETTINGS = {"fsync": "on", "shared_buffers": "128MB", "max_connections": "100", "max_wal_size": "2GB"}


@dataclass(frozen=True)
class Workload:
    """pgbench's load: ``rate`` transactions per second over ``clients`` connections."""

    rate: int = 200
    clients: int = 4
    chunk_seconds: int = 10


def start_server(port: int | None, scale: int) -> StreamingPair:
    """A private primary with pgbench's tables (``pgbench -i -s scale``: 100,000 accounts per unit)."""
    server = StreamingPair(replica=False, port=port, settings=SETTINGS).start()
    try:
        subprocess.run(["pgbench", "-i", "-q", "-s", str(scale), *connect_args(server)], check=True,
                       capture_output=True, text=True, timeout=600)
        engine = sa.create_engine(server.primary_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text("CREATE TABLE governor_bench_batches (begin_id BIGINT, end_id BIGINT, "
                                 "rows BIGINT, started DOUBLE PRECISION, ended DOUBLE PRECISION)"))
            conn.execute(sa.text("CREATE TABLE governor_bench_heartbeat (id INT PRIMARY KEY, beat BIGINT)"))
            conn.execute(sa.text("INSERT INTO governor_bench_heartbeat VALUES (1, 0)"))  # the governor's probe
            conn.execute(sa.text("VACUUM ANALYZE"))
        engine.dispose()
    except BaseException:
        server.stop()
        raise
    return server


def connect_args(server: StreamingPair) -> list[str]:
    return ["-h", "127.0.0.1", "-p", str(server.primary_port), "-U", "postgres", "postgres"]


class Pgbench:
    """pgbench in a thread, chunk after chunk, until :meth:`stop`; logs in ``folder``."""

    def __init__(self, server: StreamingPair, folder: Path, workload: Workload) -> None:
        self.server, self.folder, self.workload = server, folder, workload
        self.folder.mkdir(parents=True, exist_ok=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.errors: list[str] = []

    def _loop(self) -> None:
        chunk = 0
        while not self._stop.is_set():
            w = self.workload
            result = subprocess.run(
                ["pgbench", "-n", "-R", str(w.rate), "-c", str(w.clients), "-j", "2", "-T", str(w.chunk_seconds),
                 "-l", f"--log-prefix={self.folder / f'chunk{chunk:04d}'}", *connect_args(self.server)],
                capture_output=True, text=True, check=False, cwd=self.folder, timeout=w.chunk_seconds + 60)
            if result.returncode != 0:
                self.errors.append(result.stderr[-500:])
            chunk += 1

    def start(self) -> Pgbench:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Let the running chunk finish (its log is whole), then stop."""
        self._stop.set()
        self._thread.join(timeout=self.workload.chunk_seconds + 70)

    def latencies(self) -> dict[int, list[float]]:
        """Milliseconds of each transaction, by the whole second (epoch) it completed in."""
        by_second: dict[int, list[float]] = defaultdict(list)
        for log in sorted(self.folder.glob("chunk*")):
            for line in log.read_text().splitlines():
                # client_id transaction_no time script_no time_epoch time_us [schedule_lag]
                fields = line.split()
                if len(fields) >= 6 and fields[2] != "skipped":
                    by_second[int(fields[4])].append(int(fields[2]) / 1000.0)
        return dict(by_second)


@dataclass(frozen=True)
class SecondStats:
    """The workload's latency percentiles in one second."""

    second: int
    transactions: int
    p95: float
    p99: float


def per_second(latencies: dict[int, list[float]], start: float, end: float) -> list[SecondStats]:
    """The whole seconds inside ``[start, end]`` that saw transactions."""
    return [SecondStats(s, len(v), percentile(v, 95), percentile(v, 99))
            for s, v in sorted(latencies.items()) if start <= s and s + 1 <= end and v]


def pooled(latencies: dict[int, list[float]], start: float, end: float, q: float) -> float:
    """The ``q``-th percentile of every transaction completed in the window's whole seconds."""
    return percentile([x for s, v in latencies.items() if start <= s and s + 1 <= end for x in v], q)
