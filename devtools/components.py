"""The long-running Airflow commands an :class:`~devtools.stack.AirflowStack` starts.

A component is ``airflow *args`` with a name (its log is ``<home>/logs/<name>.log``). A plain string is
split like a shell would: ``"scheduler"``, ``"celery worker"``, ``"triggerer --capacity 50"``. Two Celery
workers on one machine need distinct Celery host names and must not both serve logs on the same port:
:func:`celery_worker` builds one::

    AirflowStack(home, dags, executor="CeleryExecutor",
                 components=[*DEFAULT_COMPONENTS, celery_worker("w1"), celery_worker("w2")],
                 env={"AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/5",
                      "AIRFLOW__CELERY__RESULT_BACKEND": "db+postgresql://postgres@127.0.0.1:5432/airflow"})

Readiness: scheduler, dag-processor and triggerer report to ``GET /api/v2/monitor/health`` (or ``airflow jobs
check``); Celery workers do not, so a worker is ready once its log shows Celery's ``<hostname> ready.`` line
(:attr:`Component.ready_pattern`), written after it connected to the broker and started consuming.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

DEFAULT_COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")
# component -> key of GET /api/v2/monitor/health, and job type for `airflow jobs check`
HEALTH_KEYS = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}
JOB_TYPES = {"scheduler": "SchedulerJob", "dag-processor": "DagProcessorJob", "triggerer": "TriggererJob"}
CELERY_READY = r"@\S+ ready\."
_COMMANDS = (*DEFAULT_COMPONENTS, "celery worker", "celery flower")


@dataclass(frozen=True)
class Component:
    """``airflow *args``, logging to ``<name>.log``; ready when healthy, or when its log matches ``ready_pattern``."""

    name: str
    args: tuple[str, ...]
    ready_pattern: str | None = None

    @classmethod
    def of(cls, spec: str | Component) -> Component:
        """A component from a command line such as ``"celery worker --concurrency 2"`` (named ``celery-worker``)."""
        if isinstance(spec, Component):
            return spec
        args = tuple(shlex.split(spec))
        command = " ".join(args[:2]) if args[:1] == ("celery",) else " ".join(args[:1])
        if command not in _COMMANDS:
            raise ValueError(f"unknown component {spec!r}: the command must be one of {list(_COMMANDS)}")
        ready = CELERY_READY if command == "celery worker" else None
        return cls(command.replace(" ", "-"), args, ready)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            raise ValueError(f"component name {self.name!r}: use letters, digits, '_', '.', '-' (a log file name)")
        if not self.args:
            raise ValueError(f"component {self.name!r} has no command")

    @property
    def health_key(self) -> str | None:
        """Its key in ``/api/v2/monitor/health`` (None: not reported there)."""
        return HEALTH_KEYS.get(self.args[0])

    def ready_in(self, log: Path, offset: int = 0) -> bool:
        """Whether ``log``, from byte ``offset`` on (this start's output), shows :attr:`ready_pattern`."""
        if self.ready_pattern is None:
            return True
        try:
            with log.open("rb") as file:
                file.seek(offset)
                text = file.read().decode(errors="replace")
        except FileNotFoundError:
            return False
        return re.search(self.ready_pattern, text) is not None


def celery_worker(name: str, concurrency: int = 4, *extra_args: str) -> Component:
    """A Celery worker named ``celery-worker-<name>``, Celery host ``<name>@<machine>``, not serving logs (the
    stack's components share one AIRFLOW_HOME: task logs are local files, and two log servers would clash)."""
    return Component(
        f"celery-worker-{name}",
        ("celery", "worker", "--celery-hostname", f"{name}@%h", "--concurrency", str(concurrency),
         "--skip-serve-logs", *extra_args),
        CELERY_READY,
    )
