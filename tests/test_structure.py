"""The shape of the code: what a maintainer can hold in their head.

For ``experiments/`` and ``libs/freegrad/src``: no module over 350 lines, no function over 50,
no module named like a standard-library one, and no import cycle between the repository's
modules (imports inside functions included: a cycle hidden in a function is still one).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TREES = {"experiments": ROOT, "freegrad": ROOT / "libs" / "freegrad" / "src"}
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 350, 50


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the checked trees."""
    out = {}
    for top, base in TREES.items():
        for path in sorted((base / top).rglob("*.py")):
            parts = path.relative_to(base).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def imports_of(module: str) -> set[str]:
    """The repository modules ``module`` imports, anywhere in its body."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):  # a submodule (from . import x), else base
            base = _resolve(module, node)
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                     for a in node.names]
        found |= {n for n in names if n in MODULES and n != module}
    return found


def _cycle() -> list[str] | None:
    """One import cycle between the modules (as a path that returns to its start), or None.
    A package imports its own submodules to re-export them; a submodule that imports its
    package back is the cycle."""
    graph = {m: imports_of(m) for m in MODULES}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_the_checker_finds_the_imports_it_should():
    assert "experiments.training.run" in imports_of("experiments.training.units")
    assert "freegrad.registry" in imports_of("freegrad")  # relative, in a package
    assert "freegrad.forwards" in imports_of("freegrad.wrappers")  # from .forwards import ...
    assert "freegrad.registry" in imports_of("freegrad.cards")  # from . import registry
    assert "freegrad" in imports_of("freegrad.cards")  # import freegrad, inside a function


def _closure(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        for n in imports_of(todo.pop()) - seen:
            seen.add(n)
            todo.append(n)
    return seen


@pytest.mark.parametrize("module", ["freegrad.interval", "freegrad.rules", "freegrad.registry",
                                    "freegrad.context"])
def test_the_rule_api_sits_above_no_compiled_kernels(module):
    assert not {m for m in _closure(module) if m.startswith("freegrad.kernels")}


def test_analysis_is_no_dependency_of_training():
    """The train stages depend on config, training, tasks and results (dvc.yaml), so none of
    those may import analysis: an edit there would then change training unseen."""
    for module in MODULES:
        if module.startswith(("experiments.config", "experiments.training",
                              "experiments.tasks", "experiments.results")):
            assert not {m for m in _closure(module) if m.startswith("experiments.analysis")
                        and not module.endswith("__main__")}, module


def test_no_import_cycle():
    assert _cycle() is None, " -> ".join(_cycle())


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_size_and_name(module):
    path = MODULES[module]
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)}: {lines} lines"
    assert path.stem not in sys.stdlib_module_names, f"{path.relative_to(ROOT)} shadows the stdlib"
    long = [f"{f.name} ({f.end_lineno - f.lineno + 1} lines, line {f.lineno})"
            for f in ast.walk(ast.parse(path.read_text()))
            if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
            and f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == [], f"{path.relative_to(ROOT)}: functions over {MAX_FUNCTION_LINES} lines"
