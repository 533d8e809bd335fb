"""Answers to Q1-Q4, measured from a live module, never typed in.

Q1 has two conventions and every figure names which one it uses:
`main_path` (stem + the convs inside blocks, 17 for ResNet-18) and
`all_conv2d` (every Conv2d module, 20 = 17 + 3 projection shortcuts).
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn


def is_shortcut(name: str) -> bool:
    """A module belongs to a projection shortcut when a path component is named `shortcut`."""
    return "shortcut" in name.split(".")


def conv_counts(model: nn.Module) -> dict[str, int]:
    """Conv2d modules by convention: main path, projection shortcuts, all."""
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    shortcut = sum(1 for n in names if is_shortcut(n))
    return {"main_path": len(names) - shortcut, "shortcut": shortcut, "all_conv2d": len(names)}


def final_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("model has no nn.Linear layer")
    return linears[-1]


def final_linear_input_width(model: nn.Module, image_size: int = 32) -> int:
    """Width of the tensor that actually reaches the final Linear in a forward pass (Q2)."""
    seen: list[int] = []
    handle = final_linear(model).register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0].shape[-1]))
    param = next(model.parameters())
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size, device=param.device, dtype=param.dtype))
    finally:
        handle.remove()
        model.train(was_training)
    return seen[0]


def trainable_parameters(model: nn.Module) -> dict[str, int]:
    params = [p for p in model.parameters() if p.requires_grad]
    return {"parameters": sum(p.numel() for p in params), "parameter_tensors": len(params)}


def one_training_step(model: nn.Module, optimizer: torch.optim.Optimizer | None, batch_size: int = 2) -> None:
    """Forward, cross-entropy, backward (and `optimizer.step()` if given) on a random batch."""
    param = next(model.parameters())
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, 3, 32, 32, generator=gen).to(param.device)
    y = torch.randint(0, final_linear(model).out_features, (batch_size,), generator=gen).to(param.device)
    model.train()
    if optimizer is not None:
        optimizer.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    if optimizer is not None:
        optimizer.step()


def gradient_stats(model: nn.Module) -> dict[str, int]:
    """Gradient elements and tensors present now (call after a backward)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return {"gradient_elements": sum(g.numel() for g in grads), "gradient_tensors": len(grads)}


def optimizer_state_stats(optimizer: torch.optim.Optimizer) -> dict[str, object]:
    """Optimizer state after a step: tensors and elements, in total and per state key."""
    by_key: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for state in optimizer.state.values():
        for key, value in state.items():
            if torch.is_tensor(value):
                by_key[key][0] += 1
                by_key[key][1] += value.numel()
    # Scalar `step` counters are bookkeeping, not per-parameter buffers; count them apart.
    buffers = {k: v for k, v in by_key.items() if k != "step"}
    return {
        "state_tensors": sum(v[0] for v in buffers.values()),
        "state_elements": sum(v[1] for v in buffers.values()),
        "state_bytes": sum(
            value.numel() * value.element_size()
            for state in optimizer.state.values()
            for key, value in state.items()
            if torch.is_tensor(value) and key != "step"
        ),
        "state_by_key": {k: {"tensors": v[0], "elements": v[1]} for k, v in sorted(by_key.items())},
    }


def structure_report(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, object]:
    """Q1-Q4 in one flat record: counts taken before, gradients and state after one step."""
    record: dict[str, object] = {}
    record.update({f"conv_{k}": v for k, v in conv_counts(model).items()})
    record["linear_in_features"] = final_linear_input_width(model)
    record.update(trainable_parameters(model))
    one_training_step(model, optimizer)
    record.update(gradient_stats(model))
    record.update(optimizer_state_stats(optimizer))
    return record
