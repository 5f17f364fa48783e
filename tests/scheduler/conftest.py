"""Fixtures for end-to-end tests against real Airflow components (marker ``scheduler``).

``airflow_stack_factory(dags_folder, env=..., **kwargs)`` returns a started
:class:`~airflow_spreader.tools.stack.AirflowStack` in a fresh temporary AIRFLOW_HOME. A start costs about a
minute on 2 cores, so the factory reuses a running stack when asked again for the same dags folder, env and
options, and keeps at most one stack alive (asking for a different one stops the previous). Everything is
stopped at the end of the session. Run these tests alone with ``.venv/bin/python -m pytest -m scheduler``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest

from airflow_spreader.tools.stack import AirflowStack


class AirflowStackFactory(Protocol):
    def __call__(
        self, dags_folder: Path, env: Mapping[str, str] | None = None, **kwargs: Any
    ) -> AirflowStack: ...


@pytest.fixture(scope="session")
def airflow_stack_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStackFactory]:
    stacks: dict[str, AirflowStack] = {}

    def make(dags_folder: Path, env: Mapping[str, str] | None = None, **kwargs: Any) -> AirflowStack:
        key = repr((str(Path(dags_folder).absolute()), sorted((env or {}).items()), sorted(kwargs.items())))
        cached = stacks.get(key)
        if cached is not None and cached.running:
            return cached
        for other in stacks.values():
            other.stop()
        stacks.clear()
        stack = AirflowStack(
            home=tmp_path_factory.mktemp("airflow-home"), dags_folder=dags_folder, env=env, **kwargs
        )
        stack.start()
        stacks[key] = stack
        return stack

    yield make
    for stack in stacks.values():
        stack.stop()
