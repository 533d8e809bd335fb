"""The suite's `--lab-*` options as a pytest plugin: declared once (`LAB_OPTIONS`), in one group, parsed once.

The top-level conftest.py registers it (`pytest_plugins`), so the options parse in every
session, and `config.lab_options` (a frozen `LabOptions`) is what the benchmarks' fixtures
hand out (`session.py`). Every option's `type=` comes from `resnet_lab.argtypes`, so a bad value
is pytest's usage error (exit 4) at parse time, before any folder is created or data is read; the
data source's layout and integrity are checked in `pytest_configure`, which runs before any other
plugin's (tryfirst), so a usage error there leaves nothing behind either. Nothing here measures anything.

To add an option: append an `Option` to `LAB_OPTIONS` with a converter from argtypes (the property
test in tests/test_options_property.py then covers it) and read it in `pytest_configure`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from ..argtypes import (
    choice,
    data_source,
    device_list,
    non_negative_int,
    on_off,
    output_dir,
    positive_int,
    seed_list,
    worker_list,
)
from ..data import SOURCES_HELP, SYNTHETIC, check_source
from ..errors import LabError
from ..fileio import check_outputs
from ..spec import groups
from ..spec.presets import C3_DEFAULT_WORKERS, PRESETS
from .options import build_options


@dataclass(frozen=True)
class Option:
    """One `--lab-*` option: its name and `addoption` keywords (type from argtypes, default, metavar, help)."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def dest(self) -> str:
        return self.name.lstrip("-").replace("-", "_")


_SMOKE, _FULL = PRESETS["smoke"], PRESETS["full"]
LAB_OPTIONS: tuple[Option, ...] = (
    Option(
        "--lab-preset",
        dict(
            type=choice(*PRESETS, what="preset"),
            default="smoke",
            metavar="NAME",
            help=f"smoke ({_SMOKE.epochs} epochs x {_SMOKE.max_batches} batches, CPU-sized) or full "
            f"(the lab as written: {_FULL.epochs} epochs, all batches). Default: smoke",
        ),
    ),
    Option(
        "--lab-data",
        dict(type=data_source, default=SYNTHETIC, metavar="SRC", help=f"{SOURCES_HELP}. Default: {SYNTHETIC}"),
    ),
    Option(
        "--lab-device",
        dict(
            type=device_list,
            default="cpu,cuda",
            metavar="LIST",
            help="comma-separated devices; absent ones are skipped with the reason. Default: cpu,cuda",
        ),
    ),
    Option(
        "--lab-epochs",
        dict(
            type=positive_int, default=None, metavar="N", help="epochs per training benchmark. Default: from the preset"
        ),
    ),
    Option(
        "--lab-batches",
        dict(
            type=non_negative_int,
            default=None,
            metavar="N",
            help="max batches per epoch, 0 = no cap. Default: from the preset (smoke 2, full none)",
        ),
    ),
    Option(
        "--lab-eval-batches",
        dict(
            type=non_negative_int,
            default=None,
            metavar="N",
            help="test batches evaluated after training where a question reads test "
            "accuracy (C6, C7 and the runs serving them), "
            "0 = the whole test set. Default: from the preset (smoke 2, full all)",
        ),
    ),
    Option(
        "--lab-workers",
        dict(
            type=worker_list,
            default=None,
            metavar="LIST",
            help="C3 worker counts, e.g. 0,2,4. Default: "
            f"{','.join(map(str, C3_DEFAULT_WORKERS))} and on by 4 while loading "
            "time improves",
        ),
    ),
    Option(
        "--lab-seeds",
        dict(
            type=seed_list,
            default=None,
            metavar="LIST",
            help="seeds of the training benchmarks (weights, shuffle, augmentation), "
            "e.g. 0,1,2: each trains once per seed, "
            "with `seed` as a param (names end in -seed=N). Default: 0 only, and no seed param",
        ),
    ),
    Option(
        "--lab-out",
        dict(
            type=output_dir,
            default="lab-output",
            metavar="DIR",
            help="folder for profiler traces and tables. Default: lab-output",
        ),
    ),
    Option(
        "--lab-tf32",
        dict(
            type=on_off,
            default="on",
            metavar="on|off",
            help="CUDA: cuDNN runs fp32 convolutions as TF32 (PyTorch's default on "
            "Ampere and newer); 'off' computes them "
            "in full fp32 like the lab's older GPUs. Default: on",
        ),
    ),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("resnet-lab", "resnet_lab benchmark suite")
    for option in LAB_OPTIONS:
        group.addoption(option.name, dest=option.dest, **option.kwargs)


def _outputs(config: pytest.Config) -> list[tuple[str, str]]:
    """This session's outputs: --lab-out, and pytest-benchmark's JSON and storage where it is loaded."""
    outputs = [("--lab-out", str(config.getoption("lab_out")))]
    json_out = config.getoption("benchmark_json", None)
    if json_out is not None:
        outputs.append(("--benchmark-json", str(getattr(json_out, "name", json_out))))
    storage = str(config.getoption("benchmark_storage", "") or "")
    if (
        config.getoption("benchmark_save", None) or config.getoption("benchmark_autosave", None)
    ) and storage.startswith("file://"):
        outputs.append(("--benchmark-storage", storage.removeprefix("file://")))
    return outputs


@pytest.hookimpl(tryfirst=True)  # before benchmarks/conftest.py creates --lab-out: a usage error leaves nothing
def pytest_configure(config: pytest.Config) -> None:
    try:
        data = config.getoption("lab_data")
        if data != SYNTHETIC:
            check_source(data)  # a missing, unrecognized or truncated source is a usage error, not N test errors
            check_outputs(_outputs(config), [("--lab-data", data)])
        config.lab_options = build_options(  # type: ignore[attr-defined]  # the options ride on pytest's Config (read by the fixtures)
            preset=config.getoption("lab_preset"),
            data=data,
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
    # trylast: after the modules' own parameters, so ids end in -seed=N, and a configuration's seeds run one after
    # another.
    options = getattr(metafunc.config, "lab_options", None)
    if options is None or not options.seeded or "seed" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("benchmark")
    if marker is not None and marker.kwargs.get("group") in groups.SEEDED:
        metafunc.parametrize("seed", options.seeds, ids=lambda s: f"seed={s}")
