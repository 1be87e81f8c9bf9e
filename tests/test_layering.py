"""The layering of DESIGN (imports go downward) checked on the source: every import of every
module, function-level and TYPE_CHECKING ones included, must point to a lower layer or stay
inside its own, and no set of modules may import each other in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("medxai", "pipelines", "data_cleaning")
# lowest first; a module belongs to the longest prefix that names it
LAYERS = (
    ("medxai",),  # the core: errors, paths, codec, outputs, boxes, journal, ...
    ("medxai.statistics",),
    ("medxai.data",),
    ("medxai.models",),
    ("medxai.explain",),
    ("medxai.metrics",),
    ("medxai.report",),
    ("data_cleaning",),
    ("pipelines",),
    ("medxai.cli", "medxai.__main__"),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {
        module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))
    }


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def layer(name: str) -> int:
    best, depth = 0, -1
    for k, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > depth:
                best, depth = k, len(prefix)
    return best


@pytest.fixture(scope="module")
def graph() -> nx.DiGraph:
    found = modules()
    g = nx.DiGraph()
    for name, path in found.items():
        g.add_node(name)
        for target in imported(name, path, set(found)):
            if not name.startswith(target + "."):  # a module's own package __init__
                g.add_edge(name, target)
    return g


def test_no_module_imports_a_higher_layer(graph):
    upward = [
        f"{a} -> {b}" for a, b in graph.edges if layer(b) > layer(a) and not _package_init(a, b)
    ]
    assert upward == []


def _package_init(a: str, b: str) -> bool:
    """A package's __init__ may re-export its own submodules."""
    return b.startswith(a + ".")


def test_no_import_circles(graph):
    circles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert circles == []


def test_the_walk_sees_function_level_and_type_checking_imports(tmp_path):
    """A broken walk would pass the two tests above vacuously."""
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pipelines.audit.config import AuditConfig\n"
        "def f():\n    import data_cleaning.detect\n    from medxai import codec\n"
    )
    known = {"pipelines.audit.config", "data_cleaning.detect", "medxai.codec", "medxai"}
    assert imported("x", source, known) == known
    assert layer("medxai.codec") < layer("medxai.explain.igos") < layer("pipelines.audit.run")
    assert layer("pipelines.audit") < layer("medxai.cli.audit")
