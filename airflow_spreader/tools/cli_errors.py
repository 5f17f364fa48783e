"""The console's own error: a bad argument or a refusal, told as one line with the exit code to leave with."""

from __future__ import annotations

from airflow_spreader.tools.readmodel.sources import SourceError


class CliError(SourceError):
    """A problem of the command itself (its arguments, a refused action), not of a place it reads."""
