"""The benchmark session as a pytest plugin: fixtures, parametrization and session hooks shared by
every benchmark module (no measurement logic here).

benchmarks/conftest.py imports these names, so they apply to benchmarks/ only. Through
pytest-benchmark's public API: each benchmark's group and a device-synchronizing timer through
its `benchmark` marker, data through `extra_info`, the figures that compare benchmarks in
`pytest_benchmark_update_json`, unfinished benchmarks dropped in a `pytest_benchmark_generate_json`
wrapper.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import pytest
import torch
from _pytest.fixtures import FixtureFunctionDefinition  # pytest exports no public type for a fixture

from ..data import load_datasets
from ..devices import device_marks
from ..engine.clock import synced_timer
from ..errors import LabError
from ..machine import environment_info
from ..perf.equivalence import ReferenceCache
from ..perf.variants import device_peaks
from ..procs import raise_terminated
from ..results.answers import short_answers
from ..results.derived import add_cross_benchmark_figures
from ..results.loading import SCHEMA_VERSION, machine_id, parse_run, storage_root
from ..spec.outputs import RunLog, ensure_writable_dir, ensure_writable_file, log_path_for, option_path
from .distributed_bench import DState
from .options import LabOptions
from .sweep import SweepState, lab_record

if TYPE_CHECKING:
    from _pytest.mark.structures import ParameterSet  # what pytest.param returns; pytest exports no public name

    from ..data import LabDataset

    LabData = tuple[LabDataset, LabDataset]

# What signal.signal returns and accepts back.
SignalHandler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

RUN_LOG = pytest.StashKey[RunLog]()
SIGTERM_BEFORE = pytest.StashKey[SignalHandler]()
STORAGE_RUN_LOG = "run.jsonl"  # in --lab-out: the run log of a session saved only to pytest-benchmark's storage
STARTED = pytest.StashKey[float]()  # the session's start (time.time()): a storage file older than it is not this run's
FINISHED = pytest.StashKey[list]()  # the finished benchmarks' JSON records, in order
SWEEP = pytest.StashKey[SweepState]()
PEAKS = pytest.StashKey[dict]()  # device -> measured matmul peaks (speed.device_peaks)
EQUIVALENCE_FAILURES = pytest.StashKey[dict]()  # benchmark name -> its failed equivalence record (C8)


def device_param(device: str) -> ParameterSet:
    return pytest.param(device, id=f"device={device}", marks=device_marks(device))


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # tryfirst: device is parametrized before module-level marks, so ids read [device=cpu-workers=4].
    options: LabOptions = metafunc.config.lab_options  # type: ignore[attr-defined]  # set on pytest's Config by plugin.py
    if "device" in metafunc.fixturenames and not getattr(metafunc.module, "PARAMETRIZES_DEVICE", False):
        metafunc.parametrize("device", [device_param(d) for d in options.devices])


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    here = session.config.rootpath / "benchmarks"
    for item in items:
        if item.path.is_relative_to(here):
            time_with_device_clock(item)


def time_with_device_clock(item: pytest.Item) -> None:
    """Every round is timed by a clock that synchronizes the benchmark's device (CUDA kernels are
    asynchronous), through pytest-benchmark's public `benchmark` marker: its group plus that timer."""
    marker = item.get_closest_marker("benchmark")
    if marker is None or "timer" in marker.kwargs:
        return
    device = str(getattr(getattr(item, "callspec", None), "params", {}).get("device", "cpu"))
    item.add_marker(pytest.mark.benchmark(**marker.kwargs, timer=synced_timer(device)), append=False)


def benchmark_json_path(config: pytest.Config) -> Path | None:
    return option_path(config.getoption("benchmark_json", None))


def saves_to_storage(config: pytest.Config) -> bool:
    return bool(config.getoption("benchmark_save", None) or config.getoption("benchmark_autosave", None))


def prepare_outputs(config: pytest.Config) -> None:
    """Create every output folder and prove it writable now, not after the benchmarks have run."""
    json_path = benchmark_json_path(config)
    lab_out = ensure_writable_dir(config.getoption("lab_out"), "--lab-out")
    if json_path is not None:
        ensure_writable_file(json_path, "--benchmark-json")
        config.stash[RUN_LOG] = RunLog(ensure_writable_file(log_path_for(json_path), "--benchmark-json's run log"))
    if saves_to_storage(config):
        ensure_writable_dir(storage_root(str(config.getoption("benchmark_storage"))), "--benchmark-storage")
        if json_path is None:  # pytest-benchmark's storage file is written at the end too: keep a log meanwhile
            config.stash[RUN_LOG] = RunLog(ensure_writable_file(lab_out / STORAGE_RUN_LOG, "--lab-out's run log"))
    config.stash[STARTED] = time.time()


def pytest_configure(config: pytest.Config) -> None:
    # pytest-benchmark turns itself off under xdist and would record nothing; refuse instead.
    if config.pluginmanager.hasplugin("xdist") and (
        config.getoption("numprocesses", None) or config.getoption("dist", "no") != "no"
    ):
        raise pytest.UsageError(
            "benchmarks must not run under pytest-xdist (-n/--dist): pytest-benchmark disables itself there "
            "and parallel runs would share the CPU cores being measured. Run `pytest benchmarks` without -n."
        )
    try:
        prepare_outputs(config)
    except LabError as exc:
        raise pytest.UsageError(str(exc)) from None
    # SIGTERM (a CI cancel, a time box's `timeout`) ends the session as Ctrl-C does: the benchmark in flight keeps
    # its finished epochs (pytest_runtest_call), the JSON is written, children stop (they also die with this process).
    if threading.current_thread() is threading.main_thread():
        config.stash[SIGTERM_BEFORE] = signal.signal(signal.SIGTERM, raise_terminated)
    config.stash[FINISHED] = []
    config.stash[SWEEP] = SweepState()
    config.stash[PEAKS] = {}


@pytest.fixture()
def seed(pytestconfig: pytest.Config) -> int:
    """The run's seed: the first of --lab-seeds; the training benchmarks are parametrized over all of them
    when --lab-seeds is given (suite/plugin.py), which overrides this fixture."""
    return pytestconfig.lab_options.seeds[0]  # type: ignore[attr-defined]  # set on pytest's Config by plugin.py


# Function scope (a `replace` per test is free): a seed param of function scope keeps pytest from
# reordering the benchmarks by seed, so the suite's order (C3's sweep before C4-C8) holds per seed.
@pytest.fixture()
def lab_options(pytestconfig: pytest.Config, seed: int) -> LabOptions:
    return replace(pytestconfig.lab_options, seed=seed)  # type: ignore[attr-defined]  # set on pytest's Config by plugin.py


@pytest.fixture(scope="session")
def lab_data(pytestconfig: pytest.Config) -> LabData:
    """(train, test) datasets, built once per session for every parametrization (every seed included)."""
    return load_datasets(pytestconfig.lab_options.data_config)  # type: ignore[attr-defined]  # set on pytest's Config by plugin.py


@pytest.fixture(scope="session")
def sweep(pytestconfig: pytest.Config) -> SweepState:
    return pytestconfig.stash[SWEEP]


@pytest.fixture(scope="session")
def c32(sweep: SweepState, lab_data: LabData, pytestconfig: pytest.Config) -> dict[str, object]:
    """The C3.2 worker count of this run, the one step C4-C8 depend on: from C3 if it ran first and
    measured whole epochs, else from a loader-only sweep run now; recorded in the JSON's `lab.c3_2`."""
    return sweep.c32(lab_data[0], pytestconfig.lab_options.c3_workers()[:5])  # type: ignore[attr-defined]  # set on pytest's Config by plugin.py


@pytest.fixture(scope="session")
def peak_flops(pytestconfig: pytest.Config) -> Callable[[str], dict]:
    """`peak_flops(device)`: the measured matmul peak per dtype of that device, calibrated once, on
    first need (the MFU of C8's variants is against it), and recorded in the JSON's `lab.peaks`."""
    peaks = pytestconfig.stash[PEAKS]

    def calibrated(device: str) -> dict:
        if device not in peaks:
            peaks[device] = device_peaks(torch.device(device))
        return peaks[device]

    return calibrated


@pytest.fixture(scope="session")
def equivalence_references(lab_data: LabData) -> ReferenceCache:
    """C8's equivalence check: its batch source and fp64/eager references, computed once per session
    (perf/equivalence.py)."""
    return ReferenceCache(lab_data[0])


@pytest.fixture(scope="session")
def equivalence_failures(pytestconfig: pytest.Config) -> dict:
    return pytestconfig.stash.setdefault(EQUIVALENCE_FAILURES, {})


def session_lab(config: pytest.Config) -> dict:
    lab = lab_record(config.lab_options, config.stash.get(SWEEP, None))  # type: ignore[attr-defined]  # set on pytest's Config by plugin.py
    lab["peaks"] = config.stash.get(PEAKS, {})
    failures = config.stash.get(EQUIVALENCE_FAILURES, {})
    if failures:  # a failed variant ran no rounds, so pytest-benchmark keeps no record of it
        lab["equivalence_failures"] = failures
    return lab


@pytest.fixture(scope="session")
def d_state() -> Iterator[DState]:
    """D1's answers and the rank groups D2-D5 share; every group is closed at the end of the session."""
    state = DState()
    yield state
    state.close()


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    machine_info.update(environment_info())


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: list, output_json: dict) -> None:
    output_json["schema_version"] = SCHEMA_VERSION
    output_json["lab"] = session_lab(config)
    add_cross_benchmark_figures(output_json["benchmarks"])
    serves = config.stash[SWEEP].serves() if SWEEP in config.stash else {}
    for bench in output_json["benchmarks"]:
        if bench["name"] in serves:
            bench["extra_info"]["serves"] = serves[bench["name"]]


@pytest.hookimpl(wrapper=True)
def pytest_benchmark_generate_json(
    config: pytest.Config, benchmarks: list, include_data: bool, machine_info: dict, commit_info: dict
) -> Generator[None, object, object]:
    # A run cut short (Ctrl-C, a time box) leaves the benchmark in flight with no rounds, and
    # pytest-benchmark would then fail to write any JSON at all; keep every finished benchmark instead.
    benchmarks[:] = [b for b in benchmarks if b.stats is not None and b.stats.data]
    return (yield)


def run_log_header(config: pytest.Config) -> dict:
    import pytest_benchmark

    machine_info = config.hook.pytest_benchmark_generate_machine_info(config=config)
    config.hook.pytest_benchmark_update_machine_info(config=config, machine_info=machine_info)
    commit_info = config.hook.pytest_benchmark_generate_commit_info(config=config)
    return {
        "machine_info": machine_info,
        "commit_info": commit_info,
        "datetime": datetime.now(timezone.utc).isoformat(),
        "version": pytest_benchmark.__version__,
        "schema_version": SCHEMA_VERSION,
    }


def pytest_unconfigure(config: pytest.Config) -> None:
    if SIGTERM_BEFORE in config.stash:
        signal.signal(signal.SIGTERM, config.stash[SIGTERM_BEFORE])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """A benchmark cut short (Ctrl-C, SIGTERM) keeps its finished epochs in the run log, as a record marked `cut_short`.

    pytest reports no outcome for an interrupted test (pytest_runtest_makereport does not run), so it is logged here.
    """
    try:
        return (yield)
    except Exception:
        raise  # a failure: pytest reports it, and a failed benchmark is not a figure
    except BaseException:
        fixture = getattr(item, "funcargs", {}).get("benchmark")
        stats = getattr(fixture, "stats", None)
        log = item.config.stash.get(RUN_LOG, None)
        if log is not None and stats is not None and stats.stats.data:
            stats.extra_info["cut_short"] = True
            if log.lines == 0:
                log.start(run_log_header(item.config))
            log.benchmark(stats.as_dict(include_data=True))
        raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.when != "call":
        return report
    fixture = getattr(item, "funcargs", {}).get("benchmark")
    stats = getattr(fixture, "stats", None)
    log = item.config.stash.get(RUN_LOG, None)
    if stats is not None and stats.stats.data and not stats.has_error:
        stats.extra_info["test_call_s"] = call.duration  # rounds + building the run + evaluation: what `estimate` needs
        record = stats.as_dict(include_data=True)
        item.config.stash[FINISHED].append(record)
        if log is not None:
            if log.lines == 0:
                log.start(run_log_header(item.config))
            log.benchmark(record)
    if log is not None and not log.lines and item.config.stash.get(EQUIVALENCE_FAILURES, None):
        log.start(run_log_header(item.config))  # a failed equivalence check is the session's first record
    if log is not None and log.lines:  # also after a question another run answered: lab.served grew
        log.lab(session_lab(item.config))
    return report


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Generator[None, object, object]:
    config = session.config
    log = config.stash.get(RUN_LOG, None)
    try:
        result = yield  # pytest-benchmark writes the JSON in here
    except OSError as exc:
        # The error skipped pytest's own terminal summary (it runs inside this hook), so say it here, once.
        kept = (
            f"the {len(config.stash[FINISHED])} finished benchmarks are in "
            f"'{log.path}', which resnet-lab report and compare read"
            if log and log.lines
            else "no benchmark had finished"
        )
        where = f": '{exc.filename}'" if exc.filename else ""
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            write_answers(config, reporter)
            reporter.write_line(
                f"resnet-lab: error: could not write the benchmark results ({exc.strerror or exc}{where}); {kept}",
                red=True,
                bold=True,
            )
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        return None
    json_path = benchmark_json_path(config)
    if log is not None and (json_path.exists() if json_path is not None else saved_to_storage(config) is not None):
        log.discard()
    return result


def saved_to_storage(config: pytest.Config) -> Path | None:
    """The file pytest-benchmark's --benchmark-save/--benchmark-autosave wrote in this session, if any.

    pytest-benchmark does not expose it (it only logs it), so: the newest file in this machine's storage
    folder, written since the session started.
    """
    if not saves_to_storage(config):
        return None
    folder = storage_root(str(config.getoption("benchmark_storage"))) / machine_id()
    saved = [(p.stat().st_mtime, p) for p in folder.glob("*.json")] if folder.is_dir() else []
    newest = max(saved, default=None)
    return newest[1] if newest and newest[0] >= config.stash.get(STARTED, float("inf")) else None


def write_answers(config: pytest.Config, reporter: pytest.TerminalReporter) -> None:
    finished = config.stash.get(FINISHED, [])
    if not finished:
        return
    json_path = benchmark_json_path(config)
    run = parse_run(
        json_path or config.rootpath,
        {"machine_info": {}, "benchmarks": finished, "lab": session_lab(config)},
        label=json_path.name if json_path else "this run",
    )
    reporter.section("the lab's short answers")
    for line in short_answers(run):
        reporter.write_line(line)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    write_answers(config, terminalreporter)
    json_path = benchmark_json_path(config)
    if not config.stash.get(FINISHED, []):
        return
    saved = json_path or saved_to_storage(config)
    if saved is not None:
        terminalreporter.write_line(
            f"JSON: {saved}; the answer sheet: resnet-lab report {saved} --out {saved.parent / 'report'}"
        )
    else:
        terminalreporter.write_line(
            "No JSON was saved: add --benchmark-json PATH to keep this run for resnet-lab report and compare"
        )


def hooks_and_fixtures() -> dict[str, object]:
    """Every hook (`pytest_*`) and fixture this module defines: what benchmarks/conftest.py puts in its namespace, so
    that they apply to benchmarks/ only and none can be left out (tests/test_layering.py reads them from the source)."""
    return {
        name: value
        for name, value in globals().items()
        if (name.startswith("pytest_") and callable(value)) or isinstance(value, FixtureFunctionDefinition)
    }
