"""The suite's `--lab-*` options as a pytest plugin: declared once, in one group, parsed once.

The top-level conftest.py registers it (`pytest_plugins`), so the options parse in every
session, and `config.lab_options` (a frozen `LabOptions`) is what the benchmarks' fixtures
hand out (`session.py`). Nothing here measures anything.
"""

from __future__ import annotations

import argparse

import pytest

from ..argtypes import non_negative_int, non_negative_int_list, positive_int, seed_list
from ..data import SOURCES_HELP, SYNTHETIC
from ..errors import LabError
from . import groups
from .options import build_options
from .presets import C3_DEFAULT_WORKERS, PRESETS


def _choice(text: str) -> str:
    if text not in PRESETS:
        raise argparse.ArgumentTypeError(f"unknown preset '{text}'; choose one of {', '.join(PRESETS)}")
    return text


def _on_off(text: str) -> bool:
    if text.lower() not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected 'on' or 'off', got '{text}'")
    return text.lower() == "on"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("resnet-lab", "resnet_lab benchmark suite")
    smoke, full = PRESETS["smoke"], PRESETS["full"]
    group.addoption(
        "--lab-preset", type=_choice, default="smoke", metavar="NAME",
        help=f"smoke ({smoke.epochs} epochs x {smoke.max_batches} batches, CPU-sized) or full "
        f"(the lab as written: {full.epochs} epochs, all batches). Default: smoke",
    )
    group.addoption("--lab-data", default=SYNTHETIC, metavar="SRC", help=f"{SOURCES_HELP}. Default: {SYNTHETIC}")
    group.addoption(
        "--lab-device", default="cpu,cuda", metavar="LIST",
        help="comma-separated devices; absent ones are skipped with the reason. Default: cpu,cuda",
    )
    group.addoption("--lab-epochs", type=positive_int, default=None, metavar="N", help="epochs per training benchmark. Default: from the preset")
    group.addoption(
        "--lab-batches", type=non_negative_int, default=None, metavar="N",
        help="max batches per epoch, 0 = no cap. Default: from the preset (smoke 2, full none)",
    )
    group.addoption(
        "--lab-eval-batches", type=non_negative_int, default=None, metavar="N",
        help="test batches evaluated after training where a question reads test accuracy (C6, C7 and the runs serving them), "
        "0 = the whole test set. Default: from the preset (smoke 2, full all)",
    )
    group.addoption(
        "--lab-workers", type=non_negative_int_list, default=None, metavar="LIST",
        help=f"C3 worker counts, e.g. 0,2,4. Default: {','.join(map(str, C3_DEFAULT_WORKERS))} and on by 4 while loading time improves",
    )
    group.addoption(
        "--lab-seeds", type=seed_list, default=None, metavar="LIST",
        help="seeds of the training benchmarks (weights, shuffle, augmentation), e.g. 0,1,2: each trains once per seed, "
        "with `seed` as a param (names end in -seed=N). Default: 0 only, and no seed param",
    )
    group.addoption("--lab-out", default="lab-output", metavar="DIR", help="folder for profiler traces and tables. Default: lab-output")
    group.addoption(
        "--lab-tf32", type=_on_off, default=True, metavar="on|off",
        help="CUDA: cuDNN runs fp32 convolutions as TF32 (PyTorch's default on Ampere and newer); 'off' computes them "
        "in full fp32 like the lab's older GPUs. Default: on",
    )


def pytest_configure(config: pytest.Config) -> None:
    try:
        config.lab_options = build_options(  # type: ignore[attr-defined]
            preset=config.getoption("lab_preset"),
            data=config.getoption("lab_data"),
            devices=config.getoption("lab_device"),
            epochs=config.getoption("lab_epochs"),
            batches=config.getoption("lab_batches"),
            eval_batches=config.getoption("lab_eval_batches"),
            workers=config.getoption("lab_workers"),
            out_dir=config.getoption("lab_out"),
            tf32=config.getoption("lab_tf32"),
            seeds=config.getoption("lab_seeds"),
        )
    except LabError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl(trylast=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # trylast: after the modules' own parameters, so ids end in -seed=N, and a configuration's seeds run one after another.
    options = getattr(metafunc.config, "lab_options", None)
    if options is None or not options.seeded or "seed" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("benchmark")
    if marker is not None and marker.kwargs.get("group") in groups.SEEDED:
        metafunc.parametrize("seed", options.seeds, ids=lambda s: f"seed={s}")
