"""The product does not import its dev harness: the direction of the two distributions.

``analytics_hub`` (include/, what the Airflow image installs) may not import ``hub_dev`` or
``simulators`` (dev/, installed for development and tests only), nor the servers that only
the test doubles run (moto, FastAPI, uvicorn). The contract is import-linter's, declared in
pyproject.toml (``[tool.importlinter]``); the DAG files, not a package, are held to the same
list here.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from analytics_hub.settings import project_root

ROOT = project_root()


def forbidden_modules() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = (c for c in config["contracts"] if c["source_modules"] == ["analytics_hub"])
    modules: list[str] = contract["forbidden_modules"]
    return modules


def test_the_product_imports_nothing_of_the_dev_harness() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports is not None, "import-linter is not installed: run `make setup`"
    # The packages from the checkout, installed or not.
    path = [str(ROOT / "include"), str(ROOT / "dev"), os.environ.get("PYTHONPATH", "")]
    result = subprocess.run(
        [lint_imports, "--no-cache", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": os.pathsep.join(p for p in path if p)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dag_file", sorted((ROOT / "dags").glob("*.py")), ids=lambda p: p.name)
def test_a_dag_imports_nothing_of_the_dev_harness(dag_file: Path) -> None:
    forbidden = set(forbidden_modules())
    imported: set[str] = set()
    for node in ast.walk(ast.parse(dag_file.read_text(), str(dag_file))):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported.add(node.module)
    assert not {name for name in imported if name.split(".")[0] in forbidden}
