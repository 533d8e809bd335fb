"""engine/metrics.py through the loop: the epoch's loss and top-1, per sample over uneven batches, in double
precision, on the training device.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pinnedtime import (
    CLASSES,
    HIT_LOSS,
    MISS_LOSS,
    UNEVEN,
    UNEVEN_LOSS,
    UNEVEN_TOP1,
    ConstantPredictor,
)

from resnet_lab.engine.loop import train_one_epoch
from resnet_lab.engine.metrics import EpochMetrics


def test_epoch_loss_and_top1_are_per_sample_over_uneven_batches():
    model = ConstantPredictor(0)
    record = train_one_epoch(model, UNEVEN, torch.optim.SGD(model.parameters(), lr=0.0), "cpu")
    assert record["top1"] == pytest.approx(UNEVEN_TOP1)
    assert record["loss"] == pytest.approx(UNEVEN_LOSS)
    assert record["per_class_top1"] == [1.0, 0.0, 0.0, 0.0, 0.0, None, None, None, None, None]


@pytest.mark.parametrize("eager", [True, False])
def test_epoch_metrics_by_hand(eager):
    metrics = EpochMetrics(CLASSES, torch.device("cpu"), eager=eager)
    model = ConstantPredictor(0)
    returned = []
    for x, y in UNEVEN:
        logits = model(x)
        returned.append(metrics.update(F.cross_entropy(logits, y), logits, y))
    if eager:
        assert returned == pytest.approx([HIT_LOSS, (HIT_LOSS + 3 * MISS_LOSS) / 4, MISS_LOSS])
    else:
        assert returned == [None, None, None]
    assert metrics.images == 7
    assert metrics.check_finite() == pytest.approx(3 * HIT_LOSS + 4 * MISS_LOSS)
    assert metrics.summary() == {
        "loss": pytest.approx(UNEVEN_LOSS),
        "top1": pytest.approx(UNEVEN_TOP1),
        "per_class_top1": [1.0, 0.0, 0.0, 0.0, 0.0, None, None, None, None, None],
    }
    metrics.reset()
    assert metrics.images == 0 and metrics.check_finite() == 0.0
    assert metrics.correct.tolist() == [0] * CLASSES and metrics.seen.tolist() == [0] * CLASSES


def test_top1_takes_each_sample_s_own_argmax():
    metrics = EpochMetrics(3, torch.device("cpu"))
    logits = torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 1.0], [0.0, 1.0, 4.0]])  # predicts 1, 0, 2
    y = torch.tensor([1, 1, 2])
    metrics.update(F.cross_entropy(logits, y), logits, y)
    assert metrics.summary()["top1"] == pytest.approx(2 / 3)
    assert metrics.summary()["per_class_top1"] == [None, 0.5, 1.0]


def test_loss_is_summed_in_double_precision():
    """A float32 running sum would drop the 1.0 next to 2**24 (a long epoch of large losses loses precision)."""
    metrics = EpochMetrics(CLASSES, torch.device("cpu"))
    logits, y = torch.zeros(1, CLASSES), torch.zeros(1, dtype=torch.long)
    metrics.update(torch.tensor(2.0**24), logits, y)
    metrics.update(torch.tensor(1.0), logits, y)
    assert metrics.check_finite() == 2.0**24 + 1.0


def test_running_sums_live_on_the_training_device():
    """No copy per batch: the sums are kept where the batch is (meta here; the GPU in a CUDA run)."""
    metrics = EpochMetrics(3, torch.device("meta"), eager=False)
    metrics.update(
        torch.zeros((), device="meta"),
        torch.zeros(2, 3, device="meta"),
        torch.zeros(2, dtype=torch.long, device="meta"),
    )
    assert metrics.images == 2
    assert [t.device.type for t in (metrics.loss_sum, metrics.correct, metrics.seen)] == ["meta"] * 3


def test_empty_metrics_summary_is_nan():
    summary = EpochMetrics(CLASSES, torch.device("cpu")).summary()
    assert math.isnan(summary["loss"]) and math.isnan(summary["top1"])
    assert summary["per_class_top1"] == [None] * CLASSES
