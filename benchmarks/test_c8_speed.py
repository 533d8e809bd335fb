"""C8: how fast can the lab go. Variants against the eager fp32 NCHW baseline, with FLOP/s and MFU.

First epoch (compile and warm-up cost) and steady-state average are recorded
separately; compiles run with torch.compiler's caches off, so the first epoch is
a cold build whatever ran before; each variant's final loss is kept so speed never hides divergence.
"""

import pytest
import torch

from resnet_lab import resnet18
from resnet_lab.benchmarking import BenchSpec, run_training_benchmark
from resnet_lab.flops import train_step_flops
from resnet_lab.speed import VARIANTS, step_seconds, work_record

pytestmark = pytest.mark.benchmark(group="C8")


@pytest.fixture(scope="session")
def step_flops():
    return train_step_flops(resnet18(), batch_size=128)


@pytest.mark.parametrize("variant", list(VARIANTS), ids=lambda v: f"variant={v}")
def test_c8_variant(request, benchmark, device, variant, lab_options, lab_data, peak_flops, step_flops):
    v = VARIANTS[variant]
    dev = torch.device(device)
    reason = v.skip_reason(dev, lab_options.preset)
    if reason:
        pytest.skip(reason)
    peaks = peak_flops(device)  # calibrated once per device in this run, before any variant of it; recorded in lab.peaks
    # Requested after the calibration, so a C3.2 sweep it may start (DataLoader workers) cannot overlap it.
    c32 = request.getfixturevalue("c32")
    compile_mode = v.resolved_compile_mode(dev, lab_options.preset)
    train_set, _ = lab_data
    spec = BenchSpec(
        "C8", device=device, workers=int(c32["workers"]), step=v.step_config(dev), compile_mode=compile_mode,
        device_loader=v.device_loader, sync_phases=v.sync_phases, flush_denormal=v.flush_denormal, graph_step=v.uses_graph_step(dev, lab_options.preset),
        retain_heap=v.retains_heap(dev), cold_compile=True, epochs=lab_options.c8_epochs, evaluate=False,
    )
    run = run_training_benchmark(benchmark, spec, lab_options, train_set, None)
    peak = peaks["bfloat16" if v.uses_bf16(dev) else "float32"]
    work = work_record(int(step_flops["flops_per_step"]), step_seconds(run.records), peak)
    benchmark.extra_info.update(
        work,  # speedup_vs_eager is derived at the end from the eager benchmark's record, where it ran
        variant=variant,
        channels_last=v.channels_last,
        amp_dtype="bfloat16" if v.uses_bf16(dev) else None,
        compile_mode=compile_mode,
        # "off": the first epoch is a cold build (see run.compiler_caches)
        compile_caches=("off" if run.config.cold_compile else "on") if compile_mode else None,
        loader="device-resident" if v.device_loader else "dataloader",
        phases_synced=v.sync_phases,
        flush_denormal=v.flush_denormal,
        graph_step=run.config.graph_step,
        **run.host_alloc,
        peaks={k: p["peak_flops_per_s"] for k, p in peaks.items()},
        flops_counted_batch=step_flops["batch_size"],
    )
