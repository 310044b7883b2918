"""Package structure: no import cycles between plift_ns modules (module-level or inside functions), and importing
a module only defines things (no side effects on torch's weights-only checkpoint allow-list)."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Set

import pytest

import plift_ns

PACKAGE = "plift_ns"
PACKAGE_DIR = Path(plift_ns.__file__).parent


def package_modules(package_dir: Path = PACKAGE_DIR, package: str = PACKAGE) -> Dict[str, Path]:
    """Every module of the package (pkgutil.walk_packages: it imports the subpackages, to list them): name -> file."""
    def unlisted(name: str) -> None:
        raise AssertionError(f"cannot import subpackage {name} to list its modules")

    modules = {package: package_dir / "__init__.py"}
    for info in pkgutil.walk_packages([str(package_dir)], prefix=f"{package}.", onerror=unlisted):
        base = Path(info.module_finder.path) / info.name.rsplit(".", 1)[-1]  # type: ignore[union-attr]
        modules[info.name] = base / "__init__.py" if info.ispkg else base.with_suffix(".py")
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> List[ast.stmt]:
    """Every import statement, at module level or nested in functions / classes / blocks, except the ones under
    ``if TYPE_CHECKING:`` (never executed)."""
    found: List[ast.stmt] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)  # type: ignore[arg-type]
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> Optional[str]:
    """The absolute module name an ImportFrom reads from (relative imports resolved)."""
    if node.level == 0:
        return node.module
    parts = module.split(".") if is_package else module.split(".")[:-1]
    if node.level > 1:
        parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def import_graph(modules: Dict[str, Path]) -> Dict[str, Set[str]]:
    """module -> the package modules it imports (``from a.b import c`` counts as a.b.c when that is a module)."""
    graph: Dict[str, Set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        targets: Set[str] = set()
        for node in _import_nodes(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                base = _resolve(node, name, is_package)
                if base is None:
                    continue
                candidates = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                              for alias in node.names]
            targets.update(c for c in candidates if c in modules and c != name)
        graph[name] = targets
    return graph


def find_cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted, plus self-imports."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    components: List[List[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return components


def _describe(cycle: List[str], graph: Dict[str, Set[str]]) -> str:
    members = set(cycle)
    edges = [f"{a} -> {b}" for a in cycle for b in sorted(graph[a] & members)]
    return "{" + ", ".join(cycle) + "}: " + "; ".join(edges)


def test_the_graph_sees_function_level_and_relative_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    pkg = tmp_path / "structure_probe"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from structure_probe.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .. import a\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import structure_probe.a\n")
    graph = import_graph(package_modules(pkg, "structure_probe"))
    assert set(graph) == {"structure_probe", "structure_probe.a", "structure_probe.c", "structure_probe.sub",
                          "structure_probe.sub.b"}
    assert graph["structure_probe.a"] == {"structure_probe.sub.b"}
    assert graph["structure_probe.sub.b"] == {"structure_probe.a"}
    assert graph["structure_probe.c"] == set()
    assert find_cycles(graph) == [["structure_probe.a", "structure_probe.sub.b"]]


def test_no_import_cycles() -> None:
    modules = package_modules()
    assert "plift_ns.labels.writer" in modules and "plift_ns.config" in modules
    graph = import_graph(modules)
    cycles = find_cycles(graph)
    assert not cycles, "import cycles between plift_ns modules:\n" + "\n".join(_describe(c, graph) for c in cycles)


def module_level_externals(modules: Dict[str, Path]) -> List[str]:
    """The non-plift_ns modules the package imports at module level (``import x.y`` / ``from x.y import z``)."""
    names: Set[str] = set()
    for path in modules.values():
        for node in ast.parse(path.read_text()).body:
            blocks = [node] + (node.body + node.orelse + [s for h in node.handlers for s in h.body]
                               if isinstance(node, ast.Try) else [])
            for stmt in blocks:
                if isinstance(stmt, ast.Import):
                    names.update(alias.name for alias in stmt.names)
                elif isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and stmt.module:
                    names.add(stmt.module)
    return sorted(n for n in names if n.split(".")[0] not in (PACKAGE, "__future__"))


_IMPORT_ALL = """
import importlib, json, sys
import torch.serialization as s
def names():
    return sorted(f"{getattr(g, '__module__', '')}.{getattr(g, '__qualname__', repr(g))}" for g in s.get_safe_globals())
externals, modules = json.loads(sys.argv[1])
for name in externals:  # third-party modules may allow-list their own types when imported (torch.distributed does)
    try:
        importlib.import_module(name)
    except Exception:
        pass
before = names()
for name in modules:
    importlib.import_module(name)
print(json.dumps({"before": before, "after": names()}))
"""


def test_importing_every_module_leaves_the_checkpoint_allow_list_alone() -> None:
    """One fresh interpreter imports the third-party modules plift_ns imports, then every plift_ns module: torch's
    weights-only safe globals are unchanged by the latter (allow-listing our checkpoints is an explicit call,
    plift_ns.checkpoints.allow_trusted_checkpoints, made where a checkpoint is about to be loaded)."""
    modules = package_modules()
    argument = json.dumps([module_level_externals(modules), sorted(modules)])
    done = subprocess.run([sys.executable, "-c", _IMPORT_ALL, argument], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    added = sorted(set(result["after"]) - set(result["before"]))
    assert result["after"] == result["before"], f"importing plift_ns allow-listed: {added}"
