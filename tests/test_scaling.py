"""nccl-tests' bandwidths and the scaling model, against values worked out by hand; `resnet-lab scaling`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import resnet_lab
from resnet_lab import cli
from resnet_lab.distributed.scaling import (
    ScalingInputs,
    algbw_gb_per_s,
    allreduce_s,
    busbw_gb_per_s,
    predict,
    relative_error,
    ring_bytes_per_rank,
    scaling_table,
    union_length,
)

# 1 s of compute per step at batch 100, 1 GB of gradients over a 1 GB/s bus, 1,000 images an epoch,
# half of a step in backward, a last bucket of 0.2 GB: every figure below follows by hand.
INPUTS = ScalingInputs(
    step_s=1.0,
    batch_per_rank=100,
    gradient_bytes=10**9,
    busbw_gb_per_s=1.0,
    images=1000,
    backward_fraction=0.5,
    last_bucket_bytes=2 * 10**8,
)


def test_bandwidths_as_nccl_tests_defines_them() -> None:
    assert ring_bytes_per_rank(1000, 4) == 1500  # 2(n-1)/n of the bytes
    assert algbw_gb_per_s(2e9, 2.0) == 1.0
    assert busbw_gb_per_s(1.0, 4) == 1.5 and busbw_gb_per_s(1.0, 2) == 1.0 and busbw_gb_per_s(1.0, 8) == 1.75
    assert (
        allreduce_s(1e9, 2, busbw=1.0) == 1.0
        and allreduce_s(1e9, 4, busbw=1.0) == 1.5
        and allreduce_s(1e9, 1, busbw=1.0) == 0.0
    )


def test_union_of_allreduce_spans() -> None:
    assert union_length([(0.0, 2.0), (1.0, 3.0), (5.0, 6.0)]) == 4.0
    assert union_length([(0.0, 1.0), (0.2, 0.5)]) == 1.0
    assert union_length([]) == 0.0


def test_model_with_and_without_overlap() -> None:
    two = predict(INPUTS, 2)
    # allreduce 2(2-1)/2 * 1 GB / 1 GB/s = 1 s; overlap hides all but max(0.2 s last bucket, 1 - 0.5 * 1) = 0.5 s
    assert (two["compute_s"], two["allreduce_s"], two["step_no_overlap_s"], two["step_overlap_s"]) == (
        1.0,
        1.0,
        2.0,
        1.5,
    )
    assert (two["steps_per_epoch"], two["epoch_no_overlap_s"], two["epoch_overlap_s"]) == (5, 10.0, 7.5)
    four = predict(INPUTS, 4)
    # allreduce 1.5 s, last bucket 0.3 s, overlap leaves 1.5 - 0.5 = 1.0 s; ceil(1000 / 400) = 3 steps
    assert (four["allreduce_s"], four["step_no_overlap_s"], four["step_overlap_s"], four["steps_per_epoch"]) == (
        1.5,
        2.5,
        2.0,
        3,
    )
    assert predict(INPUTS, 1)["step_overlap_s"] == 1.0


def test_the_last_bucket_never_hides() -> None:
    big = ScalingInputs(
        step_s=10.0,
        batch_per_rank=100,
        gradient_bytes=10**9,
        busbw_gb_per_s=1.0,
        images=1000,
        backward_fraction=0.5,
        last_bucket_bytes=2 * 10**8,
    )
    assert predict(big, 2)["step_overlap_s"] == pytest.approx(
        10.2
    )  # backward (5 s) covers the 1 s allreduce but the last 0.2 s


def test_speedup_and_efficiency_against_one_device() -> None:
    rows = {r["world_size"]: r for r in scaling_table(INPUTS, [1, 2, 4])}
    assert rows[1]["speedup_no_overlap"] == 1.0 and rows[1]["epoch_no_overlap_s"] == 10.0
    assert rows[2]["speedup_no_overlap"] == 1.0 and rows[2]["speedup_overlap"] == pytest.approx(10 / 7.5)
    assert rows[4]["speedup_no_overlap"] == pytest.approx(10 / 7.5) and rows[4]["efficiency_overlap"] == pytest.approx(
        10 / 6.0 / 4
    )


def test_ranks_sharing_one_device_split_its_compute() -> None:
    shared = ScalingInputs(**{**INPUTS.__dict__, "ranks_share_device": True})
    row = {r["world_size"]: r for r in scaling_table(shared, [1, 2])}[2]
    assert row["compute_s"] == 2.0 and row["step_no_overlap_s"] == 3.0
    assert row["speedup_no_overlap"] == pytest.approx(10 / 15)  # one CPU: more ranks, the same cores


def test_error_sign_and_bad_inputs() -> None:
    assert relative_error(11.0, 10.0) == pytest.approx(0.1) and relative_error(9.0, 10.0) == pytest.approx(-0.1)
    with pytest.raises(ValueError):
        ScalingInputs(step_s=0.0, batch_per_rank=1, gradient_bytes=1, busbw_gb_per_s=1.0)
    with pytest.raises(ValueError):
        predict(INPUTS, 0)


@pytest.mark.parametrize(
    "module",
    [
        "distributed/scaling.py",
        "cli/scaling.py",
        "results/report/distributed.py",
        "results/report/d5.py",
        "results/report/dvalues.py",
        "results/report/scaling.py",
        "results/plots_distributed.py",
    ],
)
def test_results_layer_modules_do_not_import_torch_at_top_level(module: str) -> None:
    tree = ast.parse((Path(resnet_lab.__file__).parent / module).read_text())
    names = [a.name for node in tree.body if isinstance(node, ast.Import) for a in node.names]
    names += [node.module or "" for node in tree.body if isinstance(node, ast.ImportFrom)]
    assert not [
        n for n in names if n.split(".")[0] in ("torch", "torchvision") or n in ("ddp", "launch", "bench", "allreduce")
    ]


def scaling(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        rc = cli.main(["scaling", *argv])
    except SystemExit as exc:
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def test_scaling_command_from_given_figures(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = scaling(
        capsys,
        "--step-s",
        "1",
        "--batch-per-rank",
        "100",
        "--busbw",
        "1",
        "--gradient-bytes",
        str(10**9),
        "--images",
        "1000",
        "--backward-fraction",
        "0.5",
        "--last-bucket-bytes",
        str(2 * 10**8),
        "--world-sizes",
        "1,2,4",
    )
    assert rc == 0, err
    assert "| 2 | 200 | 1.000 | 1.000 | 2.000 | 1.500 | 10.000 | 7.500 | 1 / 1.33 | 50.0 % / 66.7 % |" in out
    assert "the figures above are predictions" in out


def test_scaling_command_counts_the_lab_gradients_itself(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = scaling(capsys, "--step-s", "0.016", "--batch-per-rank", "128", "--busbw", "370", "--world-sizes", "8")
    assert rc == 0 and "gradients: 44,695,848 bytes" in out and "one device per rank" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "without a run, give --step-s, --batch-per-rank and --busbw"),
        (("--step-s", "0"), "argument --step-s: must be > 0 (from 1e-09 to 1e+12), got 0"),
        (("--world-sizes", "2,x"), "argument --world-sizes: 'x' is not an integer"),
        (("--backward-fraction", "1.5"), "argument --backward-fraction: must be within (0, 1], got 1.5"),
    ],
    ids=["nothing-to-model", "zero-step", "bad-list", "fraction"],
)
def test_scaling_command_bad_input_exits_2(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    rc, _, err = scaling(capsys, *argv)
    assert rc == 2 and message in err and "Traceback" not in err
