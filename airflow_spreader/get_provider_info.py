"""Provider metadata, found by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_spreader import __version__

INTEGRATION = "airflow-spreader"


def get_provider_info() -> dict[str, Any]:
    # tests/packaging/test_provider_info.py checks this against Airflow's schema and the package's classes.
    return {
        "package-name": "airflow-spreader",
        "name": "airflow-spreader",
        "description": "Throttled, resumable id-range backfills of database tables, spread over time.",
        "versions": [__version__],
        "integrations": [
            {"integration-name": INTEGRATION, "external-doc-url": "https://pypi.org/project/airflow-spreader/",
             "tags": ["software"]},
        ],
        "hook-class-names": [],
        "connection-types": [],
        "hooks": [
            {"integration-name": INTEGRATION,
             "python-modules": ["airflow_spreader.hooks.spreader", "airflow_spreader.hooks.source"]},
        ],
        "operators": [
            {"integration-name": INTEGRATION,
             "python-modules": ["airflow_spreader.operators.plan", "airflow_spreader.operators.batch",
                                "airflow_spreader.operators.next_cycle", "airflow_spreader.operators.report",
                                "airflow_spreader.operators.finished",
                                "airflow_spreader.operators.fanout"]},
        ],
        "triggers": [
            {"integration-name": INTEGRATION, "python-modules": ["airflow_spreader.triggers.backfill_wait"]},
        ],
        # Loaded through the package's ``airflow.plugins`` entry point (Airflow reads provider plugins only
        # with ``[core] lazy_discover_providers = False``); listed here so ``airflow providers plugins`` names it.
        "plugins": [
            {"name": "airflow_spreader", "plugin-class": "airflow_spreader.tools.ui.plugin.SpreaderBackfillsPlugin"},
        ],
    }
