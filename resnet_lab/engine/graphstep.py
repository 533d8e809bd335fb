"""The whole training step as one CUDA graph (C8 `cuda-graph`, and `best` on a GPU in the full preset).

At batch 128 a ResNet-18 step on a current GPU is a few milliseconds of GPU work but
hundreds of kernel launches, so even compiled with CUDA graphs per region (torch.compile
reduce-overhead) the host stays the bottleneck. Capturing everything a step does -- uint8
normalization, forward, loss, backward, optimizer step and the top-1/loss bookkeeping -- in
one graph leaves the host two copies and one replay per step. The measurements behind this
are in results/h200-full-lab/.

This follows torch's "whole network capture" recipe (torch.cuda.graph docs):
warm-up steps on a side stream, grads set to None before capture so backward
allocates them from the graph's pool, static input buffers refilled per step.
The warm-up steps are real training steps on real batches, so the run trains on
exactly the same sequence of batches as the plain loop. A batch of another
shape (the epoch's last, smaller one) runs the same step body uncaptured.
The logic is tested on the CPU with a stand-in capture (tests/test_graphstep.py),
the real capture by that file's CUDA test.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

from ..errors import LabError
from .metrics import EpochMetrics, num_outputs
from .step import StepConfig, StepOps, to_device, train_step

WARMUP_STEPS = 3  # torch's recipe; lazy state (optimizer buffers, cuDNN autotuning) must exist before capture

Body = Callable[[], None]


def capture_cuda_graph(body: Body, stream: torch.cuda.Stream | None) -> Body:
    """Record `body`'s kernels as one CUDA graph on `stream` (nothing runs yet); returns its replay.

    `stream` is the one the warm-up ran on: per-stream library state (cuBLAS workspaces, for
    one) then already exists and is not created mid-capture. thread_local: a DataLoader's
    pin-memory thread may touch CUDA meanwhile, which the default ('global') would fail on.
    """
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream, capture_error_mode="thread_local"):
        body()
    return graph.replay


class GraphedTrainStep:
    """Stage a batch, then run the step: a graph replay once warmed up and captured.

    `metrics` accumulates in place in tensors the graph captured, so it lives as
    long as this object; `begin_epoch()` zeroes it for the next epoch.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        step: StepConfig,
        warmup_steps: int = WARMUP_STEPS,
        capture: Callable[[Body], Body] | None = None,
        ops: StepOps = StepOps(),
    ) -> None:
        # `capture` exists for the CPU tests, which pass one that replays by calling the body again.
        if capture is None and (device.type != "cuda" or not torch.cuda.is_available()):
            raise LabError(f"a whole-step CUDA graph needs a CUDA device, got '{device}'; use --device cuda")
        self.model, self.optimizer, self.device, self.step, self.ops = model, optimizer, device, step, ops
        self.warmup_steps = warmup_steps
        self.metrics = EpochMetrics(num_outputs(model), device, eager=False)
        self.replay: Body | None = None
        self.steps_warmed = 0
        self._static: tuple[torch.Tensor, torch.Tensor] | None = None  # graph input buffers (x, y)
        self._staged: tuple[torch.Tensor, torch.Tensor] | None = None
        self._side_stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self._capture_fn = capture or functools.partial(capture_cuda_graph, stream=self._side_stream)

    def begin_epoch(self) -> EpochMetrics:
        self.metrics.reset()
        return self.metrics

    def stage(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Copy the batch onto the device; a full-size batch goes into the graph's input buffers."""
        if self._static is None:  # the first batch fixes the captured shape and dtypes
            self._static = (torch.empty_like(x, device=self.device), torch.empty_like(y, device=self.device))
        static_x, static_y = self._static
        if x.shape == static_x.shape and x.dtype == static_x.dtype and y.shape == static_y.shape:
            static_x.copy_(x, non_blocking=True)
            static_y.copy_(y, non_blocking=True)
            self._staged = self._static
        else:
            self._staged = (x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True))

    def run(self) -> None:
        """The training step for the staged batch."""
        if self._staged is None:
            raise LabError("GraphedTrainStep.run() called before stage()")
        x, y = self._staged
        self._staged = None
        if x is not self._static[0]:  # type: ignore[index]  # stage() set _static before _staged
            self._uncaptured_step(x, y)  # a batch of another size
        elif self.replay is not None:
            self.replay()
        elif self.steps_warmed < self.warmup_steps:
            self._warmup_step(x, y)
            self.steps_warmed += 1
        else:
            self.replay = self._capture(x, y)
            self.replay()  # capture records only; this runs the step
        self.metrics.images += y.shape[0]

    def _body(self, x: torch.Tensor, y: torch.Tensor) -> None:
        # The plain loop's own copy/normalize and step; the caller has zeroed the grads.
        x, y = (self.ops.copy or to_device)(x, y, self.device, self.step)
        loss, logits = train_step(
            self.model,
            self.optimizer,
            x,
            y,
            self.step,
            zero_grad=False,
            autocast_cache=False,
            criterion=self.ops.criterion,
        )
        self.metrics.accumulate(loss.detach(), logits.detach(), y)

    def _warmup_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if self._side_stream is None:
            self._body(x, y)
            return
        current = torch.cuda.current_stream(self.device)
        self._side_stream.wait_stream(current)
        with torch.cuda.stream(self._side_stream):
            self._body(x, y)
        current.wait_stream(self._side_stream)

    def _uncaptured_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        # After capture the grads live in the graph's pool; zero them rather than dropping them
        # so the captured optimizer step keeps reading the tensors the graph writes.
        self.optimizer.zero_grad(set_to_none=self.replay is None)
        self._body(x, y)

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> Body:
        self.optimizer.zero_grad(set_to_none=True)  # backward then allocates grads from the graph's pool
        try:
            return self._capture_fn(lambda: self._body(x, y))
        except RuntimeError as exc:
            raise LabError(f"capturing the training step as a CUDA graph failed: {str(exc).splitlines()[0]}") from exc
