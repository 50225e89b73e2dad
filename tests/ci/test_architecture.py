"""docs/architecture.md holds: its pictures are drawn from today's graph, and each folder imports
only what the page says it may."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from pipeline.tools.architecture import GRAPHS, build, dot_of, stale_files
from tests.conftest import ROOT

STANDARD_LIBRARY = sys.stdlib_module_names


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:9")  # the graphs are built, never run


def test_the_pictures_are_drawn_from_todays_graph(monkeypatch):
    monkeypatch.chdir(ROOT)
    graphs = {name: dot_of(build(flags), f"{name} job") for name, flags in GRAPHS.items()}
    assert "LookUpVisitor" in graphs["batch"] and "CarryTraitsForward" in graphs["streaming"]
    assert stale_files(graphs) == [], "run: python -m pipeline.tools.architecture"


def imported_modules(folder: Path) -> dict[str, set[str]]:
    """file → the modules it imports (absolute imports; every level of nesting)."""
    found: dict[str, set[str]] = {}
    for path in sorted(folder.glob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def allowed(module: str, prefixes: tuple[str, ...]) -> bool:
    return (module.split(".")[0] in STANDARD_LIBRARY
            or any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes))


@pytest.mark.parametrize(("folder", "prefixes"), [
    ("transforms/rules", ("transforms.rules",)),
    ("transforms/delivery", ("transforms.rules", "transforms.delivery", "apache_beam.io", "aiohttp", "numpy",
                             "certifi", "pycurl", "requests", "urllib3")),
    ("transforms", ("transforms", "apache_beam", "pyarrow")),
    ("woopra_standin", ("woopra_standin", "aiohttp", "pipeline.tools.redact")),
])
def test_each_folder_imports_only_what_architecture_md_allows(folder, prefixes):
    wrong = {path: sorted(module for module in modules if not allowed(module, prefixes))
             for path, modules in imported_modules(ROOT / folder).items()}
    assert {path: modules for path, modules in wrong.items() if modules} == {}


def test_the_checks_above_can_fail():
    assert not allowed("apache_beam", ("transforms.rules",))
    assert not allowed("pipeline.options", ("transforms", "apache_beam"))
    assert allowed("json", ())
