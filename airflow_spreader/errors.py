"""The root of every error airflow-spreader raises, so ``except SpreaderError`` catches all of ours.

The concrete classes keep their builtin bases too (``ConfigError`` is still a ``ValueError``), so existing
``except ValueError`` / ``except RuntimeError`` clauses keep working. Layer core: imports nothing.
"""

from __future__ import annotations

__all__ = ["SpreaderError"]


class SpreaderError(Exception):
    """Base class of every exception defined by airflow-spreader."""
