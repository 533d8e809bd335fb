"""C8: how fast can the lab go. Variants against the eager fp32 NCHW baseline, with FLOP/s and MFU.

First epoch (compile and warm-up cost) and steady-state average are recorded
separately; compiles run with torch.compiler's caches off, so the first epoch is
a cold build whatever ran before; each variant's final loss is kept so speed never hides divergence.
Before its timed epochs every variant passes the equivalence check against eager and fp64
(perf/equivalence.py, `extra_info["equivalence"]`), or fails its test and runs none.
"""

from dataclasses import replace

import pytest
import torch

from resnet_lab import resnet18
from resnet_lab.perf.flops import train_step_flops
from resnet_lab.perf.variants import VARIANTS, step_seconds, work_record
from resnet_lab.spec import groups
from resnet_lab.suite.benchmarking import EquivalenceGate, run_training_benchmark

pytestmark = pytest.mark.benchmark(group=groups.C8)


@pytest.fixture(scope="session")
def step_flops():
    return train_step_flops(resnet18(), batch_size=128)


@pytest.mark.parametrize("variant", list(VARIANTS), ids=lambda v: f"variant={v}")
def test_c8_variant(
    request,
    benchmark,
    device,
    variant,
    lab_options,
    lab_data,
    peak_flops,
    step_flops,
    equivalence_references,
    equivalence_failures,
):
    v = VARIANTS[variant]
    dev = torch.device(device)
    reason = v.skip_reason(dev, lab_options.preset)
    if reason:
        pytest.skip(reason)
    peaks = peak_flops(
        device
    )  # calibrated once per device in this run, before any variant of it; recorded in lab.peaks
    # Requested after the calibration, so a C3.2 sweep it may start (DataLoader workers) cannot overlap it.
    c32 = request.getfixturevalue("c32")
    train_set, _ = lab_data
    base = replace(lab_options.base_config, device=device, epochs=lab_options.c8_epochs, eval_batches=0).with_workers(
        int(c32["workers"])
    )
    config = v.run_config(base, lab_options.preset)
    # A variant that changes process-wide state (`best` on a CPU) trains in a process of its own (perf/isolated.py).
    gate = EquivalenceGate(equivalence_references, equivalence_failures, variant, request.node.name)
    run = run_training_benchmark(benchmark, config, lab_options, train_set, None, equivalence=gate)
    compile_mode = config.compile_mode
    peak = peaks["bfloat16" if v.uses_bf16(dev) else "float32"]
    work = work_record(int(step_flops["flops_per_step"]), step_seconds(run.records), peak)
    benchmark.extra_info.update(
        work,  # speedup_vs_eager is derived at the end from the eager benchmark's record, where it ran
        variant=variant,
        channels_last=v.channels_last,
        amp_dtype="bfloat16" if v.uses_bf16(dev) else None,
        compile_mode=compile_mode,
        # "off": the first epoch is a cold build (see engine/run.compiler_caches)
        compile_caches=("off" if run.config.cold_compile else "on") if compile_mode else None,
        loader="device-resident" if v.device_loader else "dataloader",
        phases_synced=v.sync_phases,
        flush_denormal=v.flush_denormal,
        graph_step=run.config.graph_step,
        **run.host_alloc,
        peaks={k: p["peak_flops_per_s"] for k, p in peaks.items()},
        flops_counted_batch=step_flops["batch_size"],
    )
