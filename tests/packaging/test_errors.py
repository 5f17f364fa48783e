"""One root for the errors: ``except SpreaderError`` catches every exception class of the package."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import airflow_spreader
from airflow_spreader import SpreaderError


def exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(airflow_spreader.__path__, "airflow_spreader."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == info.name:
                found[f"{info.name}.{name}"] = value
    return found


def test_every_exception_class_of_the_package_is_a_spreader_error() -> None:
    classes = exception_classes()
    assert len(classes) >= 14, sorted(classes)  # the walk really finds them (ConfigError ... CliError)
    assert {n for n, c in classes.items() if not issubclass(c, SpreaderError)} == set()


def test_the_builtin_bases_stay_so_existing_except_clauses_still_work() -> None:
    from airflow_spreader.core.config import ConfigError
    from airflow_spreader.state.tracker import TrackerError

    assert issubclass(ConfigError, ValueError)
    assert issubclass(TrackerError, RuntimeError)


def test_the_public_names_resolve_lazily() -> None:
    from airflow_spreader import backfill_dag, spread_items
    from airflow_spreader.dag_factory import backfill_dag as factory
    from airflow_spreader.operators.fanout import spread_items as fanout

    assert backfill_dag is factory
    assert spread_items is fanout
    for name in airflow_spreader.__all__:
        assert getattr(airflow_spreader, name) is not None, name
