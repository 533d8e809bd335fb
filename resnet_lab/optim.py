"""The five optimizers of C6 with the lab's hyperparameters, by name."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from .errors import LabError

Params = Iterable[torch.nn.Parameter]


@dataclass(frozen=True)
class OptimConfig:
    """LAB_SPEC: lr 0.1, weight decay 5e-4, momentum 0.9 where the optimizer has one."""

    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4


def _sgd(params: Params, c: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)


def _sgd_nesterov(params: Params, c: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay, nesterov=True)


def _adagrad(params: Params, c: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.Adagrad(params, lr=c.lr, weight_decay=c.weight_decay)  # no momentum term


def _adadelta(params: Params, c: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.Adadelta(
        params, lr=c.lr, weight_decay=c.weight_decay
    )  # rho plays momentum's role; left at default


def _adam(params: Params, c: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)  # betas are its momenta; defaults kept


OPTIMIZERS: dict[str, Callable[[Params, OptimConfig], torch.optim.Optimizer]] = {
    "sgd": _sgd,
    "sgd-nesterov": _sgd_nesterov,
    "adagrad": _adagrad,
    "adadelta": _adadelta,
    "adam": _adam,
}
ALIASES = {
    "nesterov": "sgd-nesterov",
    "sgd_nesterov": "sgd-nesterov",
    "sgdnesterov": "sgd-nesterov",
    "nag": "sgd-nesterov",
}


def canonical_optimizer(name: str) -> str:
    """The registry name for `name` (case-insensitive, aliases accepted) or a LabError with a suggestion."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key in OPTIMIZERS:
        return key
    close = difflib.get_close_matches(key, list(OPTIMIZERS) + list(ALIASES), n=1)
    hint = f"; did you mean '{ALIASES.get(close[0], close[0])}'?" if close else ""
    raise LabError(f"unknown optimizer '{name}': choose one of {', '.join(OPTIMIZERS)}{hint}")


def make_optimizer(name: str, params: Params, config: OptimConfig = OptimConfig()) -> torch.optim.Optimizer:
    return OPTIMIZERS[canonical_optimizer(name)](params, config)
