"""What the D benchmarks decide before and after measuring: batches, skips, out of memory as an answer, the lr rule.

A stand-in for pytest-benchmark's fixture runs the rounds; training is the lab's ResNet-18 on a few images.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from ddphelpers import RecordingDataset, run_config

from resnet_lab.data import train_transform
from resnet_lab.distributed.ddp import DataParallelRun, ParallelConfig
from resnet_lab.errors import LabError
from resnet_lab.machine import cpu_count
from resnet_lab.suite import distributed_bench as bench
from resnet_lab.suite.distributed_bench import DSpec, DState, batch_sizes, bucket_bytes, speedup_record
from resnet_lab.suite.options import LabOptions


class FakeBenchmark:
    """pytest-benchmark's fixture as the D runners use it: pedantic rounds, a group, extra_info."""

    def __init__(self) -> None:
        self.extra_info: dict[str, Any] = {}
        self.group: str | None = None
        self._timer = None
        self.rounds = 0

    def pedantic(self, fn, rounds: int, iterations: int = 1, warmup_rounds: int = 0):
        for _ in range(rounds + warmup_rounds):
            result = fn()
            self.rounds += 1
        return result


def test_d1_batches_grow_by_four_up_to_the_training_set() -> None:
    assert batch_sizes() == (32, 128, 512, 2048, 8192, 32768)
    assert batch_sizes(600) == (32, 128, 512)
    assert bucket_bytes() == 25 * 1024 * 1024


def test_skip_reasons() -> None:
    state, smoke = DState(), LabOptions(preset="smoke")
    assert state.skip_reason(DSpec("D1", batch_per_rank=128), smoke, 50_000) is None
    assert "caps CPU batches at 128" in state.skip_reason(DSpec("D1", batch_per_rank=512), smoke, 50_000)
    assert (
        state.skip_reason(DSpec("D1", batch_per_rank=32), smoke, 20)
        == "batch 32 is larger than the training set (20 images)"
    )
    assert "CPU ranks need at least" in state.skip_reason(
        DSpec("D2", world_size=cpu_count() + 1, batch_per_rank=32), smoke, 50_000
    )
    state.oom_batch["cpu"] = 128
    assert state.skip_reason(DSpec("D1", batch_per_rank=128), smoke, 50_000) is None, (
        "the batch that ran out is D1's answer"
    )
    assert "ran out of memory at batch 128 in D1" in state.skip_reason(
        DSpec("D2", world_size=2, batch_per_rank=128), smoke, 50_000
    )


def test_speedup_is_weak_scaling_throughput() -> None:
    assert speedup_record(2.0, 4, 1.0) == {"d1_step_s": 1.0, "speedup": 2.0, "efficiency": 0.5}
    assert speedup_record(2.0, 4, None)["speedup"] is None


def test_running_out_of_memory_is_recorded_as_the_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """D1 at a batch that does not fit: the JSON says so, later batches are skipped, nothing fails."""
    state, options = DState(), LabOptions(preset="smoke", max_batches=1, eval_batches=0)
    data = RecordingDataset(16, train_transform())

    def full(self):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.")

    fits = FakeBenchmark()
    info = bench.run_d1(fits, DSpec("D1", batch_per_rank=4), options, data, state)
    assert info["out_of_memory"] is False and fits.rounds == 2
    assert state.d1_step_s[("cpu", 4)] == info["step_s"] == info["epochs"][-1]["training_s"] / 1

    monkeypatch.setattr(DataParallelRun, "run_epoch", full)
    failed = FakeBenchmark()
    info = bench.run_d1(failed, DSpec("D1", batch_per_rank=8), options, data, state)
    assert info["out_of_memory"] is True and info["error"] == "CUDA out of memory. Tried to allocate 2.00 GiB."
    assert failed.extra_info["batch_per_rank"] == 8 and state.oom_batch == {"cpu": 8}
    assert "ran out of memory at batch 8" in state.skip_reason(
        DSpec("D1", batch_per_rank=16), LabOptions(preset="full"), 50_000
    )
    assert state.largest_fitting("cpu") == 4


def test_other_errors_are_not_taken_for_out_of_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(DataParallelRun, "run_epoch", broken)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        bench.run_d1(
            FakeBenchmark(),
            DSpec("D1", batch_per_rank=4),
            LabOptions(max_batches=1),
            RecordingDataset(8, train_transform()),
            DState(),
        )


def test_linear_scaling_warms_up_from_the_labs_lr() -> None:
    """Goyal et al.: lr x global_batch / 128, reached linearly over the warm-up steps; the lab's rule keeps 0.1."""
    data = RecordingDataset(16, train_transform())
    run = DataParallelRun(
        run_config(batch=4, max_batches=2), data, parallel=ParallelConfig(lr_rule="linear-warmup", warmup_epochs=1)
    )
    peak = 0.1 * 4 / 128
    lr = lambda r: r.optimizer.param_groups[0]["lr"]  # noqa: E731
    assert run.warmup_steps == 2 and lr(run) == pytest.approx(0.1)
    run._after_step(1)  # what train_one_epoch calls after each step
    assert lr(run) == pytest.approx(0.1 + (peak - 0.1) / 2)
    run._after_step(2)
    run._after_step(1)
    assert lr(run) == pytest.approx(peak), "after the warm-up the scaled lr stays"
    lab = DataParallelRun(run_config(batch=4, max_batches=2), data)
    lab._after_step(1)
    assert lr(lab) == 0.1 and lab.warmup_steps == 0


def test_bad_parallel_settings_are_lab_errors() -> None:
    with pytest.raises(LabError, match="unknown lr rule 'cosine'"):
        ParallelConfig(lr_rule="cosine")
    with pytest.raises(LabError, match="measuring communication needs at least 2 ranks"):
        DataParallelRun(
            run_config(batch=4), RecordingDataset(8, train_transform()), parallel=ParallelConfig(measure_comm=True)
        )
