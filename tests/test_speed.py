"""C8 variant definitions: what each one changes, when it skips, and the speedup accounting."""

import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from resnet_lab.engine.run import RunConfig
from resnet_lab.perf.variants import VARIANTS, step_seconds
from resnet_lab.results.derived import speedup_record
from resnet_lab.suite.options import LabOptions

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


COMBINATIONS = ("eager", "best", "cuda-graph", "cuda-graph-compiled", "channels-last-bf16")


def test_baseline_runs_first_then_the_combinations() -> None:
    # A time-boxed GPU check must get the headline ratios before anything else.
    assert list(VARIANTS)[:4] == ["eager", "best", "cuda-graph", "cuda-graph-compiled"]
    eager = VARIANTS["eager"]
    assert (
        not (eager.channels_last or eager.bf16 or eager.device_loader or eager.compile_mode or eager.graph_step)
        and eager.sync_phases
    )


@pytest.mark.parametrize("name", [n for n in VARIANTS if n not in COMBINATIONS])
def test_single_change_variants_change_one_thing(name: str) -> None:
    v = VARIANTS[name]
    changes = [
        v.channels_last,
        v.bf16,
        v.compile_mode is not None,
        v.device_loader,
        not v.sync_phases,
        v.flush_denormal,
        v.graph_step,
        v.best,
    ]
    assert sum(changes) == 1, name


def test_channels_last_bf16_is_the_two_combined() -> None:
    v = VARIANTS["channels-last-bf16"]
    assert v.channels_last and v.bf16 and v.compile_mode is None and not v.device_loader and v.sync_phases


def test_best_is_the_compiled_whole_step_graph_on_a_gpu_in_the_full_preset_only() -> None:
    best, graph, compiled = VARIANTS["best"], VARIANTS["cuda-graph"], VARIANTS["cuda-graph-compiled"]
    assert (
        (best.resolved_compile_mode(CUDA, "full"), best.uses_graph_step(CUDA, "full"))
        == (compiled.resolved_compile_mode(CUDA, "full"), compiled.uses_graph_step(CUDA, "full"))
        == ("default", True)
    )
    for device, preset in ((CUDA, "smoke"), (CPU, "full"), (CPU, "smoke")):  # no compile, no CUDA graph there
        assert best.resolved_compile_mode(device, preset) is None and not best.uses_graph_step(device, preset)
    assert best.skip_reason(CPU, "smoke") is None and not best.graph_step
    assert graph.graph_step and graph.skip_reason(CPU, "full") == "a whole-step CUDA graph needs a CUDA device"
    assert graph.resolved_compile_mode(CUDA, "full") is None and graph.skip_reason(CUDA, "smoke") is None
    assert VARIANTS["compile-default"].resolved_compile_mode(CPU, "full") == "default"
    assert compiled.resolved_compile_mode(CUDA, "full") == "default" and "full preset" in compiled.skip_reason(
        CUDA, "smoke"
    )
    # the one compile mode RunConfig accepts beside a whole-step graph
    RunConfig(device="cuda", graph_step=compiled.graph_step, compile_mode=compiled.resolved_compile_mode(CUDA, "full"))


def test_compile_modes_skip_in_smoke_with_a_reason() -> None:
    reason = VARIANTS["compile-max-autotune"].skip_reason(CPU, "smoke")
    assert reason is not None and "--lab-preset full" in reason
    assert VARIANTS["compile-max-autotune"].skip_reason(CPU, "full") is None
    assert VARIANTS["best"].skip_reason(CPU, "smoke") is None


def test_step_seconds_excludes_the_warmup_epoch() -> None:
    records = [
        {"batches": 2, "train_s": 10.0, "epoch_s": 11.0, "phases_synced": True},
        {"batches": 2, "train_s": 2.0, "epoch_s": 3.0, "phases_synced": True},
        {"batches": 2, "train_s": 4.0, "epoch_s": 5.0, "phases_synced": True},
    ]
    assert step_seconds(records) == pytest.approx(1.5)
    unsynced = [dict(r, phases_synced=False) for r in records]
    assert step_seconds(unsynced) == pytest.approx(2.0)  # whole epoch per batch: loading included
    assert step_seconds(records[:1]) == pytest.approx(5.0)


def test_speedup_record_against_the_baseline() -> None:
    eager = {"train_step_s": 3.0, "achieved_flops_per_s": 100.0}
    record = speedup_record(1.0, eager, peak_flops_per_s=350.0)
    assert record["speedup_vs_eager"] == pytest.approx(3.0)
    assert record["speedup_vs_eager_at_peak"] == pytest.approx(3.5)
    assert record["eager_train_step_s"] == 3.0
    assert speedup_record(1.0, None, 350.0) == {}


def test_best_retains_the_heap_on_a_cpu_only_so_it_trains_in_a_process_of_its_own() -> None:
    best = VARIANTS["best"]
    assert best.retains_heap(CPU) and not best.retains_heap(CUDA)
    assert not any(v.retains_heap(CPU) for name, v in VARIANTS.items() if name != "best")
    base = LabOptions().base_config
    assert best.run_config(replace(base, device="cpu"), "smoke").changes_process
    assert not best.run_config(replace(base, device="cuda"), "smoke").changes_process
    assert not VARIANTS["eager"].run_config(replace(base, device="cpu"), "smoke").changes_process


def test_a_variant_is_the_base_run_with_its_changes() -> None:
    """Device, epochs, workers, batches and numerics come from the suite's base run; the variant sets the rest."""
    base = replace(LabOptions(max_batches=3).base_config, device="cpu", epochs=7).with_workers(5)
    config = VARIANTS["best"].run_config(base, "smoke")
    assert (config.device, config.epochs, config.workers, config.max_batches, config.numerics) == (
        "cpu",
        7,
        5,
        3,
        base.numerics,
    )
    assert config.step.channels_last and config.device_loader and not config.sync_phases and config.flush_denormal
    assert config.retain_heap and config.cold_compile and config.compile_mode is None and not config.graph_step
    assert config == replace(
        base,
        step=config.step,
        device_loader=True,
        sync_phases=False,
        flush_denormal=True,
        retain_heap=True,
        cold_compile=True,
    )
    assert VARIANTS["eager"].run_config(base, "smoke") == replace(base, cold_compile=True)


def test_the_suite_collects_variants_in_their_order(pytestconfig: pytest.Config) -> None:
    """No benchmark is moved to the end of the session any more: `best` runs right after `eager`."""
    root = pytestconfig.rootpath
    # Without the xdist worker's variables: under `pytest -n`, pytest-benchmark in the child would see
    # them, think itself parallelized and warn, which the suite turns into an error.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "benchmarks/test_c8_speed.py",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "--lab-device",
            "cpu",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    ids = [line.split("variant=")[1].rstrip("]") for line in out.stdout.splitlines() if line.startswith("benchmarks/")]
    assert out.returncode == 0, out.stderr
    assert ids == list(VARIANTS)
