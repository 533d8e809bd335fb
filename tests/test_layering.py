"""The package's layers: no import cycle between its units, and the results layer and the command line's start
never import torch, so `resnet-lab --help`, `report`, `compare`, `estimate` and `scaling` start at once on a machine
where importing torch takes seconds."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "resnet_lab"


def module_name(path: Path, package: Path = PACKAGE) -> str:
    return ".".join((package.name, *path.relative_to(package).with_suffix("").parts)).removesuffix(".__init__")


def modules_under(folder: str) -> list[str]:
    return sorted(module_name(p) for p in (PACKAGE / folder).rglob("*.py"))


# Every module of the results layer and of the lab's spec, and what the command line and the report import of the rest.
TORCH_FREE = (
    "resnet_lab",
    "resnet_lab.errors",
    "resnet_lab.devices",
    "resnet_lab.fileio",
    "resnet_lab.argtypes",
    "resnet_lab.machine",
    "resnet_lab.procs",
    *modules_under("results"),
    *modules_under("spec"),
    "resnet_lab.cli",
    "resnet_lab.cli.main",
    "resnet_lab.cli.report",
    "resnet_lab.cli.compare",
    "resnet_lab.cli.estimate",
    "resnet_lab.cli.scaling",
    "resnet_lab.cli.ab",
    "resnet_lab.cli.history",
    "resnet_lab.suite",
    "resnet_lab.suite.ab_runs",
    "resnet_lab.suite.checkout",
    "resnet_lab.engine",
    "resnet_lab.interrupts",
    "resnet_lab.engine.phases",
    "resnet_lab.distributed",
    "resnet_lab.distributed.scaling",
)


def first_torch_import(modules: tuple[str, ...]) -> str | None:
    """The first of `modules`, imported in this order in a fresh interpreter, after which torch is loaded."""
    probe = (
        f"import importlib, sys\nfor name in {list(modules)!r}:\n    importlib.import_module(name)\n"
        "    if 'torch' in sys.modules:\n        print(name)\n        break\nelse:\n    print('-')"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True).stdout
    last = out.strip().splitlines()[-1]
    return None if last == "-" else last


def imports_torch(code: str) -> bool:
    probe = f"import sys\n{code}\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True).stdout
    return out.strip().splitlines()[-1] == "True"


def test_the_results_layer_covers_every_module():
    assert "resnet_lab.results.report.sheet" in TORCH_FREE and "resnet_lab.results.runs" in TORCH_FREE
    assert len([m for m in TORCH_FREE if m.startswith("resnet_lab.results")]) == len(
        list((PACKAGE / "results").rglob("*.py"))
    )


def test_no_module_of_the_results_layer_imports_torch():
    assert first_torch_import(TORCH_FREE) is None


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["report", "--help"],
        ["compare", "--help"],
        ["estimate", "--help"],
        ["scaling", "--help"],
        ["ab", "--help"],
        ["history", "--help"],
    ],
)
def test_cli_help_does_not_import_torch(argv):
    code = f"from resnet_lab.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
    assert not imports_torch(code)


def test_the_probe_sees_torch_when_it_is_imported():
    assert imports_torch("import resnet_lab.model")
    assert first_torch_import(("resnet_lab.errors", "resnet_lab.model", "resnet_lab.fileio")) == "resnet_lab.model"


# The import graph between the package's units (each subpackage and each top-level module), read from the source:
# every import statement wherever it is (function-local, under TYPE_CHECKING), relative ones resolved.


def imported_modules(path: Path, package: Path = PACKAGE) -> list[tuple[str, int]]:
    """(module, line) for every module of `package` that `path` imports, `from x import y` counting x and x.y."""
    name = module_name(path, package)
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            source = ".".join([*base, *([node.module] if node.module else [])])
            found += [(source, node.lineno)] + [(f"{source}.{alias.name}", node.lineno) for alias in node.names]
    return [(m, line) for m, line in found if m.split(".")[0] == package.name]


def unit_of(module: str, package: Path = PACKAGE) -> str | None:
    """The unit a module belongs to: its subpackage or top-level module (None for the package itself)."""
    parts = module.split(".")
    if len(parts) < 2:
        return None
    return parts[1] if (package / parts[1]).is_dir() or (package / f"{parts[1]}.py").is_file() else None


def unit_graph(package: Path = PACKAGE) -> dict[tuple[str, str], list[str]]:
    """(importer unit, imported unit) -> where, for every import between two different units."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(package.rglob("*.py")):
        source = unit_of(module_name(path, package), package)
        for module, line in imported_modules(path, package):
            target = unit_of(module, package)
            if source and target and source != target:
                edges.setdefault((source, target), []).append(f"{path.relative_to(package.parent)}:{line}")
    return edges


def cycles(edges: dict[tuple[str, str], list[str]]) -> list[list[str]]:
    """The strongly connected components of more than one unit (Tarjan's algorithm)."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                found.append(sorted([*component, v]))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def describe(component: list[str], edges: dict[tuple[str, str], list[str]]) -> str:
    return "; ".join(
        f"{a} -> {b} ({', '.join(list(dict.fromkeys(where))[:3])})"
        for (a, b), where in sorted(edges.items())
        if a in component and b in component
    )


def test_no_import_cycle_between_the_units_of_the_package():
    edges = unit_graph()
    assert ("suite", "engine") in edges and ("results", "spec") in edges  # the graph sees the package's imports
    found = cycles(edges)
    assert not found, "import cycles: " + " | ".join(describe(c, edges) for c in found)


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root / "resnet_lab"


@pytest.mark.parametrize(
    "hidden",
    [
        "def f():\n    from ..low import x\n",  # function-local, relative
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import resnet_lab.low.mod\n",
        "from .. import low\n",  # the unit imported by name from the package
    ],
)
def test_the_cycle_check_sees_every_kind_of_import(tmp_path, hidden):
    package = write_package(
        tmp_path,
        {
            "resnet_lab/__init__.py": "",
            "resnet_lab/low/__init__.py": "",
            "resnet_lab/high/__init__.py": "",
            "resnet_lab/low/mod.py": "x = 1\nfrom ..high.mod import y\n",
            "resnet_lab/high/mod.py": "y = 2\n" + hidden,
            "resnet_lab/leaf.py": "from .low import mod\n",
        },
    )
    edges = unit_graph(package)
    assert cycles(edges) == [["high", "low"]]
    assert "resnet_lab/high/mod.py" in describe(["high", "low"], edges) and ("leaf", "low") in edges


def test_benchmarks_conftest_loads_every_hook_and_fixture_of_the_session():
    """Every function of suite/session.py named `pytest_*` or decorated as a fixture, read from its source, is in
    benchmarks/conftest.py's namespace, the very object (pytest collects a conftest's hooks and fixtures from it)."""
    import importlib.util

    from resnet_lab.suite import session

    source = ast.parse((PACKAGE / "suite" / "session.py").read_text())

    def is_fixture(decorator: ast.expr) -> bool:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        return isinstance(target, ast.Attribute) and target.attr == "fixture"

    declared = {
        node.name
        for node in source.body
        if isinstance(node, ast.FunctionDef)
        and (node.name.startswith("pytest_") or any(is_fixture(d) for d in node.decorator_list))
    }
    assert {"pytest_configure", "pytest_sessionfinish", "lab_options", "d_state"} <= declared
    spec = importlib.util.spec_from_file_location("benchmarks_conftest", PACKAGE.parent / "benchmarks" / "conftest.py")
    assert spec and spec.loader
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    assert {name: getattr(conftest, name, None) for name in declared} == {
        name: getattr(session, name) for name in declared
    }
