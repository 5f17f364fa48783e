"""The package registers as an Airflow provider."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from airflow_spreader import __version__ as VERSION
from airflow_spreader.get_provider_info import get_provider_info

pytestmark = pytest.mark.airflow


def test_airflow_providers_list_shows_the_package_with_its_version(airflow_db: None) -> None:
    result = subprocess.run([sys.executable, "-m", "airflow", "providers", "list", "-o", "json"],
                            capture_output=True, text=True, env=os.environ.copy(), check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    providers = {p["package_name"]: p for p in json.loads(result.stdout[result.stdout.index("["):])}
    assert providers["airflow-spreader"]["version"] == VERSION


def test_provider_info_names_modules_that_exist() -> None:
    import importlib

    info = get_provider_info()
    assert info["package-name"] == "airflow-spreader"
    for group in ("hooks", "operators"):
        for entry in info[group]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
