"""Provider metadata, found by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

VERSION = "0.1.0"


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-spreader",
        "name": "airflow-spreader",
        "description": "Throttled, resumable id-range backfills of database tables, spread over time.",
        "versions": [VERSION],
        "hook-class-names": [],
        "connection-types": [],
        "hooks": [
            {"integration-name": "airflow-spreader",
             "python-modules": ["airflow_spreader.hooks.spreader", "airflow_spreader.hooks.source"]},
        ],
        "operators": [
            {"integration-name": "airflow-spreader",
             "python-modules": ["airflow_spreader.operators.plan", "airflow_spreader.operators.batch",
                                "airflow_spreader.operators.next_cycle"]},
        ],
        "integrations": [
            {"integration-name": "airflow-spreader", "external-doc-url": "https://pypi.org/project/airflow-spreader/",
             "tags": ["software"]},
        ],
    }
