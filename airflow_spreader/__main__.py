"""``python -m airflow_spreader``: the same console as the ``airflow-spreader`` script."""

from __future__ import annotations

import sys

from airflow_spreader.tools.cli import main

if __name__ == "__main__":
    sys.exit(main())
