"""The layers import only the layers below them: core < state < airflow adapters < tools."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "airflow_spreader"
LAYERS = {"core": 1, "sql": 1, "state": 2, "cycle": 2.5, "hooks": 3, "operators": 3, "triggers": 3, "dag_factory": 3,
          "get_provider_info": 3, "metrics": 3,
          "tools": 4, "__main__": 4}


def layer_of(module: str) -> float | None:
    parts = module.split(".")
    if parts[0] != "airflow_spreader" or len(parts) < 2:
        return None
    return LAYERS.get(parts[1])


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_import_only_lower_layers(path: Path) -> None:
    own = layer_of("airflow_spreader." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
    if own is None:
        return
    for module in imports(path):
        other = layer_of(module)
        if other is not None:
            assert other <= own, f"{path.name} (layer {own}) imports {module} (layer {other})"
        if own <= 2.5:  # core, sql, state and cycle run without Airflow
            assert not (module == "airflow" or module.startswith("airflow.")), f"{path.name} imports {module}"


def test_the_public_api_imports_nothing_from_airflow() -> None:
    code = ("import sys, airflow_spreader; "
            "bad = [m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_module_is_over_400_lines() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long
