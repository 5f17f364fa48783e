"""``config``: show a backfill's Variable, change some fields, or replace it whole, after validating it.

Values are read as JSON (``20``, ``4.5``), else taken as text (``Europe/Paris``). The changes are
merged into the Variable as stored, so ``--set`` can also repair a Variable that is a JSON object
but no longer validates; ``--replace`` writes a whole new JSON object, so it also repairs a Variable
whose JSON is broken. Nothing is written unless the result is a valid :class:`SpreadConfig`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from airflow_spreader.core.config import RULES, SpreadConfig
from airflow_spreader.core.names import config_variable
from airflow_spreader.tools.cli_errors import CliError
from airflow_spreader.tools.readmodel.sources import AirflowSource


def parse_assignment(text: str) -> tuple[str, Any]:
    """``field=value`` -> ``(field, value)``, the value read as JSON when it is JSON."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise CliError(f"--set expects FIELD=VALUE, got {text!r} (fields: {', '.join(RULES)})", exit_code=2)
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return name.strip(), value


def read_stored(airflow: AirflowSource, dag_id: str) -> str:
    """The Variable's text; a CliError when it is missing or Airflow cannot be reached."""
    key = config_variable(dag_id)
    found = airflow.variable(key)
    if found.problem:
        raise CliError(f"cannot read the Variable {key}: {found.problem}")
    if found.value is None:
        raise CliError(f"no Variable {key}: the first run of the DAG {dag_id} creates it from its initial_config "
                       "(or --dag-id names another DAG)")
    return found.value


def change(airflow: AirflowSource, dag_id: str, assignments: Sequence[str], name: str = "NAME") -> dict[str, Any]:
    """Validate the Variable with the assignments applied, write it, and tell what changed."""
    key = config_variable(dag_id)
    stored = read_stored(airflow, dag_id)
    try:
        current = json.loads(stored)
    except ValueError:
        current = None
    if not isinstance(current, dict):
        raise CliError(f"the Variable {key} is not a JSON object, so there is no field to change in it; "
                       f"replace it whole: airflow-spreader config {name} --replace '{{\"batch_size\": ...}}'",
                       exit_code=2)
    changes = dict(parse_assignment(text) for text in assignments)
    config = SpreadConfig.from_dict({**current, **changes})  # a ConfigError names every bad field
    new = config.to_dict()
    try:  # compare with what was in force, defaults included, when the stored Variable was valid
        before = SpreadConfig.from_dict(current).to_dict()
    except ValueError:
        before = current
    diff = {name: [before.get(name), value] for name, value in new.items() if before.get(name) != value}
    if new != current:
        airflow.write_variable(key, config.to_json())
    return {"variable": key, "changed": diff, "config": new}


def replace(airflow: AirflowSource, dag_id: str, text: str) -> dict[str, Any]:
    """Write ``text`` as the whole Variable once it is a JSON object and a valid configuration (fields left out
    take their defaults); the Variable may hold anything before, broken JSON included."""
    key = config_variable(dag_id)
    stored = read_stored(airflow, dag_id)
    try:
        given = json.loads(text)
    except ValueError as error:
        raise CliError(f"--replace expects a JSON object, got {text[:80]!r}: {error}", exit_code=2) from error
    if not isinstance(given, dict):
        raise CliError(f"--replace expects a JSON object, got {type(given).__name__} {text[:80]!r}", exit_code=2)
    config = SpreadConfig.from_dict(given)  # a ConfigError names every bad field
    new = config.to_dict()
    try:
        before: dict[str, Any] | None = SpreadConfig.from_json(stored).to_dict()
    except ValueError:
        before = None  # broken or invalid: everything changes
    diff = {name: [None if before is None else before.get(name), value] for name, value in new.items()
            if before is None or before.get(name) != value}
    airflow.write_variable(key, config.to_json())
    return {"variable": key, "changed": diff, "config": new, "replaced": True}


def show(airflow: AirflowSource, dag_id: str) -> dict[str, Any]:
    """The Variable, parsed and checked; an invalid one is shown with its problems, not hidden."""
    key = config_variable(dag_id)
    stored = read_stored(airflow, dag_id)
    try:
        return {"variable": key, "config": SpreadConfig.from_json(stored).to_dict(), "problem": None}
    except ValueError as error:
        return {"variable": key, "config": None, "raw": stored, "problem": str(error)}


def render_show(result: dict[str, Any]) -> str:
    if result["config"] is None:
        return f"{result['variable']} (INVALID: {result['problem']}):\n{result['raw']}"
    width = max(len(name) for name in RULES)
    lines = [f"{result['variable']} (read at the start of every cycle):"]
    lines += [f"  {name:<{width}}  {json.dumps(value)}" for name, value in result["config"].items()]
    return "\n".join(lines)


def render_change(result: dict[str, Any]) -> str:
    if not result["changed"]:
        return f"{result['variable']} unchanged"
    lines = [f"{result['variable']} updated; it takes effect at the next cycle:"]
    lines += [f"  {name}: {json.dumps(old)} -> {json.dumps(new)}" for name, (old, new) in result["changed"].items()]
    return "\n".join(lines)
