"""The import rules, checked: the layers declared for import-linter in pyproject.toml, no
module importing another's ``_private`` names, a short top level and no import circles. So
that the map in the README stays true as the code grows."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pipeline"
#: Modules directly in pipeline/ (its *.py files other than __init__.py): the layer under every
#: stage. More than this and code that belongs to a stage or to dsp/ is collecting there.
MAX_TOP_LEVEL_MODULES = 10


def _modules() -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its own name)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]):
    """``(line, target module, imported names)`` for each import of a pipeline module in
    ``path``, anywhere in it (module level, functions, TYPE_CHECKING blocks). ``from a import
    b`` with ``a.b`` a module counts as importing ``a.b``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target not in modules:
                continue
            names = []
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in modules:
                    yield node.lineno, sub, ()
                else:
                    names.append(alias.name)
            if names:
                yield node.lineno, target, tuple(names)


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {target for _, target, _ in _imports(name, path, modules) if target != name}
            for name, path in modules.items()}


def _lint_imports() -> Path:
    beside = Path(sys.executable).parent / "lint-imports"
    if not beside.exists():
        pytest.fail("import-linter is not installed: pip install -e '.[test]' (make test does)")
    return beside


def test_import_linter_contracts_are_kept():
    """pyproject.toml's [tool.importlinter] contracts, on this tree (not an installed copy)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    run = subprocess.run([str(_lint_imports()), "--no-cache"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    broken = [line for line in run.stdout.splitlines() if line.rstrip().endswith("BROKEN")]
    assert run.returncode == 0, (
        "import rules broken:\n" + "\n".join(broken or ["(no contract named)"])
        + "\n\n" + run.stdout[-4000:] + run.stderr[-2000:])


def test_no_module_imports_another_modules_private_names():
    modules = _modules()
    found = []
    for name, path in modules.items():
        for line, target, names in _imports(name, path, modules):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and target != name:
                found.append(f"{path.relative_to(ROOT)}:{line}: {', '.join(private)} from {target}")
    assert not found, "private names imported from other modules:\n" + "\n".join(found)


def test_the_top_level_stays_small():
    """Files *.py directly in pipeline/ count, __init__.py does not."""
    top = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(top) <= MAX_TOP_LEVEL_MODULES, \
        f"{len(top)} modules at the top of pipeline/ (at most {MAX_TOP_LEVEL_MODULES}): {top}"


def _circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        circles.append(component)
    return circles


def test_circles_are_found():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    """Between pipeline modules, imports inside functions included: a circle hidden in a
    function still ties the two modules together."""
    circles = _circles(_graph())
    assert not circles, "import circles:\n" + "\n".join(" ↔ ".join(sorted(c)) for c in circles)
