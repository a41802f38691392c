"""The layers of README "Layout": data flows one way, and no module imports itself back round a cycle.

Every import counts, including those inside functions and under ``TYPE_CHECKING``: a cycle that only
the type checker sees still ties the modules together for whoever changes them.
"""
from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parent.parent / "engine"

# Low to high: a module may import its own layer and the layers below it, never one above.
LAYERS = [
    ("engine.errors", "engine.resources", "engine.severity", "engine.names", "engine.metrics", "engine.logs"),
    ("engine.documents",),
    ("engine.config", "engine.settings"),
    ("engine.events",),
    ("engine.language",),
    ("engine.evaluation",),
    ("engine.dispatch",),
    ("engine.pagerduty",),
    ("engine.daemon",),
    ("engine.dryrun",),
    ("engine.web",),
    ("engine.commands",),
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ENGINE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in ENGINE.rglob("*.py") if "shipped" not in p.parts}


def _imports(path: Path) -> set[str]:
    """The engine modules a file imports, wherever the import statement is."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("engine"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("engine"):
            for alias in node.names:  # `from engine.dryrun import replay` imports a module
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in MODULES else node.module)
    return {name for name in found if name in MODULES and MODULES[name].name != "__init__.py"}


GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _layer(module: str) -> int:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS and to README's Layout")


def test_every_module_belongs_to_a_layer() -> None:
    for module in MODULES:
        if module != "engine":
            _layer(module)


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = sorted(f"{m} imports {i}" for m, imported in GRAPH.items() if m != "engine"
                    for i in imported if _layer(i) > _layer(m))
    assert upward == []


def test_the_rule_language_and_evaluation_import_nothing_of_backend_daemon_web_or_commands() -> None:
    outer = ("engine.pagerduty", "engine.daemon", "engine.web", "engine.commands", "engine.dispatch")
    pure = [m for m in GRAPH if m.startswith(("engine.language", "engine.evaluation"))]
    assert pure, "the rule language and evaluation packages have moved"
    assert sorted(f"{m} imports {i}" for m in pure for i in GRAPH[m] if i.startswith(outer)) == []


def test_there_is_no_import_cycle() -> None:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(GRAPH[module]):
            if state.get(imported) == 1:
                cycles.append(path[path.index(imported):] + [imported])
            elif imported not in state:
                visit(imported, path + [imported])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_checker_sees_imports_inside_functions_and_type_checking_blocks(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from engine.config import Config\n"
                      "def f():\n    from engine.dryrun import replay\n", encoding="utf-8")
    assert _imports(source) == {"engine.config", "engine.dryrun.replay"}


def test_no_test_module_imports_another() -> None:
    """Shared builders live in tests/builders.py (and fixtures in conftest.py), so a test module can be
    moved or deleted without breaking the others."""
    tests = Path(__file__).resolve().parent
    offenders = []
    for path in sorted(tests.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("test_", "conftest")):
                offenders.append(f"{path.name} imports {node.module}")
            elif isinstance(node, ast.Import):
                offenders += [f"{path.name} imports {a.name}" for a in node.names if a.name.startswith("test_")]
    assert offenders == []
