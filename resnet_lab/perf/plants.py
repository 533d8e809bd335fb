"""Planted semantic bugs for the equivalence check's teeth (test-only; see perf/equivalence.py).

Each is a change a fast path could plausibly get wrong, planted in ONE run's path only through
`LabRun(plant=...)`: it edits that run's model, optimizer, loader or `ops` (copy step, loss) after
they are built, never code the eager reference runs. Module-level functions, so a plant reaches an
isolated run's process (perf/isolated.py) by pickling. `PLANTS` names them for the tests and
for scripts/equivalence_margins.py.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ..engine.step import StepConfig, to_device

if TYPE_CHECKING:
    from ..engine.run import LabRun

Plant = Callable[["LabRun"], None]
SHIFTED_MEAN_STD = ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))  # a "common default" mean/std instead of the lab's


def skip_weight_decay(run: LabRun) -> None:
    for group in run.optimizer.param_groups:
        group["weight_decay"] = 0.0


def _scaled_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 1.05 * F.cross_entropy(logits, y)


def scale_loss(run: LabRun) -> None:
    run.ops = replace(run.ops, criterion=_scaled_cross_entropy)


def _batch_norms(run: LabRun) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in run.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def bn_momentum(run: LabRun) -> None:
    for bn in _batch_norms(run):
        bn.momentum = 0.2


def _stay_in_eval(module: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(module, False)


def bn_eval_mode(run: LabRun) -> None:
    # model.train() reaches each child through child.train(mode): the instance's own method keeps BN in eval.
    for bn in _batch_norms(run):
        bn.train = functools.partial(_stay_in_eval, bn)  # type: ignore[method-assign,assignment]  # the planted bug
        bn.eval()


def _shifted_labels_copy(
    x: torch.Tensor, y: torch.Tensor, device: torch.device, step: StepConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = to_device(x, y, device, step)
    return x, (y + 1) % 10


def shift_labels(run: LabRun) -> None:
    run.ops = replace(run.ops, copy=_shifted_labels_copy)


def _flipped_copy(
    x: torch.Tensor, y: torch.Tensor, device: torch.device, step: StepConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = to_device(x, y, device, step)
    return x.flip(-1), y  # an extra horizontal flip of every image


def flip_in_copy(run: LabRun) -> None:
    run.ops = replace(run.ops, copy=_flipped_copy)


def _wrong_mean_std_copy(
    x: torch.Tensor, y: torch.Tensor, device: torch.device, step: StepConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    # Re-normalizes the lab-normalized batch as if the copy step had used SHIFTED_MEAN_STD (valid for either loader).
    from ..data.transforms import CIFAR10_MEAN, CIFAR10_STD

    x, y = to_device(x, y, device, step)
    lab_mean, lab_std = (
        torch.tensor(v, device=x.device, dtype=x.dtype).view(1, 3, 1, 1) for v in (CIFAR10_MEAN, CIFAR10_STD)
    )
    mean, std = (torch.tensor(v, device=x.device, dtype=x.dtype).view(1, 3, 1, 1) for v in SHIFTED_MEAN_STD)
    pixels = x * lab_std + lab_mean
    memory_format = torch.channels_last if step.channels_last else torch.contiguous_format
    return ((pixels - mean) / std).contiguous(memory_format=memory_format), y


def wrong_mean_std(run: LabRun) -> None:
    run.ops = replace(run.ops, copy=_wrong_mean_std_copy)


def _keep_grads(set_to_none: bool = True) -> None:
    return None


def accumulate_grads(run: LabRun) -> None:
    run.optimizer.zero_grad = _keep_grads  # type: ignore[method-assign]  # the planted bug


def _step_twice(step: Callable[..., object], *args: object, **kwargs: object) -> object:
    step(*args, **kwargs)
    return step(*args, **kwargs)


def double_step(run: LabRun) -> None:
    run.optimizer.step = functools.partial(_step_twice, run.optimizer.step)  # type: ignore[method-assign,assignment]  # the planted bug


class _FullBatchesOnly:
    """A loader that drops the epoch's last batch when it is smaller than the first."""

    def __init__(self, loader: Iterable) -> None:
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader) - 1  # type: ignore[arg-type]  # the loader given has a len()

    def __iter__(self) -> Iterator:
        size = None
        for x, y in self.loader:
            size = size or len(y)
            if len(y) == size:
                yield x, y


def drop_partial_batch(run: LabRun) -> None:
    run.train_loader = _FullBatchesOnly(run.train_loader)


PLANTS: dict[str, Plant] = {
    "weight-decay-skipped": skip_weight_decay,
    "loss-x1.05": scale_loss,
    "bn-momentum-0.2": bn_momentum,
    "bn-eval-mode": bn_eval_mode,
    "labels-shifted": shift_labels,
    "flip-in-copy": flip_in_copy,
    "wrong-mean-std": wrong_mean_std,
    "grads-accumulated": accumulate_grads,
    "step-twice": double_step,
    "partial-batch-dropped": drop_partial_batch,
}
