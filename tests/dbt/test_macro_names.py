"""No macro of the project shadows one of dbt's or of its PostgreSQL adapter.

dbt resolves an unqualified macro name to the root project's macro first, so a project
macro named like one of dbt's silently replaces it for every model, and an upgrade of dbt
can break it without a failing line. The project adds macros under names of its own.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from analytics_hub.settings import load_settings

DEFINITION = re.compile(r"{%-?\s*(?:macro|materialization|test)\s+(\w+)")


def macro_names(root: Path) -> dict[str, Path]:
    return {
        name: path
        for path in sorted(root.rglob("*.sql"))
        for name in DEFINITION.findall(path.read_text())
    }


def dbt_macro_folders() -> list[Path]:
    """dbt's global project and dbt-postgres's macros, as installed in dbt's virtualenv."""
    dbt = load_settings().dbt_executable
    found = subprocess.run(
        [
            str(dbt.parent / "python"),
            "-c",
            "import json, dbt.include.global_project as g, dbt.include.postgres as p;"
            "print(json.dumps([g.__path__[0], p.__path__[0]]))",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return [Path(folder) for folder in json.loads(found.stdout)]


def test_no_project_macro_has_the_name_of_one_of_dbts() -> None:
    dbt_project = load_settings().dbt_project_dir
    # Macros, and generic tests (each a macro named test_<name>) in either of their folders.
    project = macro_names(dbt_project / "macros") | macro_names(dbt_project / "tests")
    dbts = {}
    for folder in dbt_macro_folders():
        dbts.update(macro_names(folder))
    assert len(project) > 20 and len(dbts) > 200  # both sides were found
    clashes = {
        f"{name} ({project[name].name} over {dbts[name]})" for name in project.keys() & dbts.keys()
    }
    assert not clashes, f"project macros shadow dbt's: {sorted(clashes)}"
