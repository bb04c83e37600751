"""The layout is the architecture (ARCHITECTURE §2): imports point one way and never in a circle.

Every `import` of the four packages is read from the source (function-local ones too, which
is where the CLI keeps its heavy imports), so a circle hidden behind a lazy import counts.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tokenizer", "model", "service", "pipeline")
# What each package may import (besides itself): tokenizer ← model ← service, pipeline on top.
ALLOWED = {
    "tokenizer": set(),
    "model": {"tokenizer"},
    "service": {"model", "tokenizer"},
    "pipeline": {"model", "tokenizer", "service"},
}


def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """Project modules that `path` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}  # `from pkg import mod`
    return {m for m in found if m in known and m.split(".")[0] in PACKAGES}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) - {name} for name, path in known.items()}


def test_no_import_circle_among_the_projects_modules():
    try:
        order = list(TopologicalSorter(graph()).static_order())
    except CycleError as e:
        raise AssertionError(f"import circle: {' -> '.join(e.args[1])}") from None
    assert "pipeline.cli" in order and "service.app" in order


def test_imports_point_one_way():
    upward = [
        f"{name} imports {dep}"
        for name, deps in graph().items()
        for dep in deps
        if (top := name.split(".")[0]) != (dep_top := dep.split(".")[0])
        and dep_top not in ALLOWED[top]
    ]
    assert upward == []
