"""The results layer and the command line's start never import torch, so `resnet-lab --help`,
`report`, `compare`, `estimate` and `scaling` start at once on a machine where importing torch takes seconds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "resnet_lab"
# Every module of the results layer, and what the command line and the report import of the rest.
TORCH_FREE = (
    "resnet_lab", "resnet_lab.errors", "resnet_lab.fileio", "resnet_lab.argtypes", "resnet_lab.machine", "resnet_lab.procs",
    *sorted("resnet_lab." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
            for p in (PACKAGE / "results").rglob("*.py")),
    "resnet_lab.cli", "resnet_lab.cli.main", "resnet_lab.cli.report", "resnet_lab.cli.compare", "resnet_lab.cli.estimate", "resnet_lab.cli.scaling", "resnet_lab.cli.ab",
    "resnet_lab.cli.history",
    "resnet_lab.suite", "resnet_lab.suite.groups", "resnet_lab.suite.presets", "resnet_lab.suite.outputs", "resnet_lab.suite.ab_runs",
    "resnet_lab.engine", "resnet_lab.engine.interrupts", "resnet_lab.engine.phases", "resnet_lab.distributed", "resnet_lab.distributed.scaling",
)


def first_torch_import(modules: tuple[str, ...]) -> str | None:
    """The first of `modules`, imported in this order in a fresh interpreter, after which torch is loaded."""
    probe = (f"import importlib, sys\nfor name in {list(modules)!r}:\n    importlib.import_module(name)\n"
             "    if 'torch' in sys.modules:\n        print(name)\n        break\nelse:\n    print('-')")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True).stdout
    last = out.strip().splitlines()[-1]
    return None if last == "-" else last


def imports_torch(code: str) -> bool:
    probe = f"import sys\n{code}\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True).stdout
    return out.strip().splitlines()[-1] == "True"


def test_the_results_layer_covers_every_module():
    assert "resnet_lab.results.report.sheet" in TORCH_FREE and "resnet_lab.results.runs" in TORCH_FREE
    assert len([m for m in TORCH_FREE if m.startswith("resnet_lab.results")]) == len(list((PACKAGE / "results").rglob("*.py")))


def test_no_module_of_the_results_layer_imports_torch():
    assert first_torch_import(TORCH_FREE) is None


@pytest.mark.parametrize("argv", [["--help"], ["report", "--help"], ["compare", "--help"], ["estimate", "--help"], ["scaling", "--help"], ["ab", "--help"], ["history", "--help"]])
def test_cli_help_does_not_import_torch(argv):
    code = f"from resnet_lab.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
    assert not imports_torch(code)


def test_the_probe_sees_torch_when_it_is_imported():
    assert imports_torch("import resnet_lab.model")
    assert first_torch_import(("resnet_lab.errors", "resnet_lab.model", "resnet_lab.fileio")) == "resnet_lab.model"
