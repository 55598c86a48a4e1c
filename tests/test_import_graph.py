"""No import cycles between edgekit modules: the import graph, read with `ast` from the source, is acyclic.

Why: a cycle makes import order matter (a module half-initialised when the other reads a name from it) and hides
which module is the base layer. Both module-level and function-level imports count: a lazy import inside a
function is still a dependency, and one lazy edge is how a cycle hides until someone moves an import to the top.
`TYPE_CHECKING` blocks do not run and do not count, nor does a module's import of its own parent package (Python
initialises the parent first whatever the module says). The one allowed cycle is the compiler's lowering registry:
`converters/tflite/lowerings/*` register into `registry`, which imports the lowerings package to fill itself.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# source folder -> dotted package it installs as (pyproject.toml's [tool.setuptools.package-dir])
PACKAGE_DIRS = {"edgekit": "edgekit", "converters": "edgekit.converters", "runtimes": "edgekit.runtimes"}
LOWERINGS = "edgekit.converters.tflite.lowerings"
REGISTRY = "edgekit.converters.tflite.registry"


def _module_files() -> dict[str, Path]:
    modules = {}
    for folder, package in PACKAGE_DIRS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([package, *parts])] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The known modules `module` imports, anywhere in its body except `if TYPE_CHECKING:` blocks."""
    found: set[str] = set()

    def target(name: str) -> str | None:
        # the deepest known module a dotted name names (`edgekit.app.Model` -> `edgekit.app`)
        while name:
            if name in known:
                return name
            name = name.rpartition(".")[0]
        return None

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if (hit := target(alias.name)) is not None:
                    found.add(hit)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            for alias in node.names:
                hit = target(f"{source}.{alias.name}") or target(source)
                if hit is not None:
                    found.add(hit)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    # a module's own ancestor packages are imported before it anyway (`from edgekit import __version__` adds nothing)
    return {m for m in found if m != module and not module.startswith(m + ".")}


def import_graph() -> dict[str, set[str]]:
    files = _module_files()
    known = set(files)
    graph = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[module] = _imports(tree, module, path.name == "__init__.py", known)
    return graph


def _allowed(cycle: list[str]) -> bool:
    """The lowering registry: every module of the cycle is the registry or in the lowerings package."""
    return all(m == REGISTRY or m == LOWERINGS or m.startswith(LOWERINGS + ".") for m in cycle)


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each as a sorted list of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    counter = [0]

    def connect(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                connect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def _path_through(graph: dict[str, set[str]], component: list[str]) -> str:
    """One concrete cycle inside a component, as `a -> b -> a`, so the failure names the edges to cut."""
    members = set(component)
    start = component[0]
    parents = {start: None}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for succ in sorted(graph[node] & members):
            if succ == start:
                path = [node]
                while parents[path[-1]] is not None:
                    path.append(parents[path[-1]])
                return " -> ".join([*reversed(path), start])
            if succ not in parents:
                parents[succ] = node
                queue.append(succ)
    return " <-> ".join(component)


def test_the_graph_sees_the_packages_and_their_imports():
    graph = import_graph()
    assert "edgekit.app" in graph and "edgekit.converters.torch_export" in graph and "edgekit.runtimes.base" in graph
    assert "edgekit.runtimes.base" in graph["edgekit.runtimes"]  # a module-level import
    assert "edgekit.loading" in graph["edgekit"]  # a function-level import counts too


def test_the_cycle_finder_finds_a_cycle_and_names_it():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert _path_through(graph, ["a", "b", "c"]) == "a -> b -> c -> a"


def test_the_lowering_registry_cycle_is_the_only_one_allowed():
    assert _allowed([REGISTRY, f"{LOWERINGS}.conv", LOWERINGS])
    assert not _allowed([REGISTRY, "edgekit.converters.tflite.compiler"])


def test_no_import_cycles_between_edgekit_modules():
    graph = import_graph()
    cycles = [c for c in find_cycles(graph) if not _allowed(c)]
    if cycles:
        pytest.fail("import cycles (cut one edge of each; a lazy import still counts):\n" + "\n".join(
            f"  {_path_through(graph, c)}   [component: {', '.join(c)}]" for c in cycles))
