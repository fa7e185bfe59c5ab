"""Imports flow one way (DESIGN.md, "Layout"): each part imports only the parts below it.

The core (``slaprobe/*.py`` but the command line) imports no other part; ``probes`` the
core only; ``exporter`` probes and the core; ``alerts`` and ``dashboards`` the core only;
``demo`` (the sample shop and ``slaprobe demo``) the exporter, probes and core; nothing
imports the command line. Every import counts, wherever it is written: inside a
function and under ``TYPE_CHECKING`` too (a type-only cycle is still a cycle to read).
The core modules import each other without a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Folder -> package, as pyproject's package-dir maps them.
PACKAGES = {
    "slaprobe": "slaprobe",
    "exporter": "slaprobe.exporter",
    "probes": "slaprobe.probes",
    "alerts": "slaprobe.alerts",
    "dashboards": "slaprobe.dashboards",
    "demo": "slaprobe.demo",
}
CLI = frozenset({"slaprobe.cli", "slaprobe.__main__"})
ALLOWED = {  # part -> parts it may import
    "core": {"core"},
    "probes": {"probes", "core"},
    "exporter": {"exporter", "probes", "core"},
    "alerts": {"alerts", "core"},
    "dashboards": {"dashboards", "core"},
    "demo": {"demo", "exporter", "probes", "core"},  # the sample shop and `slaprobe demo`
    "cli": {"cli", "demo", "exporter", "probes", "alerts", "dashboards", "core"},
}


def modules() -> dict[str, Path]:
    """Every module of the distribution: dotted name -> file."""
    found = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts))
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = modules()


def part(module: str) -> str:
    """Which part of the layout a module belongs to."""
    if module in CLI:
        return "cli"
    second = module.split(".")[1] if "." in module else ""
    return second if second in ("exporter", "probes", "alerts", "dashboards", "demo") else "core"


def imported(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """The slaprobe modules that ``module`` imports, with the line of each import."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "slaprobe":
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.split(".")[0] != "slaprobe":
                continue
            for alias in node.names:
                child = f"{base}.{alias.name}"
                yield (child if child in MODULES else base), node.lineno


def edges() -> list[tuple[str, str, int]]:
    """Every (importer, imported, line) between slaprobe modules."""
    return [(m, target, line) for m, path in MODULES.items() for target, line in imported(m, path) if target != m]


def test_every_folder_of_the_distribution_has_its_place_in_the_layout() -> None:
    assert {part(module) for module in MODULES} <= set(ALLOWED)


def test_every_import_follows_the_arrows_of_the_layout() -> None:
    wrong = [
        f"{MODULES[source].relative_to(ROOT)}:{line}: {part(source)} module {source} imports {target} ({part(target)})"
        for source, target, line in edges()
        if part(target) not in ALLOWED[part(source)]
    ]
    assert wrong == [], "imports against DESIGN.md's arrows:\n" + "\n".join(wrong)


def test_nothing_imports_the_command_line() -> None:
    wrong = [
        f"{MODULES[source].relative_to(ROOT)}:{line}: {source} imports {target}"
        for source, target, line in edges()
        if target == "slaprobe.cli" and source != "slaprobe.__main__"
    ]
    assert wrong == [], "\n".join(wrong)


def test_the_core_modules_import_each_other_without_a_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for source, target, _ in edges():
        if part(source) == part(target) == "core":
            graph.setdefault(source, set()).add(target)
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert cycles == [], "import cycles among core modules:\n" + "\n".join(cycles)
