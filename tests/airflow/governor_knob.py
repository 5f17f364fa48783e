"""A `callable` health signal for the tests: the number in $AIRFLOW_HOME/governor-knob (0 without it)."""

from __future__ import annotations

import os
from pathlib import Path


def path() -> Path:
    return Path(os.environ["AIRFLOW_HOME"]) / "governor-knob"


def knob() -> float:
    file = path()
    return float(file.read_text()) if file.exists() else 0.0


def turn(value: float | None) -> None:
    if value is None:
        path().unlink(missing_ok=True)
    else:
        path().write_text(str(value))
