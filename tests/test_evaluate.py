"""engine/loop.py's evaluate: test loss and top-1 of a known predictor, outside every training timing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from pinnedtime import (
    HIT_LOSS,
    LOAD,
    MISS_LOSS,
    STARTUP,
    UNEVEN,
    UNEVEN_LOSS,
    UNEVEN_TOP1,
    ConstantPredictor,
    FakeTime,
)

from resnet_lab.engine.clock import SyncClock
from resnet_lab.engine.loop import evaluate
from resnet_lab.engine.step import StepConfig


class TimedList:
    """`batches`, creating the iterator costs STARTUP and each fetch LOAD[i] of fake time."""

    def __init__(self, time: FakeTime, batches: list) -> None:
        self.time, self.batches = time, batches

    def __iter__(self) -> Iterator:
        self.time.spend(STARTUP)
        for batch, cost in zip(self.batches, LOAD, strict=False):
            self.time.spend(cost)
            yield batch


def test_evaluate_reports_top1_and_mean_loss_of_a_known_predictor():
    fake = FakeTime()
    model = ConstantPredictor(0).train()
    result = evaluate(model, TimedList(fake, UNEVEN), "cpu", clock=SyncClock(timer=fake))
    assert result["test_top1"] == pytest.approx(UNEVEN_TOP1)
    assert result["test_loss"] == pytest.approx(UNEVEN_LOSS)
    assert result["test_images"] == 7
    assert result["eval_s"] == STARTUP + sum(LOAD)
    assert model.training is False


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_evaluate_runs_the_forward_in_the_step_s_autocast_dtype(dtype):
    model = ConstantPredictor(0)
    dtypes = []
    model.register_forward_hook(lambda _m, _i, out: dtypes.append(out.dtype))
    result = evaluate(model, UNEVEN, "cpu", step=StepConfig(amp_dtype=dtype))
    assert dtypes == [dtype] * 3
    assert result["test_top1"] == pytest.approx(UNEVEN_TOP1)


def test_evaluate_stops_at_max_batches():
    result = evaluate(ConstantPredictor(0), UNEVEN, "cpu", max_batches=2)
    assert result["test_images"] == 6
    assert result["test_top1"] == pytest.approx(3 / 6)
    assert result["test_loss"] == pytest.approx((3 * HIT_LOSS + 3 * MISS_LOSS) / 6)


class CountingLoader:
    """UNEVEN's batches, noting the index of each one fetched (with workers, each fetch is real loading work)."""

    def __init__(self) -> None:
        self.fetched: list[int] = []

    def __iter__(self) -> Iterator:
        for i, batch in enumerate(UNEVEN):
            self.fetched.append(i)
            yield batch


def test_evaluate_fetches_no_batch_past_max_batches():
    loader = CountingLoader()
    assert evaluate(ConstantPredictor(0), loader, "cpu", max_batches=2)["test_images"] == 6
    assert loader.fetched == [0, 1]


def test_evaluate_computes_no_gradients():
    model = ConstantPredictor(0)
    grads = []
    model.register_forward_hook(lambda _m, _i, out: grads.append(out.requires_grad))
    evaluate(model, UNEVEN, "cpu")
    assert grads == [False, False, False]
