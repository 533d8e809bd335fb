"""C8: how fast can the lab go. Variants against the eager fp32 NCHW baseline, with FLOP/s and MFU.

First epoch (compile and warm-up cost) and steady-state average are recorded
separately; compiles run with torch.compiler's caches off, so the first epoch is
a cold build whatever ran before; each variant's final loss is kept so speed never hides divergence.
"""

import pytest
import torch

from resnet_lab import resnet18
from resnet_lab.benchmarking import BenchSpec, epoch_problems, run_training_benchmark
from resnet_lab.flops import train_step_flops
from resnet_lab.speed import VARIANTS, device_peaks, speedup_record, step_seconds, work_record


@pytest.fixture(scope="session")
def peaks_by_device():
    return {}


@pytest.fixture(scope="session")
def eager_by_device():
    return {}  # device -> the eager baseline's work record, for the ratios of the variants after it


@pytest.fixture(scope="session")
def step_flops():
    return train_step_flops(resnet18(), batch_size=128)


@pytest.mark.parametrize("variant", list(VARIANTS), ids=lambda v: f"variant={v}")
def test_c8_variant(request, benchmark, device, variant, lab_options, lab_data, peaks_by_device, eager_by_device, step_flops):
    v = VARIANTS[variant]
    dev = torch.device(device)
    reason = v.skip_reason(dev, lab_options.preset)
    if reason:
        pytest.skip(reason)
    if device not in peaks_by_device:  # calibrated once per device, in this run, before any variant of it
        peaks_by_device[device] = device_peaks(dev)
    peaks = peaks_by_device[device]
    # Requested after the calibration, so a C3.2 sweep it may start (DataLoader workers) cannot overlap it.
    c32 = request.getfixturevalue("c32")
    compile_mode = v.resolved_compile_mode(dev, lab_options.preset)
    train_set, _ = lab_data
    spec = BenchSpec(
        "C8", device=device, workers=int(c32["workers"]), step=v.step_config(dev), compile_mode=compile_mode,
        device_loader=v.device_loader, sync_phases=v.sync_phases, flush_denormal=v.flush_denormal, graph_step=v.graph_step,
        retain_heap=v.retains_heap(dev), cold_compile=True, epochs=lab_options.c8_epochs, evaluate=False,
    )
    run = run_training_benchmark(benchmark, spec, lab_options, train_set, None)
    assert [f"epoch {r['epoch']}: {p}" for r in benchmark.extra_info["epochs"] for p in epoch_problems(r)] == []
    peak = peaks["bfloat16" if v.uses_bf16(dev) else "float32"]
    work = work_record(int(step_flops["flops_per_step"]), step_seconds(run.records), peak)
    if variant == "eager":
        eager_by_device[device] = work
    benchmark.extra_info.update(
        work,
        **speedup_record(float(work["train_step_s"]), eager_by_device.get(device), float(work["peak_flops_per_s"])),
        variant=variant,
        channels_last=v.channels_last,
        amp_dtype="bfloat16" if v.uses_bf16(dev) else None,
        compile_mode=compile_mode,
        # "off": the first epoch is a cold build (see run.compiler_caches)
        compile_caches=("off" if run.config.cold_compile else "on") if compile_mode else None,
        loader="device-resident" if v.device_loader else "dataloader",
        phases_synced=v.sync_phases,
        flush_denormal=v.flush_denormal,
        graph_step=v.graph_step,
        **run.host_alloc,
        peaks={k: p["peak_flops_per_s"] for k, p in peaks.items()},
        flops_counted_batch=step_flops["batch_size"],
    )
