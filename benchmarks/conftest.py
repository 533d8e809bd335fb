"""Fixtures and parametrization shared by every benchmark module (no measurement logic here)."""

from __future__ import annotations

import pytest
import torch

from resnet_lab.benchmarking import SweepState
from resnet_lab.data import DataConfig, load_datasets
from resnet_lab.distributed.bench import DState
from resnet_lab.machine import environment_info
from resnet_lab.speed import runs_last
from resnet_lab.suite import LabOptions

CUDA_SKIP = "CUDA is not available here (torch.cuda.is_available() is False); run on a GPU machine or pass --lab-device cpu"


def device_param(device: str):
    marks = []
    if device.startswith("cuda"):
        marks = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason=CUDA_SKIP)]
    return pytest.param(device, id=f"device={device}", marks=marks)


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # tryfirst: device is parametrized before module-level marks, so ids read [device=cpu-workers=4].
    options: LabOptions = metafunc.config.lab_options  # type: ignore[attr-defined]
    if "device" in metafunc.fixturenames and not getattr(metafunc.module, "PARAMETRIZES_DEVICE", False):
        devices = getattr(metafunc.module, "DEVICES", None) or options.devices
        metafunc.parametrize("device", [device_param(d) for d in devices])


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    # A benchmark that changes process-wide state for good (C8 `best` on a CPU tunes malloc)
    # runs after everything else, so that no other figure of the session is measured under it.
    here = session.config.rootpath / "benchmarks"
    last = [item for item in items if item.path.is_relative_to(here) and runs_last(getattr(getattr(item, "callspec", None), "params", {}))]
    if last:
        items[:] = [item for item in items if item not in last] + last


def pytest_configure(config: pytest.Config) -> None:
    # pytest-benchmark turns itself off under xdist and would record nothing; refuse instead.
    if config.pluginmanager.hasplugin("xdist") and (config.getoption("numprocesses", None) or config.getoption("dist", "no") != "no"):
        raise pytest.UsageError(
            "benchmarks must not run under pytest-xdist (-n/--dist): pytest-benchmark disables itself there "
            "and parallel runs would share the CPU cores being measured. Run `pytest benchmarks` without -n."
        )


@pytest.fixture(scope="session")
def lab_options(pytestconfig: pytest.Config) -> LabOptions:
    return pytestconfig.lab_options  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def lab_data(lab_options: LabOptions):
    """(train, test) datasets, built once per session for every parametrization."""
    return load_datasets(DataConfig(source=lab_options.data))


@pytest.fixture(scope="session")
def sweep(pytestconfig: pytest.Config) -> SweepState:
    state = SweepState()
    pytestconfig.lab_sweep = state  # type: ignore[attr-defined]
    return state


@pytest.fixture(scope="session")
def c32(sweep: SweepState, lab_data, lab_options: LabOptions) -> dict[str, object]:
    """The C3.2 worker count of this run (from C3 if it ran first, else a loader-only sweep now)."""
    return sweep.c32(lab_data[0], lab_options.c3_workers()[:5])


@pytest.fixture(scope="session")
def d_state():
    """D1's answers and the rank groups D2-D5 share; every group is closed at the end of the session."""
    state = DState()
    yield state
    state.close()


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    machine_info.update(environment_info())


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: list, output_json: dict) -> None:
    options: LabOptions = config.lab_options  # type: ignore[attr-defined]
    sweep: SweepState | None = getattr(config, "lab_sweep", None)
    output_json["lab"] = {
        "preset": options.preset,
        "data": options.data,
        "epochs": options.epochs,
        "max_batches": options.max_batches,
        "devices": list(options.devices),
        "c3_2": sweep.answer if sweep else None,
    }


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int):
    # A run cut short (Ctrl-C, a time box) leaves the benchmark in flight with no rounds, and
    # pytest-benchmark would then fail to write any JSON at all; keep every finished benchmark instead.
    bench_session = getattr(session.config, "_benchmarksession", None)
    if bench_session is not None:
        bench_session.benchmarks[:] = [b for b in bench_session.benchmarks if b.stats is not None and b.stats.data]
    yield
