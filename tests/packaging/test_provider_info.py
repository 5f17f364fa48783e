"""get_provider_info is complete and valid against Airflow's own provider-info schema."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
from pathlib import Path

import airflow
import jsonschema
from airflow.sdk import BaseOperator
from airflow.triggers.base import BaseTrigger

import airflow_spreader
from airflow_spreader.get_provider_info import get_provider_info


def test_provider_info_matches_airflows_schema() -> None:
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)
    assert get_provider_info()["versions"] == [airflow_spreader.__version__]


def listed(group: str) -> set[str]:
    return {m for entry in get_provider_info()[group] for m in entry["python-modules"]}


def test_every_operator_and_trigger_class_is_listed_and_every_listed_module_imports() -> None:
    for group in ("hooks", "operators", "triggers"):
        for module in listed(group):
            importlib.import_module(module)
    for plugin in get_provider_info()["plugins"]:
        module, _, name = plugin["plugin-class"].rpartition(".")
        assert getattr(importlib.import_module(module), name).name == plugin["name"]
    for info in pkgutil.walk_packages(airflow_spreader.__path__, "airflow_spreader."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if inspect.isclass(value) and value.__module__ == info.name:
                if issubclass(value, BaseOperator) and value.execute is not BaseOperator.execute:  # not a mere base
                    assert info.name in listed("operators"), value
                if issubclass(value, BaseTrigger):
                    assert info.name in listed("triggers"), value
