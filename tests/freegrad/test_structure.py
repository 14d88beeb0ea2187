"""The shape of libs/freegrad/src: small modules, short functions, no module named like the
standard library's, and no import cycle between freegrad's own modules (function-level imports
included)."""

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "libs" / "freegrad" / "src"
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 50  # the def line to the body's last line


def _modules() -> dict[str, Path]:
    """Dotted name -> path of every Python module under SRC (a package as its __init__)."""
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute name ``from <...> import`` names in ``module``."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str) -> set[str]:
    """The freegrad modules ``module`` imports, at any level of its code."""
    path, found = MODULES[module], set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path, node)
            for alias in node.names:  # a submodule (from . import x), else a name of base
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return {name for name in found if name in MODULES and name != module}


def _cycle() -> list[str] | None:
    graph = {m: sorted(imports(m)) for m in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in graph[m]:
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        state[m] = 2
        path.pop()
        return None

    for m in graph:
        if m not in state and (found := visit(m)):
            return found
    return None


def test_the_source_tree_is_found():
    assert "freegrad" in MODULES and "freegrad.kernels" in MODULES


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_long(module):
    lines = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{module}: {lines} lines"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_function_is_long(module):
    long = [
        f"{node.name} (line {node.lineno}): {node.end_lineno - node.lineno + 1} lines"
        for node in ast.walk(_tree(MODULES[module]))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{module}: {long}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_named_like_a_standard_library_module(module):
    assert module.rsplit(".", 1)[-1] not in sys.stdlib_module_names


def test_no_import_cycle_between_freegrad_modules():
    assert _cycle() is None, " -> ".join(_cycle())


def test_the_cycle_check_sees_function_level_and_relative_imports():
    assert "freegrad.forwards" in imports("freegrad.wrappers")  # from .forwards import ...
    assert "freegrad.registry" in imports("freegrad.cards")  # from . import registry
    assert "freegrad" in imports("freegrad.cards")  # import freegrad, under __main__
    assert "freegrad.kernels" in imports("freegrad.kernels.__main__")  # from freegrad import


def _closure(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        for n in imports(todo.pop()) - seen:
            seen.add(n)
            todo.append(n)
    return seen


@pytest.mark.parametrize("module", ["freegrad.interval", "freegrad.rules", "freegrad.registry",
                                    "freegrad.context"])
def test_the_rule_api_sits_above_no_compiled_kernels(module):
    assert not {m for m in _closure(module) if m.startswith("freegrad.kernels")}
