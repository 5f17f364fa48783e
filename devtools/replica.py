"""A PostgreSQL primary and a streaming replica on private ports, from the machine's PostgreSQL packages.

For the governor's tests: ``initdb``, ``pg_basebackup -R`` and ``pg_ctl`` from ``/usr/lib/postgresql/*/bin``
(or ``$SPREADER_PG_BIN``), run as the ``postgres`` user when this process is root (initdb refuses root).
Everything lives in one temporary directory, stopped and deleted by :meth:`StreamingPair.stop`.
``StreamingPair(replica=False)`` is a private primary alone (the governor benchmark's own server, so that
other sessions' databases do not share its buffers, WAL and locks).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import sqlalchemy as sa


def pg_bin() -> Path:
    found = os.environ.get("SPREADER_PG_BIN") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                                                   reverse=True)), None)
    if found is None:
        raise RuntimeError("no PostgreSQL binaries: install postgresql or set SPREADER_PG_BIN")
    return Path(found)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StreamingPair:
    """``primary_url`` and ``replica_url`` (SQLAlchemy, psycopg2) of a fresh primary and its replica.

    :param replica: start the replica too (else a primary alone).
    :param port: the primary's port (default: a free one).
    :param settings: server settings (``-c name=value``) beside the defaults, e.g. ``{"fsync": "on"}``.
    """

    def __init__(self, *, replica: bool = True, port: int | None = None,
                 settings: dict[str, str] | None = None) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="spreader-pg-"))
        self.primary_port, self.replica_port = port or free_port(), free_port()
        self.with_replica = replica
        self.settings = {"listen_addresses": "127.0.0.1", "fsync": "off", "max_connections": "50", **(settings or {})}
        self.as_postgres = os.geteuid() == 0
        self._started: list[Path] = []

    def url(self, port: int) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"

    @property
    def primary_url(self) -> str:
        return self.url(self.primary_port)

    @property
    def replica_url(self) -> str:
        return self.url(self.replica_port)

    def _run(self, *args: str) -> None:
        command = [str(pg_bin() / args[0]), *args[1:]]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {result.stdout[-2000:]} {result.stderr[-2000:]}")

    def _start(self, data: Path, port: int) -> None:
        options = " ".join([f"-p {port} -k {self.base}", *(f"-c {k}={v}" for k, v in self.settings.items())])
        self._run("pg_ctl", "-D", str(data), "-o", options, "-l", str(self.base / f"{data.name}.log"), "-w",
                  "-t", "60", "start")
        self._started.append(data)

    def start(self) -> StreamingPair:
        if self.as_postgres:
            shutil.chown(self.base, "postgres", "postgres")
        primary, replica = self.base / "primary", self.base / "replica"
        self._run("initdb", "-D", str(primary), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self._start(primary, self.primary_port)
        if not self.with_replica:
            return self
        self._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "postgres",
                  "-D", str(replica), "-R", "-X", "stream", "--no-sync")
        self._start(replica, self.replica_port)
        self.wait_streaming()
        return self

    def wait_streaming(self, timeout: float = 30) -> None:
        engine = sa.create_engine(self.primary_url)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                with engine.connect() as conn:
                    if conn.execute(sa.text("SELECT count(*) FROM pg_stat_replication "
                                            "WHERE state = 'streaming'")).scalar_one():
                        return
                time.sleep(0.2)
        finally:
            engine.dispose()
        raise RuntimeError(f"the replica did not stream within {timeout} s (logs in {self.base})")

    def stop(self) -> None:
        for data in reversed(self._started):
            with contextlib.suppress(RuntimeError):  # already down: delete it all the same
                self._run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        self._started.clear()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> StreamingPair:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()
