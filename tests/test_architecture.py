"""The package's layering, read from the source: no import circle inside a subpackage (imports inside
functions and under ``TYPE_CHECKING`` count: they are circles deferred, not broken), and the low-level
modules import nothing above them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "enlcn"


def module_name(path: Path) -> str:
    """``enlcn/attention/fast.py`` → ``enlcn.attention.fast`` (a package's ``__init__`` is the package)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every ``enlcn`` module ``path`` imports, anywhere in it, relative imports resolved; ``from pkg import
    name`` counts as importing ``pkg.name`` when that is a module, else ``pkg``."""
    here = module_name(path).split(".")
    if path.name != "__init__.py":
        here = here[:-1]  # the package a relative import starts from
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "enlcn")
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            if target.split(".")[0] != "enlcn":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if _exists(sub) else target)
    return found


def _exists(module: str) -> bool:
    rel = Path(*module.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


def import_graph(package: str) -> dict[str, set[str]]:
    """Module → the modules of the same subpackage it imports (the package's ``__init__`` left out: it
    re-exports, it is not imported by its own modules)."""
    folder = PACKAGE / Path(*package.split(".")[1:])
    modules = {module_name(p): p for p in folder.glob("*.py") if p.name != "__init__.py"}
    graph = {name: imported_modules(path) & modules.keys() for name, path in modules.items()}
    return {name: deps - {name} for name, deps in graph.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (its modules in order, the first repeated at the end), or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_deferred_circle(tmp_path):
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize(
    "package",
    ["enlcn.attention", "enlcn.bench", "enlcn.study", "enlcn.study.gpu", "enlcn.data", "enlcn.models"],
)
def test_no_import_circle_inside_a_subpackage(package):
    assert find_cycle(import_graph(package)) is None


def test_no_gpu_study_module_is_over_400_lines():
    """``enlcn.study.gpu`` is one module per concern (setting, bundle, training, …), none a hub again."""
    sizes = {p.name: len(p.read_text().splitlines()) for p in (PACKAGE / "study" / "gpu").glob("*.py")}
    assert "setting.py" in sizes and max(sizes.values()) <= 400, sizes


def test_native_is_a_leaf():
    """The kernels' loader builds and loads code that takes tensors; it imports nothing of the modules that
    call it (only the fault points, a module with no enlcn imports)."""
    native = PACKAGE / "attention" / "native.py"
    assert imported_modules(native) == {"enlcn.faultpoint"}
    assert imported_modules(PACKAGE / "faultpoint.py") == set()
