"""Imports point down: no cycle between modules, layers in one order, each module importable
on its own (docs/ARCHITECTURE.md).

The import graph is read from the source (every `import` statement, at module level or
inside a function, under `TYPE_CHECKING` too), so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mmsrarec"

# Bottom to top. A module may import its own component or a lower layer, never a higher one
# nor another component of its own layer.
LAYERS: list[set[str]] = [
    {"errors", "storage", "prompt_text", "metrics"},
    {"config"},
    {"database", "cluster"},
    {"data"},
    {"types", "trace"},
    {"models"},
    {"summarization", "tools"},
    {"critic", "scoring"},
    {"training"},
    {"recommenders"},
    {"nodes"},
    {"graph"},
    {"evaluation", "chat", "serving"},
    {"web"},
    {"cli"},
]


def module_names(package: Path = PACKAGE) -> dict[str, Path]:
    """`mmsrarec.x.y` -> its file, for every module of the package."""
    names = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package modules it imports (as Python would load them)."""
    modules = module_names(package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    base = ".".join(anchor[: len(anchor) - node.level + 1] + [base]).strip(".")
                found = [f"{base}.{alias.name}" for alias in node.names] + [base]
            else:
                continue
            for target in found:
                while target and target not in modules:  # `from a import b`: b may be a name
                    target = target.rpartition(".")[0]
                if target:
                    targets.add(target)
        # Importing `a.b.c` runs `a` and `a.b` first, except the importer's own ancestors.
        expanded = set()
        for target in targets:
            parts = target.split(".")
            for end in range(2, len(parts) + 1):
                ancestor = ".".join(parts[:end])
                if not name.startswith(ancestor + ".") and ancestor != name:
                    expanded.add(ancestor)
        graph[name] = expanded
    return graph


def component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def find_cycles(graph: dict[str, set[str]]) -> list[str]:
    """Each cycle met by a depth-first walk, as `a -> b -> a`."""
    cycles = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_no_import_cycle_between_modules() -> None:
    assert find_cycles(import_graph()) == []


def test_imports_point_down_the_layers() -> None:
    layer_of = {name: index for index, layer in enumerate(LAYERS) for name in layer}
    graph = import_graph()
    components = {component(module) for module in graph} - {""}
    assert components <= set(layer_of), f"put {sorted(components - set(layer_of))} in LAYERS"
    upward = [
        f"{module} imports {target}"
        for module, targets in sorted(graph.items())
        for target in sorted(targets)
        if component(module)
        and component(target) != component(module)
        and layer_of[component(target)] >= layer_of[component(module)]
    ]
    assert upward == []


def test_the_checker_finds_a_cycle_hidden_in_a_function_or_type_checking(tmp_path: Path):
    package = tmp_path / "mmsrarec"
    (package / "low").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "low" / "__init__.py").write_text("from mmsrarec.low import a\n")
    (package / "low" / "a.py").write_text("def f():\n    from mmsrarec.high import b\n")
    (package / "high.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mmsrarec.low.a import f\n"
    )
    graph = import_graph(package)
    assert graph["mmsrarec.low.a"] == {"mmsrarec.high"}
    assert graph["mmsrarec.high"] == {"mmsrarec.low", "mmsrarec.low.a"}  # its package runs first
    assert find_cycles(graph)  # low.a -> high -> low.a, though neither import runs at load


ISOLATED = """
import importlib, json, sys, traceback
failed = {}
for name in json.loads(sys.argv[1]):
    for loaded in [m for m in sys.modules if m == "mmsrarec" or m.startswith("mmsrarec.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed[name] = traceback.format_exc(limit=-3)
print(json.dumps(failed))
"""


def test_every_module_imports_on_its_own() -> None:
    """Each module in a fresh `sys.modules` (as far as this package goes): one process, the
    third-party libraries stay loaded, so it takes seconds, not a process per module."""
    names = sorted(module_names())
    result = subprocess.run(
        [sys.executable, "-c", ISOLATED, json.dumps(names)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=PACKAGE.parent,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    failed = json.loads(result.stdout.strip().splitlines()[-1])
    assert failed == {}, "\n".join(failed.values())
