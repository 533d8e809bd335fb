"""D2: DDP epochs with 2 and 4 ranks at D1's per-rank batches: time, speedup and efficiency against D1.

Weak scaling (the JSON says so, and why): the per-rank batch stays, the global batch grows with
the ranks. On one CPU the ranks share its cores, so a CPU "speedup" mostly measures contention.
"""

import pytest
from dparams import parametrize

from resnet_lab.spec import groups
from resnet_lab.suite.distributed_bench import DSpec, run_parallel

pytestmark = pytest.mark.benchmark(group=groups.D2)  # and a device-synchronizing timer, added by conftest

PARAMETRIZES_DEVICE = True


def pytest_generate_tests(metafunc):
    parametrize(metafunc)


def test_d2_speedup(benchmark, device, backend, world_size, batch_per_rank, lab_options, lab_data, d_state):
    spec = DSpec(groups.D2, device=device, world_size=world_size, batch_per_rank=batch_per_rank)
    reason = d_state.skip_reason(spec, lab_options, len(lab_data[0]))
    if reason:
        pytest.skip(reason)
    info = run_parallel(benchmark, spec, lab_options, lab_data, d_state)
    assert info["backend"] == backend and info["scaling"] == "weak"
    for record in info["epochs"]:
        # Every rank trained its own shard, the same number of images each.
        assert len(record["ranks"]) == world_size
        assert record["images"] == world_size * record["ranks"][0]["images"]
        assert record["global_batch"] == world_size * batch_per_rank
