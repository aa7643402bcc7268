"""The package reads in one sitting: no import circles among its modules, no file over 500 lines,
and the layers import one way only (the audit never imports the widgets).

Imports are read statically (``ast``), in three kinds: at module level (run on import), inside
functions (deferred to a call), and under ``if TYPE_CHECKING:`` (for the type checker only).
Module-level circles break imports outright; deferred and type-only ones still tie two modules
together so that neither can be read, tested or moved alone, so every kind is counted.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "camwidgets"

MAX_LINES = 500
# The engine's two big files are being split on another branch right now (issue 17); the
# coordinator drops this exclusion once that split is merged.
SIZE_EXCLUDED: set[str] = set()  # the engine split is done: no exception left

KINDS = ("module", "function", "type-checking")


@dataclass
class Graph:
    """Import edges between the modules of one package, by kind."""

    modules: dict[str, Path]
    edges: dict[str, dict[str, set[str]]] = field(default_factory=dict)

    def of(self, kinds: Iterable[str]) -> dict[str, set[str]]:
        """Edges of the given kinds, merged."""
        merged: dict[str, set[str]] = {m: set() for m in self.modules}
        for kind in kinds:
            for source, targets in self.edges.get(kind, {}).items():
                merged[source] |= targets
        return merged


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the package ``root``."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(
    node: ast.Import | ast.ImportFrom, module: str, path: Path, known: set[str]
) -> set[str]:
    """The package's modules an import statement loads (the deepest known module of each name)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module if path.name == "__init__.py" else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            base = f"{base}.{node.module}" if node.module else base
        else:
            base = node.module or ""
        # ``from pkg import name``: name is a submodule, or something defined in pkg.
        names = [f"{base}.{alias.name}" for alias in node.names]
    out = set()
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            out.add(name)
    return out


def import_graph(root: Path) -> Graph:
    """Every import among the package's own modules, by kind (see the module docstring)."""
    modules = module_names(root)
    known = set(modules)
    graph = Graph(modules, {kind: {} for kind in KINDS})

    def visit(node: ast.AST, module: str, path: Path, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            here = kind
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    visit_stmt(stmt, module, path, "type-checking")
                for stmt in child.orelse:
                    visit_stmt(stmt, module, path, kind)
                continue
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                here = "function" if kind == "module" else kind
            visit_stmt(child, module, path, here)

    def visit_stmt(node: ast.AST, module: str, path: Path, kind: str) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for target in _targets(node, module, path, known) - {module}:
                graph.edges[kind].setdefault(module, set()).add(target)
        visit(node, module, path, kind)

    for module, path in modules.items():
        visit(ast.parse(path.read_text(encoding="utf-8")), module, path, "module")
    return graph


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return found


def _is_ancestor(package: str, module: str) -> bool:
    return module.startswith(package + ".")


def without_ancestors(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """Drop a module's imports of its own parent packages: Python imports those before the
    module in any case, and a package's ``__init__`` re-exporting its modules is no circle."""
    return {m: {t for t in ts if not _is_ancestor(t, m)} for m, ts in edges.items()}


# -- the checker finds what it should (so an empty answer below means something) ---------------


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_the_checker_finds_each_kind_of_circle(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "pkg/__init__.py": "from .a import A\n",
            "pkg/a.py": "from .b import B\nA = 1\n",
            "pkg/b.py": "def f():\n    from . import a\nB = 2\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/c.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..d import D\n"
            ),
            "pkg/d.py": "from pkg.sub import c\nD = 3\n",
            "pkg/e.py": "import pkg.f\n",
            "pkg/f.py": "import pkg.e as e\n",
        },
    )
    graph = import_graph(package)
    assert circles(without_ancestors(graph.of(["module"]))) == [["pkg.e", "pkg.f"]]
    assert graph.edges["function"] == {"pkg.b": {"pkg.a"}}
    assert graph.edges["type-checking"] == {"pkg.sub.c": {"pkg.d"}}
    assert sorted(circles(without_ancestors(graph.of(KINDS)))) == [
        ["pkg.a", "pkg.b"],
        ["pkg.d", "pkg.sub.c"],
        ["pkg.e", "pkg.f"],
    ]


# -- the package ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> Graph:
    return import_graph(PACKAGE)


def test_the_graph_sees_the_package(graph: Graph) -> None:
    # A sanity check on the parse: well-known edges of each kind are there.
    module = graph.edges["module"]
    assert "camwidgets.engine.result" in module["camwidgets.metrics.inputs"]
    assert "camwidgets.widgets.panel.core" in module["camwidgets.widgets.panel"]
    assert "camwidgets.audit.report" in graph.edges["function"]["camwidgets.audit.results"]
    assert len(graph.modules) > 80


def test_no_module_level_import_circles(graph: Graph) -> None:
    assert circles(without_ancestors(graph.of(["module"]))) == []


def test_no_import_circles_of_any_kind(graph: Graph) -> None:
    # Deferred (inside a function) and type-only imports count too: either way the two
    # modules can no longer be read or changed alone.
    assert circles(without_ancestors(graph.of(KINDS))) == []


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("camwidgets.audit", ("camwidgets.widgets",)),
        ("camwidgets.engine", ("camwidgets.widgets", "camwidgets.figures", "camwidgets.audit")),
        ("camwidgets.metrics", ("camwidgets.widgets", "camwidgets.figures")),
        ("camwidgets.figures", ("camwidgets.engine", "camwidgets.widgets", "camwidgets.audit")),
        ("camwidgets.naming", ("camwidgets.widgets",)),
    ],
)
def test_layers_import_one_way(graph: Graph, layer: str, forbidden: tuple[str, ...]) -> None:
    edges = graph.of(KINDS)
    wrong = sorted(
        f"{source} -> {target}"
        for source, targets in edges.items()
        if source == layer or source.startswith(layer + ".")
        for target in targets
        if any(target == f or target.startswith(f + ".") for f in forbidden)
    )
    assert wrong == []


def test_no_file_over_500_lines() -> None:
    sizes = {
        path.relative_to(PACKAGE).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    assert len(sizes) > 80
    too_long = {
        name: lines
        for name, lines in sorted(sizes.items())
        if lines > MAX_LINES and name not in SIZE_EXCLUDED
    }
    assert too_long == {}
