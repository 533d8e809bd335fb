"""The whole-step CUDA graph: same training as the plain loop, captured once, partial batches uncaptured.

On the CPU the graph is replaced by a capture that replays by running the step
body again (after zeroing the grads, which a real graph rewrites rather than
adds to), so the staging, warm-up, capture and in-graph metrics logic is tested
here; the real capture is tested where CUDA exists.
"""

import numpy as np
import pytest
import torch
from torch import nn

from resnet_lab.data.device_loader import DeviceLoader
from resnet_lab.devices import requires
from resnet_lab.engine.graphstep import GraphedTrainStep
from resnet_lab.engine.loop import train_one_epoch
from resnet_lab.engine.run import RunConfig
from resnet_lab.engine.step import StepConfig
from resnet_lab.errors import LabError

STEP = StepConfig(channels_last=True)


class SmallNet(nn.Module):
    """Conv, BN (buffers the graph must update), ReLU, pool, Linear: the step's moving parts, quickly."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1)
        )
        self.linear = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x).flatten(1))


class ReplayByRerun:
    """A stand-in for capture_cuda_graph: 'replay' runs the body again, counting captures and replays."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer, self.captures, self.replays = optimizer, 0, 0

    def __call__(self, body):
        self.captures += 1

        def replay() -> None:
            self.replays += 1
            self.optimizer.zero_grad(
                set_to_none=True
            )  # a graph rewrites the grads; rerunning the body would add to them
            body()

        return replay


def data(n: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)


def model_and_optimizer(device: str = "cpu") -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = SmallNet().to(device).to(memory_format=torch.channels_last)
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)


def train(device: str, epochs: int, graphed: bool, capture=None, warmup_steps: int = 1):
    images, labels = data()
    model, optimizer = model_and_optimizer(device)
    loader = DeviceLoader(images, labels, 8, device=device, seed=3)  # batches of 8, 8, 4
    fake = ReplayByRerun(optimizer) if capture == "fake" else None
    step = (
        GraphedTrainStep(model, optimizer, torch.device(device), STEP, warmup_steps=warmup_steps, capture=fake)
        if graphed
        else None
    )
    records = [
        train_one_epoch(model, loader, optimizer, device, step=STEP, sync_phases=False, graphed=step)
        for _ in range(epochs)
    ]
    return model, records, fake, step


def assert_same_training(plain, graphed, rtol: float = 0.0, atol: float = 0.0) -> None:
    (model_a, records_a, *_), (model_b, records_b, *_) = plain, graphed
    for a, b in zip(records_a, records_b, strict=True):
        assert b["images"] == a["images"] == 20 and b["batches"] == a["batches"] == 3
        assert b["loss"] == pytest.approx(a["loss"], rel=max(rtol, 1e-12))
        assert b["top1"] == a["top1"] and b["per_class_top1"] == a["per_class_top1"]
    for (name, a), b in zip(model_a.state_dict().items(), model_b.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, rtol=rtol, atol=atol, msg=name)  # BN running stats included


def test_graphed_training_equals_the_plain_loop() -> None:
    plain = train("cpu", 3, graphed=False)
    graphed = train("cpu", 3, graphed=True, capture="fake")
    assert_same_training(plain, graphed)


def test_captured_once_after_warmup_and_partial_batches_never_captured() -> None:
    _, _, fake, _ = train("cpu", 3, graphed=True, capture="fake", warmup_steps=1)
    # epoch 1: warm-up, capture + replay, partial (uncaptured); epochs 2-3: replay, replay, partial
    assert fake.captures == 1 and fake.replays == 1 + 2 * 2
    _, _, fake, _ = train("cpu", 1, graphed=True, capture="fake", warmup_steps=3)
    assert fake.captures == 0  # two full batches: still warming up


def test_metrics_restart_each_epoch_in_the_same_tensors() -> None:
    model, optimizer = model_and_optimizer()
    step = GraphedTrainStep(model, optimizer, torch.device("cpu"), STEP, capture=ReplayByRerun(optimizer))
    first = step.begin_epoch()
    tensors = (first.loss_sum, first.correct, first.seen)
    first.images = 7
    first.seen += 3
    again = step.begin_epoch()
    assert again is first and (again.loss_sum, again.correct, again.seen) == tensors  # addresses a graph captured
    assert again.images == 0 and int(again.seen.sum()) == 0


def test_run_before_stage_is_an_error() -> None:
    model, optimizer = model_and_optimizer()
    step = GraphedTrainStep(model, optimizer, torch.device("cpu"), STEP, capture=ReplayByRerun(optimizer))
    with pytest.raises(LabError, match="before stage"):
        step.run()


def test_a_cpu_without_a_stand_in_capture_is_refused() -> None:
    model, optimizer = model_and_optimizer()
    with pytest.raises(LabError, match=r"needs a CUDA device.*--device cuda"):
        GraphedTrainStep(model, optimizer, torch.device("cpu"), STEP)


def test_a_failed_capture_is_a_lab_error() -> None:
    def failing_capture(body):
        raise RuntimeError("operation not permitted when stream is capturing\nmore detail")

    model, optimizer = model_and_optimizer()
    step = GraphedTrainStep(model, optimizer, torch.device("cpu"), STEP, warmup_steps=0, capture=failing_capture)
    images, labels = data(8)
    step.begin_epoch()
    step.stage(torch.from_numpy(images).permute(0, 3, 1, 2), torch.from_numpy(labels))
    with pytest.raises(LabError, match="capturing the training step as a CUDA graph failed: operation not permitted"):
        step.run()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"device": "cpu"}, "needs device 'cuda', got 'cpu'"),
        (
            {"device": "cuda", "compile_mode": "reduce-overhead"},
            "cannot be combined with compile mode 'reduce-overhead'",
        ),
        ({"device": "cuda", "compile_mode": "max-autotune"}, "cannot be combined with compile mode 'max-autotune'"),
    ],
)
def test_run_config_refuses_impossible_graph_steps(config: dict, message: str) -> None:
    with pytest.raises(LabError, match=message):
        RunConfig(graph_step=True, **config)


@pytest.mark.cuda
@requires("cuda")
def test_real_cuda_graph_trains_like_the_plain_loop() -> None:
    torch.backends.cudnn.deterministic = True
    try:
        plain = train("cuda", 3, graphed=False)
        graphed = train("cuda", 3, graphed=True)
    finally:
        torch.backends.cudnn.deterministic = False
    assert graphed[3].replay is not None  # a graph was captured and replayed
    assert_same_training(plain, graphed, rtol=1e-4, atol=1e-5)
