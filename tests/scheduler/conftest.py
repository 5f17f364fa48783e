"""Fixtures for end-to-end tests against real Airflow components (marker ``scheduler``).

``airflow_stack_factory(dags_folder, env=..., **kwargs)`` returns a started
:class:`~devtools.stack.AirflowStack` in a fresh temporary AIRFLOW_HOME. A start costs about a
minute on 2 cores, so the factory reuses a running stack when asked again for the same dags folder, env and
options, and keeps at most one stack alive (asking for a different one stops the previous). Everything is
stopped at the end of the session. Run these tests alone with ``.venv/bin/python -m pytest -m scheduler``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest
import sqlalchemy as sa

from devtools.stack import AirflowStack
from tests.airflow.conftest import POSTGRES_URL


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


@pytest.fixture(scope="module")
def pg() -> Iterator[sa.Engine]:
    """The test PostgreSQL, with the drills' control and log tables (dags/spreader_drill_dags.py)."""
    engine = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("CREATE TABLE IF NOT EXISTS drill_control (dag_id TEXT, begin_id INTEGER, "
                             "sleep_s DOUBLE PRECISION, fail_times INTEGER, hang_s DOUBLE PRECISION)"))
        conn.execute(sa.text("ALTER TABLE drill_control ADD COLUMN IF NOT EXISTS hang_after_s DOUBLE PRECISION"))
        # sparse keys ("rows" batching) go beyond INTEGER: tables created before issue 14 are widened
        conn.execute(sa.text("ALTER TABLE drill_control ALTER COLUMN begin_id TYPE BIGINT"))
        conn.execute(sa.text("CREATE TABLE IF NOT EXISTS drill_log (id SERIAL PRIMARY KEY, dag_id TEXT, "
                             "begin_id BIGINT, end_id BIGINT, run_at DOUBLE PRECISION, started DOUBLE PRECISION, "
                             "ended DOUBLE PRECISION, pid INTEGER, try_number INTEGER, outcome TEXT)"))
        conn.execute(sa.text("ALTER TABLE drill_log ALTER COLUMN begin_id TYPE BIGINT, "
                             "ALTER COLUMN end_id TYPE BIGINT"))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def metadata_db(pg: sa.Engine) -> Iterator[str]:
    """A fresh PostgreSQL database for Airflow's metadata (and Celery's results), dropped after the module:
    its stack fixture must stop the stack first."""
    name = f"spreader_af_{uuid.uuid4().hex[:8]}"
    with pg.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    yield pg.url.set(database=name).render_as_string(hide_password=False)
    with pg.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def drill_source_env() -> dict[str, str]:
    """The environment the drill DAGs need: their source connection and control database."""
    source = sa.make_url(POSTGRES_URL)
    return {"AIRFLOW_CONN_DRILL_SOURCE": json.dumps({"conn_type": "postgres", "host": source.host,
                                                     "port": source.port, "login": source.username,
                                                     "schema": source.database}),
            "SPREADER_DRILL_DB": POSTGRES_URL}
