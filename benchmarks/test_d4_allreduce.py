"""D4: allreduce bandwidth over the sizes DDP moves: all gradients (11,173,962 fp32) and one 25 MiB bucket.

algbw = bytes / time and busbw = algbw * 2(n-1)/n, as nccl-tests defines them; the report sets the
ring-allreduce time they imply against D3's communication time (the lab's utilization).
"""

import pytest
from dparams import parametrize

from resnet_lab import resnet18
from resnet_lab.distributed.ddp import gradient_size
from resnet_lab.distributed.launch import capacity_reason
from resnet_lab.spec import groups
from resnet_lab.suite.distributed_bench import bucket_bytes, run_d4

pytestmark = pytest.mark.benchmark(group=groups.D4)  # and a device-synchronizing timer, added by conftest

PARAMETRIZES_DEVICE = True
SIZES = {"gradients": lambda: gradient_size(resnet18())["gradient_bytes"], "bucket": bucket_bytes}


def pytest_generate_tests(metafunc):
    parametrize(metafunc, batches=False)


@pytest.fixture(scope="module", autouse=True)
def close_groups(d_state):
    yield
    d_state.close()  # D2-D4 shared the process group; later benchmarks run without it


@pytest.mark.parametrize("size", list(SIZES), ids=lambda s: f"size={s}")
def test_d4_allreduce(benchmark, device, backend, world_size, size, lab_options, lab_data, d_state):
    reason = capacity_reason(device, world_size)
    if reason:
        pytest.skip(reason)
    size_bytes = SIZES[size]()
    info = run_d4(benchmark, device, world_size, size, size_bytes, lab_options, lab_data, d_state)
    assert info["backend"] == backend and info["size_bytes"] == size_bytes
    assert info["busbw_gb_per_s"] == pytest.approx(info["algbw_gb_per_s"] * 2 * (world_size - 1) / world_size)
