"""The answer sheet's D1-D5 and scaling-model sections, checked against figures worked out from the fixture by hand."""

from __future__ import annotations

import copy

import pytest
from fixtures import druns
from fixtures.labruns import make_run, write_run
from reporthelpers import section

from resnet_lab import cli


def report(capsys: pytest.CaptureFixture[str], tmp_path, data: dict, name: str = "d.json") -> str:
    path = write_run(tmp_path / name, data)
    rc = cli.main(["report", str(path), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 0, err
    return (tmp_path / "r" / "answers.md").read_text()


def d_run(**kwargs) -> dict:
    data = make_run(groups=())
    data["benchmarks"] = druns.d_benchmarks(**kwargs)
    return data


def test_d1_table_and_the_largest_batch_on_a_cpu(capsys, tmp_path) -> None:
    d1 = section(report(capsys, tmp_path, d_run()), "## D1")
    # batch 128: 2 steps of 3.0 s, 256 images in 6.0 s; a full epoch is ceil(50000 / 128) = 391 steps
    assert "| 128 | 2 | 2 | 6.000 | 3.000 | 42.7 | 1173.000 | 1.8000 | no |" in d1
    assert "**Largest batch run on cpu: 128**; memory did not run out (on a CPU the preset caps the sweep" in d1


def test_d1_out_of_memory_is_the_answer(capsys, tmp_path) -> None:
    data = make_run(groups=())
    data["benchmarks"] = [druns.d1("cuda", 32), druns.d1("cuda", 128), druns.d1_oom("cuda", 512)]
    d1 = section(report(capsys, tmp_path, data), "## D1")
    assert "| 512 | 16 |" in d1 and "**out of memory** |" in d1
    assert f"**Largest batch that fits on cuda: 128** (out of memory at batch 512: {druns.OOM_ERROR})." in d1


def test_d2_speedup_is_weak_scaling_and_says_what_a_cpu_measures(capsys, tmp_path) -> None:
    d2 = section(report(capsys, tmp_path, d_run()), "## D2")
    assert "**Weak scaling.** Weak scaling: each rank keeps its batch." in d2
    # 2 ranks x D1's 1.0 s / DDP's 2.2 s = 0.909 (efficiency 0.455); 2 x 3.0 / 6.5 = 0.923
    assert "| cpu | gloo | 2 | 32 | 64 | 1 | 2.200 | 1.000 | 0.909 | 0.455 |" in d2
    assert "| cpu | gloo | 2 | 128 | 256 | 1 | 6.500 | 3.000 | 0.923 | 0.462 |" in d2
    assert "The ranks shared the 2 cores of one CPU (1 thread(s) per rank; D1 ran one process with 2)" in d2
    assert "![D2: speedup vs ranks, per batch (weak scaling)](d2-speedup.png)" in d2


def test_d3_both_methods_and_the_overlap(capsys, tmp_path) -> None:
    d3 = section(report(capsys, tmp_path, d_run()), "## D3")
    # exposed 4.4 - 4.0 = 0.4 s; overlapped 1.0 - 0.4 = 0.6 s (60 %); lab's method 4.4 - 2 x 1.0 = 2.4 s
    assert "| cpu | 2 | 32 | 2 | 4.400 | 4.000 | 0.400 | 1.000 | 0.600 (60.0 %) | 2.400 | 2.000 |" in d3
    assert "![D3: computation and communication per epoch](d3-compute-comm.png)" in d3


def test_d4_bandwidths_and_the_labs_utilization(capsys, tmp_path) -> None:
    d4 = section(report(capsys, tmp_path, d_run()), "## D4")
    # 44,695,848 B in 40 ms = 1.117 GB/s; busbw = algbw * 2(2-1)/2
    assert "| cpu | gloo | 2 | gradients | 44,695,848 | 40.00 | 1.117 | 1.117 | 44,695,848 |" in d4
    # implied 40 ms per step; the hook measured 1.0 s / 2 steps = 500 ms: 8.0 %, effective busbw 44,695,848 / 0.5 s =
    # 0.0894 GB/s
    assert "| cpu | 2 | 32 | 40.00 | 500.00 | 200.00 | 1200.00 | 8.0 % | 0.08939 |" in d4


def test_d5_table_and_not_run_in_smoke(capsys, tmp_path) -> None:
    d5 = section(report(capsys, tmp_path, d_run()), "## D5")
    # five epochs of the fixture: loss 2.0 - 0.1 x 5, train top-1 0.2 + 0.05 x 5
    assert "| largest | cpu | 2 | 128 | 256 | linear-warmup | 0.1 | 1.5000 | 45.00 % | 55.00 % |" in d5
    smoke = section(report(capsys, tmp_path, d_run(d5_runs=False), "smoke.json"), "## D5")
    assert (
        "**Not run**: no `D5` benchmark in `smoke.json`. D5 trains five full epochs: it runs in the full preset only."
        in smoke
    )


def test_scaling_model_against_the_measurements(capsys, tmp_path) -> None:
    text = section(report(capsys, tmp_path, d_run()), "## Scaling model")
    busbw = druns.GRADIENT_BYTES / druns.ALLREDUCE_S["gradients"] / 1e9
    # two CPU ranks share the cores: compute 2 x 1.0 s; allreduce 44,695,848 B / busbw = 0.04 s
    no_overlap = 2 * 1.0 + 0.04
    # backward (2/3 of 2.0 s) hides the allreduce but for the last bucket: 15,823,104 B / busbw
    overlap = 2 * 1.0 + druns.BUCKETS[-1] / (busbw * 1e9)
    measured = druns.DDP_STEP_S[32]
    row = (
        f"| D2 (`d.json`) | 2 | D1 | 2.200 | {no_overlap:.3f} | {100 * (no_overlap - measured) / measured:+.1f} % | "
        f"{overlap:.3f} | {100 * (overlap - measured) / measured:+.1f} % |"
    )
    assert row in text, text
    assert "| D3 (`d.json`) | 2 | D1 | 2.200 |" in text  # D3's synced pass: 4.4 s over 2 steps
    # The compute measured in the ranks (no_sync: 4.0 s over 2 steps) plus the modelled allreduce: 2.0 + 0.04 = 2.04 s
    in_ranks = 4.0 / 2 + 0.04
    assert (
        f"| D2 (`d.json`) | 2 | D3 no_sync | 2.200 | {in_ranks:.3f} | {100 * (in_ranks - measured) / measured:+.1f} % |"
        in text
    )
    assert f"bus bandwidth: {busbw:.4g} GB/s (D4, gloo, 2 ranks)" in text


def test_odd_d_values_do_not_crash(capsys, tmp_path) -> None:
    data = d_run()
    broken = copy.deepcopy(data)
    for b in broken["benchmarks"]:
        for key in ("step_s", "busbw_gb_per_s", "gradient_bytes", "batches_per_epoch", "world_size"):
            b["extra_info"][key] = "n/a"
        b["extra_info"]["epochs"] = [7, {"images": None}]
        b["params"] = None
    text = report(capsys, tmp_path, broken)
    for heading in ("## D1", "## D2", "## D3", "## D4", "## D5", "## Scaling model"):
        assert heading in text
