"""The timed loop on tiny in-memory data: record keys, true top-1, caps, divergence, summaries."""

import math

import pytest
import torch
from torch import nn

from resnet_lab import resnet18
from resnet_lab.data import CIFAR10_MEAN as MEAN
from resnet_lab.data import CIFAR10_STD as STD
from resnet_lab.engine.loop import evaluate, summarize, train_one_epoch
from resnet_lab.engine.step import StepConfig, to_device
from resnet_lab.errors import DivergenceError, LabError
from resnet_lab.optim import make_optimizer

RECORD_KEYS = {
    "epoch",
    "batches",
    "images",
    "startup_s",
    "load_s",
    "copy_s",
    "train_s",
    "metrics_s",
    "epoch_s",
    "images_per_s",
    "loss",
    "top1",
    "per_class_top1",
}


def batches(n, size=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(size, 3, 32, 32, generator=gen), torch.randint(0, 10, (size,), generator=gen)) for _ in range(n)
    ]


class ConstantPredictor(nn.Module):
    """Always predicts `cls`; lr 0 keeps it so. Ends in nn.Linear like the real model."""

    def __init__(self, cls: int):
        super().__init__()
        self.linear = nn.Linear(1, 10)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.bias.fill_(0.0)
            self.linear.bias[cls] = 5.0

    def forward(self, x):
        return self.linear(x.mean(dim=(1, 2, 3)).unsqueeze(1) * 0)


def test_record_has_every_key_and_sane_values():
    model = resnet18()
    record = train_one_epoch(model, batches(2), make_optimizer("sgd", model.parameters()), "cpu")
    assert set(record) >= RECORD_KEYS
    assert record["batches"] == 2 and record["images"] == 8
    assert math.isfinite(record["loss"]) and 0 <= record["top1"] <= 1
    assert len(record["per_class_top1"]) == 10
    phases = sum(record[k] for k in ("load_s", "copy_s", "train_s", "metrics_s"))
    assert 0 < phases <= record["epoch_s"]
    assert record["train_s"] > record["load_s"]  # in-memory batches: compute dominates


def test_top1_is_over_all_samples_not_best_class():
    labels = torch.tensor([0, 0, 0, 1, 2, 3, 4, 5])
    data = [(torch.zeros(8, 3, 32, 32), labels)]
    model = ConstantPredictor(0)
    record = train_one_epoch(model, data, torch.optim.SGD(model.parameters(), lr=0.0), "cpu")
    assert record["top1"] == pytest.approx(3 / 8)
    assert record["per_class_top1"][0] == 1.0
    assert record["per_class_top1"][1] == 0.0
    assert record["per_class_top1"][9] is None  # class never seen


def test_max_batches_caps_the_epoch():
    model = resnet18()
    record = train_one_epoch(model, batches(5), make_optimizer("sgd", model.parameters()), "cpu", max_batches=2)
    assert record["batches"] == 2
    with pytest.raises(LabError, match="max_batches"):
        train_one_epoch(model, batches(1), make_optimizer("sgd", model.parameters()), "cpu", max_batches=0)


def test_empty_loader_is_an_error():
    model = resnet18()
    with pytest.raises(LabError, match="no batches"):
        train_one_epoch(model, [], make_optimizer("sgd", model.parameters()), "cpu")


def test_divergence_stops_at_once_naming_epoch_and_batch():
    model = resnet18()
    seen = []
    opt = make_optimizer("sgd", model.parameters())
    with torch.no_grad():
        model.linear.weight.fill_(float("nan"))
    with pytest.raises(DivergenceError, match="epoch 3, batch 0") as err:
        train_one_epoch(model, batches(3), opt, "cpu", epoch=3, on_batch_end=seen.append)
    assert seen == [] and err.value.batch == 0


def test_absurd_learning_rate_diverges_through_the_api():
    from resnet_lab.optim import OptimConfig

    torch.manual_seed(0)
    model = resnet18()
    opt = make_optimizer("sgd", model.parameters(), OptimConfig(lr=1e12))
    with pytest.raises(DivergenceError) as err:
        for epoch in range(1, 4):
            train_one_epoch(model, batches(3, size=8), opt, "cpu", epoch=epoch)
    assert "lower the learning rate" in str(err.value)


def test_uint8_batches_are_normalized_on_the_device():
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    out, _ = to_device(x, torch.zeros(2, dtype=torch.long), torch.device("cpu"), StepConfig())
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    torch.testing.assert_close(out, (x.float() / 255 - mean) / std)


def test_channels_last_step():
    out, _ = to_device(
        torch.randn(2, 3, 32, 32), torch.zeros(2, dtype=torch.long), torch.device("cpu"), StepConfig(channels_last=True)
    )
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_bad_amp_dtype_rejected():
    with pytest.raises(LabError, match="amp_dtype"):
        StepConfig(amp_dtype=torch.int8)


def test_evaluate_keys_and_cap():
    model = resnet18()
    result = evaluate(model, batches(3), "cpu", max_batches=2)
    assert result["test_images"] == 8 and 0 <= result["test_top1"] <= 1 and math.isfinite(result["test_loss"])
    assert model.training is False


def test_summarize_means_and_last_epoch():
    records = [
        {
            "startup_s": 0.5,
            "load_s": 1.0,
            "copy_s": 0.1,
            "train_s": 2.0,
            "metrics_s": 0.1,
            "shutdown_s": 0.125,
            "epoch_s": 4.0,
            "images": 100,
            "loss": 2.0,
            "top1": 0.1,
        },
        {
            "startup_s": 0.25,
            "load_s": 3.0,
            "copy_s": 0.3,
            "train_s": 4.0,
            "metrics_s": 0.3,
            "shutdown_s": 0.375,
            "epoch_s": 6.0,
            "images": 100,
            "loss": 1.0,
            "top1": 0.5,
        },
    ]
    s = summarize(records)
    assert (
        s["startup_s"] == 0.375
        and s["shutdown_s"] == 0.25
        and s["load_s"] == 2.0
        and s["epoch_s"] == 5.0
        and s["first_epoch_s"] == 4.0
        and s["steady_epoch_s"] == 6.0
    )
    assert s["images_per_s"] == 200 / 10.0 and s["loss"] == 1.0 and s["top1"] == 0.5
