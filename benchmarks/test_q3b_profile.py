"""Q3b: a torch.profiler trace of a few training steps with the loop's phases labelled."""

from dataclasses import replace

import pytest

from resnet_lab.engine.run import LabRun
from resnet_lab.perf.profiling import PHASE_LABELS, ProfileConfig, profile_run, trace_event_names
from resnet_lab.spec import groups

pytestmark = pytest.mark.benchmark(group=groups.Q3B)


def test_q3b_profile(benchmark, device, lab_options, lab_data):
    train_set, _ = lab_data
    config = ProfileConfig(wait=1, warmup=1, active=lab_options.profile_steps)
    run = LabRun(replace(lab_options.base_config, device=device), train_set)
    out_dir = f"{lab_options.out_dir}/q3b"
    result = benchmark.pedantic(profile_run, args=(run, out_dir, config), rounds=1, iterations=1)
    names = trace_event_names(result["trace_path"])
    assert set(PHASE_LABELS) <= names, f"phases missing from the trace: {set(PHASE_LABELS) - names}"
    # each phase once per step: the summary covers exactly the active steps
    assert {label: row["count"] for label, row in result["phases"].items()} == {
        label: config.active for label in PHASE_LABELS
    }
    benchmark.extra_info.update(result, device=device, preset=lab_options.preset, data=train_set.source)
