"""Where the CPU goes inside Airflow during a run: py-spy sampling every component and its subprocesses.

py-spy is a sampling profiler that attaches to running processes (it needs ptrace, which root has). It is
not a dependency of the package: the bench uses one found on PATH or next to the interpreter, else installs
it with pip into a private folder (``~/.cache/airflow-spreader/bench-tools``), else goes without (the phase
timestamps and per-component CPU still say where the time goes). Samples of idle threads are dropped, so
samples / rate estimates CPU seconds.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from bench.common import Table

if TYPE_CHECKING:
    from bench.harness import BenchStack

TOOLS = Path.home() / ".cache" / "airflow-spreader" / "bench-tools"
RATE = 50

IMPORTS = ("importlib._bootstrap", "importlib/__init__")
# What a sample was doing: the innermost frame matching one of these (imports win wherever they are).
ACTIVITIES = [
    ("Redis (tracker, redis-py)", ("airflow_spreader/state/", "redis/")),
    ("SQL (SQLAlchemy and drivers)", ("sqlalchemy/", "psycopg2", "sqlite3", "pymysql")),
    ("TLS context setup (ssl)", ("ssl.py", "_get_ssl_context")),
    ("HTTP (httpx, uvicorn, FastAPI)", ("httpx/", "httpcore/", "h11/", "uvicorn/", "starlette/", "fastapi/")),
    ("validation, serialization (pydantic, msgspec, json)", ("pydantic", "msgspec", "json/", "cattrs")),
    ("logging (structlog)", ("structlog/", "logging/")),
    ("supervisor <-> task messages", ("execution_time/comms.py", "execution_time/supervisor.py")),
    ("waiting (select, locks, sleep)", ("selectors.py", "threading.py", "asyncio/", "time.sleep")),
    ("DAG parsing and serialization", ("dag_processing/", "serialization/")),
]


def find_py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    for candidate in (shutil.which("py-spy"), str(here), str(TOOLS / "bin" / "py-spy")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def install_py_spy() -> str | None:
    """pip-install py-spy into the private tools folder (not into the project's virtualenv)."""
    result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(TOOLS), "py-spy"],
                            capture_output=True, text=True, timeout=300, check=False)
    return find_py_spy() if result.returncode == 0 else None


class Profile:
    """py-spy on every component of a stack for the duration of a ``with recording(stack)`` block."""

    def __init__(self, workdir: Path, install: bool = True) -> None:
        self.workdir = workdir
        self.binary = find_py_spy() or (install_py_spy() if install else None)
        self.reason = "" if self.binary else "py-spy not found and could not be installed (pip install py-spy)"
        self.outputs: dict[str, Path] = {}
        self.seconds = 0.0

    @property
    def available(self) -> bool:
        return self.binary is not None and bool(self.outputs)

    @contextlib.contextmanager
    def recording(self, stack: BenchStack) -> Iterator[None]:
        if self.binary is None:
            yield
            return
        import time  # noqa: PLC0415

        procs: list[subprocess.Popen[bytes]] = []
        self.workdir.mkdir(parents=True, exist_ok=True)
        for name, component in stack.airflow.processes.items():
            out = self.workdir / f"py-spy-{name}.txt"
            self.outputs[name] = out
            procs.append(subprocess.Popen(
                [self.binary, "record", "--subprocesses", "--nonblocking", "--rate", str(RATE), "--format", "raw",
                 "--output", str(out), "--pid", str(component.pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds = time.monotonic() - started
            for proc in procs:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            self.outputs = {k: v for k, v in self.outputs.items() if v.exists() and v.stat().st_size}
            if not self.outputs:
                self.reason = "py-spy recorded nothing (ptrace not permitted?)"

    def samples(self) -> tuple[Counter[tuple[str, str]], Counter[str]]:
        """Samples by (process role, activity), and by leaf function."""
        by_activity: Counter[tuple[str, str]] = Counter()
        leaves: Counter[str] = Counter()
        for component, path in self.outputs.items():
            for line in path.read_text(errors="replace").splitlines():
                stack, _, count = line.rpartition(" ")
                if not count.isdigit():
                    continue
                frames = stack.split(";")
                processes = [f for f in frames if f.startswith("process ")]
                code = [f for f in frames if not f.startswith("process ")]
                role = _role(component, processes)
                activity = _activity(code)
                by_activity[role, activity] += int(count)
                if code:
                    leaves[f"{role}: {_short(code[-1])}"] += int(count)
        return by_activity, leaves

    def share(self, role: str, activity: str) -> float:
        """Fraction of ``role``'s samples spent on ``activity``."""
        by_activity, _ = self.samples()
        total = sum(count for (r, _), count in by_activity.items() if r == role)
        return by_activity[role, activity] / total if total else 0.0

    def tables(self, label: str = "Unthrottled") -> list[Table]:
        """The profile's two tables, titled ``label`` (the benchmark that ran the profiled run)."""
        by_activity, leaves = self.samples()
        total = sum(by_activity.values()) or 1
        by_role: Counter[str] = Counter()
        for (role, _), count in by_activity.items():
            by_role[role] += count
        activity = Table(
            f"{label}: py-spy, what Airflow's processes were doing (one extra, profiled run)",
            ["process", "activity", "share of the process's samples", "share of all samples"],
            intro=(f"py-spy at {RATE} Hz (non-blocking) on every component and its subprocesses for the "
                   f"{self.seconds:.0f} s of the run. py-spy counts a thread as busy while it is runnable, so on "
                   "an oversubscribed 2-core machine samples measure demand for CPU, not CPU time: read the "
                   "shares, and take CPU seconds from the psutil table above. A sample importing modules "
                   "counts as 'importing' (process start); otherwise its innermost recognised frame names it."),
        )
        for (role, what), count in by_activity.most_common(18):
            activity.add(role, what, f"{count / by_role[role]:.0%}", f"{count / total:.1%}")
        top = Table(f"{label}: py-spy, hottest leaf functions", ["process: function", "share of all samples"])
        for name, count in leaves.most_common(12):
            top.add(name, f"{count / total:.1%}")
        return [activity, top]


def _activity(frames: list[str]) -> str:
    if any(p in frame for frame in frames for p in IMPORTS):
        return "importing modules (process start)"
    for frame in reversed(frames):
        for name, patterns in ACTIVITIES:
            if any(p in frame for p in patterns):
                return name
    return "other Python"


def _role(component: str, processes: list[str]) -> str:
    """Name a sampled process from its component and its depth under the component's process."""
    if len(processes) <= 1:
        return f"{component} (main process)"
    cmdline = processes[-1].split(":", 1)[-1]
    if "serve-logs" in cmdline or "serve_logs" in cmdline:
        return f"{component} log server"
    if component == "scheduler":
        return "LocalExecutor worker / task supervisor" if len(processes) == 2 else "task process"
    return f"{component} (subprocesses)"


def _short(frame: str) -> str:
    """``func (pkg/mod.py:123)`` -> ``func (pkg/mod.py)``."""
    return re.sub(r":\d+\)$", ")", frame)
