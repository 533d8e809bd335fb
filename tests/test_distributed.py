"""Data-parallel training on torch.distributed: DDP runs are correct; rank groups start where they can, or say why not.

Two gloo ranks on the CPU: this process is rank 0 of a `RankGroup`, a spawned child is rank 1.
The model is the lab's ResNet-18 on a handful of images, so each property is checked on the real
thing in a few seconds.
"""

from __future__ import annotations

import os
import socket

import ddphelpers
import pytest
import torch

from resnet_lab.distributed.ddp import combine_rank_records, comm_derived
from resnet_lab.distributed.launch import CUDA_SKIP, capacity_reason, resolve_backend, threads_per_rank
from resnet_lab.distributed.ranks import RankGroup, descendants
from resnet_lab.errors import LabError
from resnet_lab.machine import cpu_count

# DDP's averaged gradients and a single process's mean of the two halves differ only by float
# rounding (the allreduce divides each half by 2 before adding); after one SGD step at lr 0.1 that
# is far below this.
STEP_TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def group():
    with RankGroup(2, "cpu") as ranks:
        yield ranks


# ----------------------------------------------------------------------------- backends, capacity, ports


def test_backend_follows_the_device_and_nccl_needs_cuda() -> None:
    assert resolve_backend(None, "cpu") == "gloo"
    with pytest.raises(LabError, match="unknown backend 'mpi'"):
        resolve_backend("mpi", "cpu")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the NCCL-without-CUDA message cannot be shown here")
    with pytest.raises(LabError, match=r"NCCL needs CUDA GPUs and this machine has none"):
        resolve_backend("nccl", "cpu")
    with pytest.raises(LabError, match=r"NCCL needs CUDA"):
        RankGroup(2, "cpu", backend="nccl")


def test_cli_exits_2_when_nccl_is_asked_without_it(capsys: pytest.CaptureFixture[str]) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from resnet_lab import cli

    rc = cli.main(["train", "--backend", "nccl", "--epochs", "1", "--max-batches", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith("resnet-lab: error: NCCL needs CUDA GPUs and this machine has none")


def test_ranks_the_machine_cannot_hold_have_a_reason() -> None:
    cores = cpu_count()
    assert capacity_reason("cpu", cores) is None
    assert capacity_reason("cpu", cores + 1) == (
        f"{cores + 1} CPU ranks need at least {cores + 1} cores (fewer and the "
        f"ranks only contend for them); this machine has {cores}"
    )
    if not torch.cuda.is_available():
        assert capacity_reason("cuda", 1) == CUDA_SKIP
    with pytest.raises(LabError, match="CPU ranks need at least"):
        RankGroup(cores + 1, "cpu")
    assert threads_per_rank(1) == cores and threads_per_rank(cores) == 1 and threads_per_rank(4 * cores) == 1


def test_a_taken_rendezvous_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        before = set(descendants(os.getpid()))
        with pytest.raises(LabError) as caught:
            RankGroup(2, "cpu", port=port).start()
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "taken" in message and "port=0" in message
    assert set(descendants(os.getpid())) <= before, "no rank was started"


# ----------------------------------------------------------------------------- correctness


def test_group_chose_a_free_port_and_runs_on_every_rank(group: RankGroup) -> None:
    assert group.port > 0
    with socket.socket() as probe, pytest.raises(OSError):
        probe.bind(("127.0.0.1", group.port))  # rank 0's store holds it
    assert group.run(ddphelpers.fail_on_rank, -1, all_ranks=True) == [0, 1]


def test_one_ddp_step_equals_the_two_halves_averaged(group: RankGroup) -> None:
    differences = group.run(ddphelpers.one_step_vs_halves, all_ranks=True)
    assert max(differences) < STEP_TOLERANCE, differences


def test_every_rank_holds_identical_parameters_after_n_steps(group: RankGroup) -> None:
    digests = group.run(ddphelpers.digest_after_steps, 3, all_ranks=True)
    assert len(digests) == 2 and digests[0] == digests[1]


@pytest.mark.parametrize(("size", "padding"), [(24, 0), (25, 1)], ids=["divisible", "padded"])
def test_each_sample_once_per_epoch_across_ranks(group: RankGroup, size: int, padding: int) -> None:
    """DistributedSampler: disjoint shards covering the set; an indivisible set repeats `padding` samples so ranks stay
    in step."""
    per_rank = group.run(ddphelpers.indices_per_epoch, size, 2, all_ranks=True)
    for epoch in range(2):
        seen = [i for rank in per_rank for i in rank[epoch]]
        assert sorted(set(seen)) == list(range(size))
        assert len(seen) == size + padding
        assert len(per_rank[0][epoch]) == len(per_rank[1][epoch])
    assert per_rank[0][0] != per_rank[0][1], "each epoch is a fresh shuffle"


def test_records_combine_ranks_by_images_and_slowest_time() -> None:
    a = {
        "images": 30,
        "loss": 1.0,
        "top1": 0.5,
        "epoch_s": 2.0,
        "train_s": 1.5,
        "load_s": 0.1,
        "copy_s": 0.0,
        "per_class_top1": [0.5],
    }
    b = {
        "images": 10,
        "loss": 2.0,
        "top1": 0.1,
        "epoch_s": 3.0,
        "train_s": 1.0,
        "load_s": 0.3,
        "copy_s": 0.0,
        "per_class_top1": [0.1],
    }
    job = combine_rank_records([a, b])
    assert job["images"] == 40
    assert job["loss"] == pytest.approx((30 * 1.0 + 10 * 2.0) / 40) and job["top1"] == pytest.approx(
        (30 * 0.5 + 10 * 0.1) / 40
    )
    assert (job["epoch_s"], job["train_s"], job["load_s"]) == (3.0, 1.0, 0.3), "every time from the slowest rank"
    assert job["images_per_s"] == pytest.approx(40 / 3.0) and job["per_class_top1"] is None and len(job["ranks"]) == 2


def test_comm_figures_from_the_paired_passes() -> None:
    parts = {"copy_s": 0.5, "local_s": 4.0, "synced_s": 5.0, "update_s": 1.0, "allreduce_s": 3.0}
    got = comm_derived(parts)
    assert got["nosync_training_s"] == 5.5 and got["ddp_training_s"] == 6.5
    assert got["comm_exposed_s"] == 1.0 and got["overlap_s"] == 2.0 and got["overlap_fraction"] == pytest.approx(2 / 3)
