"""D5: large-batch accuracy. Five epochs at D1's largest per-rank batch x world size vs the batch-128 run.

The learning rate as the lab prescribes (0.1) and, as an option, scaled linearly with the global batch
after a warm-up (Goyal et al., 2017). Full preset only: five full epochs are not a smoke test.
"""

import pytest
from dparams import parametrize

from resnet_lab.spec import groups
from resnet_lab.suite.distributed_bench import D5_EPOCHS, D_PRESETS, DSpec, run_parallel

pytestmark = pytest.mark.benchmark(group=groups.D5)  # and a device-synchronizing timer, added by conftest

PARAMETRIZES_DEVICE = True
RUNS = [("baseline", "lab"), ("largest", "lab"), ("largest", "linear-warmup")]


def pytest_generate_tests(metafunc):
    parametrize(metafunc, batches=False)


@pytest.mark.parametrize(("batch", "lr_rule"), RUNS, ids=[f"batch={b}-lr_rule={r}" for b, r in RUNS])
def test_d5_large_batch(benchmark, device, backend, world_size, batch, lr_rule, lab_options, lab_data, d_state):
    if not D_PRESETS[lab_options.preset].d5:
        pytest.skip(f"D5 trains {D5_EPOCHS} full epochs: it runs in the full preset only (--lab-preset full)")
    largest = d_state.largest_fitting(device)
    if batch == "largest" and largest is None:
        pytest.skip(f"D5 uses D1's largest batch on {device}: run D1 in the same session")
    if batch == "baseline" and world_size != D_PRESETS[lab_options.preset].world_sizes[0]:
        pytest.skip("the batch-128 baseline runs once, on one rank")
    per_rank, ranks = (128, 1) if batch == "baseline" else (largest, world_size)
    spec = DSpec(
        groups.D5,
        device=device,
        world_size=ranks,
        batch_per_rank=per_rank,
        epochs=D5_EPOCHS,
        lr_rule=lr_rule,
        evaluate=True,
    )
    reason = d_state.skip_reason(spec, lab_options, len(lab_data[0]))
    if reason:
        pytest.skip(reason)
    info = run_parallel(benchmark, spec, lab_options, lab_data, d_state)
    info["d5_run"] = batch
    benchmark.extra_info["d5_run"] = batch
    assert len(info["epochs"]) == D5_EPOCHS and info["test_top1"] is not None
