"""The results layer and the command line's start never import torch, so `resnet-lab --help`,
`report`, `compare` and `estimate` start at once on a machine where importing torch takes seconds."""

from __future__ import annotations

import subprocess
import sys

import pytest

RESULTS_LAYER = ("resnet_lab", "resnet_lab.benchjson", "resnet_lab.report", "resnet_lab.compare", "resnet_lab.plots",
                 "resnet_lab.answers", "resnet_lab.estimate", "resnet_lab.outputs", "resnet_lab.fileio", "resnet_lab.cli")


def imports_torch(code: str) -> bool:
    probe = f"import sys\n{code}\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True).stdout
    return out.strip().splitlines()[-1] == "True"


@pytest.mark.parametrize("module", RESULTS_LAYER)
def test_results_layer_does_not_import_torch(module):
    assert not imports_torch(f"import {module}")


@pytest.mark.parametrize("argv", [["--help"], ["report", "--help"], ["compare", "--help"], ["estimate", "--help"]])
def test_cli_help_does_not_import_torch(argv):
    code = f"from resnet_lab.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
    assert not imports_torch(code)


def test_the_probe_sees_torch_when_it_is_imported():
    assert imports_torch("import resnet_lab.model")
