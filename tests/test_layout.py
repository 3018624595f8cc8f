"""The folders show the architecture: core is pure, and only tools (and tests) use the tools."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "plugins" / "mailforce"
NOT_IN_CORE = ("mailforce.es", "mailforce.stages", "mailforce.tools", "mailforce.dag_tasks", "mailforce.assets",
               "elasticsearch", "elastic_transport", "airflow")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _is_under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_core_imports_nothing_from_elasticsearch_io_stages_tools_or_airflow():
    modules = sorted((PACKAGE / "core").glob("*.py"))
    assert modules
    offending = {
        f"{path.name}: {name}"
        for path in modules
        for name in imported_modules(path)
        if any(_is_under(name, forbidden) for forbidden in NOT_IN_CORE)
    }
    assert not offending, sorted(offending)


def test_only_the_tools_import_the_tools():
    outside = [path for path in PACKAGE.rglob("*.py") if "tools" not in path.relative_to(PACKAGE).parts]
    outside += sorted((PACKAGE.parents[1] / "dags").glob("*.py"))
    outside.append(PACKAGE.parent / "mailforce_report_plugin.py")  # product code: the API server's plugin
    assert len(outside) > 40 and any(path.name == "mailforce_erase.py" for path in outside)
    offending = {
        f"{path.relative_to(PACKAGE.parents[1])}: {name}"
        for path in outside
        for name in imported_modules(path)
        if _is_under(name, "mailforce.tools")
    }
    assert not offending, sorted(offending)


def test_only_settings_reads_the_environment():
    readers = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "tools" not in path.relative_to(PACKAGE).parts and "os.environ" in path.read_text(encoding="utf-8")
    )
    assert readers in ([], ["settings.py"]), readers


# What each room may import of the package: data flows one way, core <- es <- stages <- DAG task bodies.
MAY_NOT_IMPORT = {
    "es": ("mailforce.stages", "mailforce.dag_tasks", "mailforce.dag_stages", "mailforce.assets"),
    "stages": ("mailforce.dag_tasks", "mailforce.dag_stages", "mailforce.assets"),
}


def test_layers_import_only_downward_and_no_stage_imports_another():
    offending = set()
    for room, forbidden in MAY_NOT_IMPORT.items():
        for path in sorted((PACKAGE / room).glob("*.py")):
            for name in imported_modules(path):
                own = f"mailforce.{room}.{path.stem}"
                other_stage = room == "stages" and _is_under(name, "mailforce.stages") and not _is_under(name, own) \
                    and name != "mailforce.stages"
                if other_stage or any(_is_under(name, package) for package in forbidden):
                    offending.add(f"{room}/{path.name}: {name}")
    assert not offending, sorted(offending)
    assert len(list((PACKAGE / "stages").glob("*.py"))) >= 9


def test_the_command_line_tools_start_without_importing_airflow():
    """The tools (demo, deployed, lease, who_knows, report, ...) answer in a fraction of a second: only
    a Connection needs Airflow (`mailforce.es.hook`, imported where one is used)."""
    import subprocess
    import sys

    tools = sorted(path.stem for path in (PACKAGE / "tools").glob("*.py") if path.stem != "__init__")
    assert {"deployed", "lease", "who_knows", "report"} <= set(tools)
    probe = ("import importlib, sys\n"
             f"for name in {tools!r}:\n"
             "    importlib.import_module('mailforce.tools.' + name)\n"
             "print(sorted(name for name in sys.modules if name == 'airflow' or name.startswith('airflow.'))[:5])\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(PACKAGE.parent), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]", result.stdout
