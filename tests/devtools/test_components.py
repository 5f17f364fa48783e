"""Components of an AirflowStack: command lines, names, health keys, Celery workers and their readiness."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.components import DEFAULT_COMPONENTS, Component, celery_worker


def test_plain_commands_keep_their_names_and_health_keys() -> None:
    components = [Component.of(name) for name in DEFAULT_COMPONENTS]
    assert [(c.name, c.args) for c in components] == [(n, (n,)) for n in DEFAULT_COMPONENTS]
    assert [c.health_key for c in components] == ["scheduler", "dag_processor", "triggerer", None]
    assert all(c.ready_pattern is None for c in components)


def test_multi_word_commands_are_split_and_named_for_their_log_file() -> None:
    worker = Component.of("celery worker --concurrency 2 --celery-hostname 'w 1@%h'")
    assert worker.name == "celery-worker"
    assert worker.args == ("celery", "worker", "--concurrency", "2", "--celery-hostname", "w 1@%h")
    assert worker.health_key is None and worker.ready_pattern is not None
    assert Component.of("triggerer --capacity 50").health_key == "triggerer"
    assert Component.of(worker) is worker


@pytest.mark.parametrize("spec", ["", "webserver", "celery", "celery beat", "rm -rf /"])
def test_unknown_commands_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="unknown component"):
        Component.of(spec)


def test_names_must_make_log_file_names() -> None:
    with pytest.raises(ValueError, match="component name"):
        Component("../w1", ("celery", "worker"))
    with pytest.raises(ValueError, match="no command"):
        Component("w1", ())


def test_a_celery_worker_has_its_own_host_name_and_serves_no_logs() -> None:
    w1 = celery_worker("w1", 3, "--queues", "backfills")
    assert w1.name == "celery-worker-w1"
    assert w1.args == ("celery", "worker", "--celery-hostname", "w1@%h", "--concurrency", "3", "--skip-serve-logs",
                       "--queues", "backfills")


def test_a_celery_worker_is_ready_when_this_starts_log_says_so(tmp_path: Path) -> None:
    w1, log = celery_worker("w1"), tmp_path / "celery-worker-w1.log"
    assert not w1.ready_in(log)
    log.write_text("2026-01-01T00:00:00Z [info     ] w1@vm ready.                   [celery.apps.worker]\n")
    assert w1.ready_in(log)
    offset = log.stat().st_size  # a restart appends to the same log: the old line does not count
    assert not w1.ready_in(log, offset)
    with log.open("a") as file:
        file.write("[info     ] Connected to redis://127.0.0.1:6379/5\n[info     ] w1@vm ready.\n")
    assert w1.ready_in(log, offset)
    assert Component.of("scheduler").ready_in(log, offset)
