"""The root of every error the package raises, so that ``except SpreaderError`` catches all of them."""

from __future__ import annotations


class SpreaderError(Exception):
    """Any error of airflow-spreader."""
