"""D1: epoch training time on one device at batch 32, 128, 512, ... (x4) until memory runs out.

Two epochs, the second reported; training time = host->device copy, forward, backward, update
(no data I/O). Running out of memory is the answer (the largest batch that fits), recorded in the
JSON with `out_of_memory`, not a failure; larger batches are then skipped.
"""

import pytest
from dparams import parametrize

from resnet_lab.spec import groups
from resnet_lab.suite.distributed_bench import DSpec, run_d1

pytestmark = pytest.mark.benchmark(group=groups.D1)  # and a device-synchronizing timer, added by conftest

PARAMETRIZES_DEVICE = True  # with the backend and batches, in dparams


def pytest_generate_tests(metafunc):
    parametrize(metafunc, single_device=True)


def test_d1_batch_size(benchmark, device, backend, world_size, batch_per_rank, lab_options, lab_data, d_state):
    train_set, _ = lab_data
    spec = DSpec(groups.D1, device=device, world_size=world_size, batch_per_rank=batch_per_rank)
    reason = d_state.skip_reason(spec, lab_options, len(train_set))
    if reason:
        pytest.skip(reason)
    info = run_d1(benchmark, spec, lab_options, train_set, d_state)
    if info["out_of_memory"]:
        return
    for record in info["epochs"]:
        assert record["training_s"] == pytest.approx(record["copy_s"] + record["train_s"])
        assert record["load_s"] + record["training_s"] <= record["epoch_s"] * 1.001
        assert record["images"] <= batch_per_rank * record["batches"]
    assert info["gradient_elements"] * 4 == info["gradient_bytes"]
