"""Running loss and top-1 of an epoch, kept on the device (C1: top-1 over all samples seen)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class EpochMetrics:
    """Running loss and top-1 over all samples seen, kept on the device.

    `update` returns the batch loss as a float when `eager` (one host sync per
    batch, as the lab's loop does with loss.item()); otherwise nothing is read
    back until `check_finite`/`summary`, so the host never waits on the device.
    """

    num_classes: int
    device: torch.device
    eager: bool = True

    def __post_init__(self) -> None:
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        self.images = 0
        self.correct = torch.zeros(self.num_classes, dtype=torch.long, device=self.device)
        self.seen = torch.zeros(self.num_classes, dtype=torch.long, device=self.device)

    def reset(self) -> None:
        """Back to zero in place: a captured CUDA graph keeps adding into these same tensors."""
        self.loss_sum.zero_()
        self.correct.zero_()
        self.seen.zero_()
        self.images = 0

    def accumulate(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        """Device-side sums only (no host work, no sync), so a CUDA graph can capture it."""
        hit = logits.argmax(dim=1).eq(y)
        # index_add_, not bincount: CUDA bincount reads y.max()/y.min() back to the host,
        # two device syncs per batch that would serialize the fast loop.
        self.correct.index_add_(0, y, hit.long())
        self.seen.index_add_(0, y, torch.ones_like(y))
        self.loss_sum += loss.detach().double() * y.shape[0]

    def update(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> float | None:
        self.accumulate(loss, logits, y)
        self.images += y.numel()
        return loss.item() if self.eager else None

    def check_finite(self) -> float:
        """The running loss sum (one sync); NaN/inf in any batch so far makes it non-finite."""
        return float(self.loss_sum.item())

    def summary(self) -> dict[str, object]:
        correct, seen = self.correct.cpu(), self.seen.cpu()
        per_class = [(c / s) if s else None for c, s in zip(correct.tolist(), seen.tolist(), strict=True)]
        return {
            "loss": self.loss_sum.item() / self.images if self.images else float("nan"),
            # Top-1 = correct argmax over *all* samples of the epoch, not the best class's accuracy.
            "top1": correct.sum().item() / self.images if self.images else float("nan"),
            "per_class_top1": per_class,
        }


def num_outputs(model: nn.Module) -> int:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features
