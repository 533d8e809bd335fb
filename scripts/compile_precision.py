"""torch.compile vs fp64: numerics or semantics? One lab SGD step of ResNet-18, compiled and eager, in fp32 and fp64.

    python scripts/compile_precision.py [--batch 32] [--steps 3] [--seed 0]

`../shared/probes/compile_vs_fp64.py` found compiled fp32 BatchNorm-parameter gradients up to 5e-3
(relative) from an fp64 reference where eager fp32's sit within ~2e-6. If Inductor computed another
function (a different variance, eps, momentum), compiling the model *in fp64* would keep that gap;
if it is rounding (another reduction order or formula in fp32), compiled fp64 meets eager fp64 to
~1e-10 and the fp32 gap is the condition of the quantity, shown by comparing it with the spread
that a harmless fp32 perturbation (the same step on channels_last weights) produces.

Per tensor kind (loss, gradients, updated parameters, momentum buffers, BN running statistics)
it prints the largest relative distance (||a - b|| / ||b||, per tensor, the worst over tensors).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch
import torch.nn.functional as F

from resnet_lab.model import resnet18
from resnet_lab.optim import make_optimizer


def train(
    base: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    dtype: torch.dtype,
    steps: int,
    compiled: bool,
    channels_last: bool = False,
) -> dict[str, dict[str, torch.Tensor]]:
    model = copy.deepcopy(base).to(dtype)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer("sgd", model.parameters())
    step_model = torch.compile(model, dynamic=False) if compiled else model
    losses, grads = [], {}
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        inputs = x[step].to(dtype)
        if channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(step_model(inputs), y[step])
        loss.backward()
        if step == 0:
            grads = {n: p.grad.detach().double().clone() for n, p in model.named_parameters()}
        optimizer.step()
        losses.append(loss.detach().double())
    return {
        "loss": {"loss": torch.stack(losses)},
        "grad (step 1)": grads,
        "param": {n: p.detach().double() for n, p in model.named_parameters()},
        "momentum": {n: optimizer.state[p]["momentum_buffer"].double() for n, p in model.named_parameters()},
        "bn running stats": {n: b.double() for n, b in model.named_buffers() if b.is_floating_point()},
    }


def distance(
    a: dict[str, dict[str, torch.Tensor]], b: dict[str, dict[str, torch.Tensor]]
) -> dict[str, tuple[float, str]]:
    out = {}
    for kind in b:
        worst = max(((a[kind][n] - b[kind][n]).norm() / b[kind][n].norm().clamp_min(1e-30)).item() for n in b[kind])
        name = max(
            b[kind], key=lambda n: ((a[kind][n] - b[kind][n]).norm() / b[kind][n].norm().clamp_min(1e-30)).item()
        )
        out[kind] = (worst, name)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    base = resnet18()
    x = torch.randn(args.steps, args.batch, 3, 32, 32)
    y = torch.randint(0, 10, (args.steps, args.batch))
    reference = train(base, x, y, torch.float64, args.steps, compiled=False)
    runs = {
        "eager fp32": train(base, x, y, torch.float32, args.steps, compiled=False),
        "eager fp32 channels_last": train(base, x, y, torch.float32, args.steps, compiled=False, channels_last=True),
        "compiled fp32": train(base, x, y, torch.float32, args.steps, compiled=True),
        "compiled fp64": train(base, x, y, torch.float64, args.steps, compiled=True),
    }
    kinds = list(reference)
    print(
        f"ResNet-18, batch {args.batch}, {args.steps} lab SGD steps, seed {args.seed}, torch {torch.__version__}: "
        "worst relative distance from eager fp64 (tensor)"
    )
    print("| run | " + " | ".join(kinds) + " |")
    print("|---|" + "---|" * len(kinds))
    for name, run in runs.items():
        d = distance(run, reference)
        print(
            f"| {name} | "
            + " | ".join(f"{d[k][0]:.1e} ({d[k][1]})" if k != "loss" else f"{d[k][0]:.1e}" for k in kinds)
            + " |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
