"""Run real Airflow 3 components (scheduler, dag-processor, triggerer, api-server, Celery workers) as children.

Used by the demo and by the end-to-end tests (``tests/scheduler``, marker ``scheduler``)::

    with AirflowStack(home=tmp / "airflow", dags_folder=Path("dags"), env={"REDIS_URL": url}) as stack:
        stack.client.wait_for_dag("my_dag")
        run_id = stack.client.trigger("my_dag")
        assert stack.client.wait_for_run("my_dag", run_id) == "success"

Every component gets the same environment (built by :meth:`AirflowStack.environment`): the inherited
environment minus any ``AIRFLOW*``/``PYTEST_*`` variable (so the stack is hermetic), then the stack's
settings, then ``env``, which wins. Each component runs in its own process group (Airflow's children survive
a SIGTERM to their parent) with its output in ``<home>/logs/<name>.log``. Components are Airflow commands
(``"celery worker"``) or :class:`~devtools.components.Component` (names, extra arguments,
Celery workers). :meth:`AirflowStack.stop` kills the groups, every descendant and every process carrying the
stack's marker variable (task processes put themselves in new groups), and is idempotent and registered
with ``atexit``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import psutil

from devtools.components import DEFAULT_COMPONENTS, JOB_TYPES, Component
from devtools.rest import AirflowApiError, AirflowClient

__all__ = ["DEFAULT_COMPONENTS", "AirflowStack", "Component", "StackError"]
MARKER_VAR = "AIRFLOW_SPREADER_STACK_ID"
_STRIPPED_PREFIXES = ("AIRFLOW", "_AIRFLOW", "PYTEST_")


class StackError(RuntimeError):
    """A component failed to start, died, or a CLI command failed."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 right now (held open together so they differ)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class AirflowStack:
    """Airflow components as process groups sharing one AIRFLOW_HOME, metadata DB and environment."""

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        *,
        env: Mapping[str, str] | None = None,
        sql_alchemy_conn: str | None = None,
        components: Iterable[str | Component] = DEFAULT_COMPONENTS,
        port: int | None = None,
        executor: str = "LocalExecutor",
        parallelism: int | None = None,
        start_timeout: float = 180.0,
        stop_timeout: float = 15.0,
    ) -> None:
        self.home = Path(home).absolute()
        self.dags_folder = Path(dags_folder).absolute()
        self.extra_env = dict(env or {})
        self.sql_alchemy_conn = sql_alchemy_conn or f"sqlite:///{self.home / 'airflow.db'}"
        self.components = tuple(Component.of(spec) for spec in components)
        names = [c.name for c in self.components]
        if len(set(names)) != len(names):
            raise ValueError(f"component names must differ: {names}")
        self._log_offsets: dict[str, int] = {}  # log size at the last start(): readiness reads past it
        self.port = port
        self.executor = executor
        self.parallelism = parallelism
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.bin_dir = Path(sys.executable).parent  # the venv's bin: Airflow spawns `airflow` by name
        self.stack_id = uuid.uuid4().hex
        self._jwt_secret = secrets.token_urlsafe(64)  # >= 64 bytes, or PyJWT warns for HS512
        self._api_secret = secrets.token_urlsafe(32)
        self._log_ports: tuple[int, int] | None = None
        self.processes: dict[str, subprocess.Popen[bytes]] = {}  # the last start()'s components
        self._seen: dict[int, psutil.Process] = {}  # every process of the stack observed so far
        self._running = False
        self._client: AirflowClient | None = None
        self._migrated = False
        self.time_to_healthy: float | None = None
        self.timings: dict[str, float] = {}  # seconds since start(): migrated, healthy, execution_api

    # -- configuration --------------------------------------------------------------------------------------

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def base_url(self) -> str:
        if self.port is None:
            self.environment()  # picks the free ports
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._running

    @property
    def client(self) -> AirflowClient:
        """REST client for the api-server (see :class:`devtools.rest.AirflowClient`)."""
        if self._client is None:
            self._client = AirflowClient(self.base_url)
        return self._client

    def environment(self) -> dict[str, str]:
        """The environment shared by every component and by :meth:`airflow_cli`."""
        if self._log_ports is None:  # the log servers default to fixed ports 8793/8794: avoid clashes
            api_port, *log_ports = free_ports(3)
            self.port = self.port or api_port
            self._log_ports = (log_ports[0], log_ports[1])
        env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIPPED_PREFIXES)}
        env.update(
            {
                "PATH": os.pathsep.join([str(self.bin_dir), env.get("PATH", os.defpath)]),
                MARKER_VAR: self.stack_id,
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__CORE__EXECUTOR": self.executor,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.sql_alchemy_conn,
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__SECRET_KEY": self._api_secret,
                "AIRFLOW__API_AUTH__JWT_SECRET": self._jwt_secret,
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self._log_ports[0]),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self._log_ports[1]),
            }
        )
        if self.parallelism is not None:
            env["AIRFLOW__CORE__PARALLELISM"] = str(self.parallelism)
        env.update(self.extra_env)
        return env

    # -- commands -------------------------------------------------------------------------------------------

    def airflow_cli(
        self, *args: str, check: bool = True, timeout: float = 300.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``airflow *args`` with the stack's environment; raise StackError on failure if ``check``."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [str(self.bin_dir / "airflow"), *args],
            env=self.environment(),
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise StackError(
                f"airflow {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
            )
        return result

    def migrate(self) -> None:
        """``airflow db migrate``, once per stack (idempotent for a reused home anyway)."""
        if self._migrated:
            return
        result = self.airflow_cli("db", "migrate", check=False)
        (self.log_dir / "db-migrate.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise StackError(f"airflow db migrate failed:\n{tail(self.log_dir / 'db-migrate.log')}")
        self._migrated = True

    # -- lifecycle ------------------------------------------------------------------------------------------

    def __enter__(self) -> AirflowStack:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> AirflowStack:
        """Migrate the DB, start the components and wait until healthy (StackError with log tails if not)."""
        if self._running:
            raise StackError("stack already started")
        self._running = True
        self.processes = {}
        started = time.monotonic()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = self.environment()
        atexit.register(self.stop)
        try:
            self.migrate()
            self.timings["migrated"] = time.monotonic() - started
            for component in self.components:
                with (self.log_dir / f"{component.name}.log").open("ab") as log:
                    self._log_offsets[component.name] = log.tell()
                    self.processes[component.name] = subprocess.Popen(
                        [str(self.bin_dir / "airflow"), *component.args],
                        env=env,
                        cwd=self.home,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
            self._wait_healthy(started, started + self.start_timeout)
        except BaseException:
            self.stop()
            raise
        self.time_to_healthy = time.monotonic() - started
        return self

    @property
    def _has_api_server(self) -> bool:
        return any(c.args[0] == "api-server" for c in self.components)

    def _unhealthy(self) -> list[str]:
        """Components (and the metadatabase) not reported healthy (or, without health, ready in their log) yet."""
        not_ready = [
            c.name for c in self.components
            if not c.ready_in(self.log_dir / f"{c.name}.log", self._log_offsets.get(c.name, 0))
        ]
        wanted = [c for c in self.components if c.health_key]
        if not self._has_api_server:
            return not_ready + [
                c.name
                for c in wanted
                if self.airflow_cli("jobs", "check", "--job-type", JOB_TYPES[c.args[0]], check=False).returncode
            ]
        try:
            health: dict[str, Any] = self.client.health()
        except (httpx.HTTPError, AirflowApiError) as exc:
            return [*not_ready, f"api-server ({type(exc).__name__})"]
        keys = ["metadatabase"] + [str(c.health_key) for c in wanted]
        return not_ready + [k for k in keys if (health.get(k) or {}).get("status") != "healthy"]

    def _wait_healthy(self, started: float, deadline: float) -> None:
        while True:
            dead = {name: proc.returncode for name, proc in self.processes.items() if proc.poll() is not None}
            if dead:
                raise StackError(f"component(s) exited {dead}\n{self.log_tails()}")
            unhealthy = self._unhealthy()
            if not unhealthy:
                self.timings["healthy"] = time.monotonic() - started
                if self._has_api_server:
                    self._warm_execution_api(deadline)
                    self.timings["execution_api"] = time.monotonic() - started
                return
            if time.monotonic() > deadline:
                raise StackError(
                    f"not healthy after {self.start_timeout:.0f}s: {unhealthy}\n{self.log_tails()}"
                )
            time.sleep(1.0)

    def _warm_execution_api(self, deadline: float) -> None:
        """The api-server builds its execution API on the first request (~12 s on 2 cores), longer than the
        workers' 5 s client timeout: pay that here, not in the first task's retries."""
        timeout = max(10.0, deadline - time.monotonic())
        try:
            self.client.http.get("/execution/health", timeout=timeout).raise_for_status()
        except httpx.HTTPError as exc:
            raise StackError(f"execution API not ready: {exc!r}\n{self.log_tails()}") from exc

    def log_tails(self, lines: int = 40) -> str:
        return "\n".join(
            f"----- {c.name}.log (last {lines} lines) -----\n{tail(self.log_dir / f'{c.name}.log', lines)}"
            for c in self.components
        )

    # -- shutdown -------------------------------------------------------------------------------------------

    def alive_processes(self) -> list[psutil.Process]:
        """Live (non-zombie) processes of the stack: component groups, descendants, marker carriers."""
        found = dict(self._seen)
        groups = {proc.pid for proc in self.processes.values()}
        for root in self.processes.values():
            try:
                parent = psutil.Process(root.pid)
                for proc in [parent, *parent.children(recursive=True)]:
                    found[proc.pid] = proc
            except psutil.Error:
                pass
        me = os.getpid()
        for proc in psutil.process_iter():
            if proc.pid == me or proc.pid in found:
                continue
            try:
                if os.getpgid(proc.pid) in groups or proc.environ().get(MARKER_VAR) == self.stack_id:
                    found[proc.pid] = proc
            except (psutil.Error, OSError):
                continue
        self._seen.update(found)
        alive = []
        for proc in found.values():
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
            except psutil.Error:
                continue
        return alive

    def _signal_all(self, sig: signal.Signals) -> list[psutil.Process]:
        """Signal each live component group, and each stack process outside them (task processes make their
        own groups) once: a second SIGTERM makes Airflow components skip their graceful shutdown."""
        procs = self.alive_processes()
        groups = {proc.pid for proc in self.processes.values()}
        pgids: dict[int, int] = {}
        for proc in procs:
            with contextlib.suppress(OSError):
                pgids[proc.pid] = os.getpgid(proc.pid)
        for pgid in groups & set(pgids.values()):  # only groups that still have members
            with contextlib.suppress(OSError):
                os.killpg(pgid, sig)
        for proc in procs:
            if pgids.get(proc.pid) not in groups:
                with contextlib.suppress(psutil.Error):
                    proc.send_signal(sig)
        return procs

    def _reap(self) -> None:
        for popen in self.processes.values():
            popen.poll()

    def stop(self) -> None:
        """SIGTERM everything, wait up to ``stop_timeout`` s, SIGKILL what is left; idempotent."""
        atexit.unregister(self.stop)
        if self._client is not None:
            self._client.close()
            self._client = None
        if not self._running:
            return
        deadline = time.monotonic() + self.stop_timeout
        procs = self._signal_all(signal.SIGTERM)
        while procs and time.monotonic() < deadline:
            psutil.wait_procs(procs, timeout=min(1.0, max(0.0, deadline - time.monotonic())))
            self._reap()
            procs = self.alive_processes()
        for _ in range(5):
            if not procs:
                break
            psutil.wait_procs(self._signal_all(signal.SIGKILL), timeout=5)
            self._reap()
            procs = self.alive_processes()
        for popen in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=5)
        self._running = False
        if procs:
            raise StackError(f"processes survived SIGKILL: {[p.pid for p in procs]}")
