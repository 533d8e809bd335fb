"""D3: computation vs communication per epoch, two ways, in the same processes.

The lab's method (the DDP epoch minus D1's training time at that per-rank batch) and a direct one:
each step also runs under `no_sync()` (no allreduce), and a communication hook times every bucket's
allreduce; the difference between the two reveals how much allreduce overlapped with backward.
"""

import pytest
from dparams import parametrize

from resnet_lab.spec import groups
from resnet_lab.suite.distributed_bench import D_PRESETS, DSpec, run_parallel

pytestmark = pytest.mark.benchmark(group=groups.D3)  # and a device-synchronizing timer, added by conftest

PARAMETRIZES_DEVICE = True


def pytest_generate_tests(metafunc):
    # Every step runs twice here, so the smoke preset keeps D3 to its smallest batch.
    parametrize(metafunc, max_batch=D_PRESETS[metafunc.config.lab_options.preset].d3_max_batch)


def test_d3_compute_comm(benchmark, device, backend, world_size, batch_per_rank, lab_options, lab_data, d_state):
    spec = DSpec(groups.D3, device=device, world_size=world_size, batch_per_rank=batch_per_rank, measure_comm=True)
    reason = d_state.skip_reason(spec, lab_options, len(lab_data[0]))
    if reason:
        pytest.skip(reason)
    info = run_parallel(benchmark, spec, lab_options, lab_data, d_state)
    # The hook saw every gradient byte once per step, in DDP's buckets.
    assert sum(info["bucket_bytes"]) == info["gradient_bytes"]
    assert info["allreduce_s"] > 0
    assert info["comm_exposed_s"] == pytest.approx(info["ddp_training_s"] - info["nosync_training_s"])
    assert info["overlap_s"] == pytest.approx(info["allreduce_s"] - info["comm_exposed_s"])
