"""Why eager fp32 sits ~1e-3 from the fp64 reference after one backward (issue 19, the check's yardstick).

One backward of the lab's ResNet-18 (seed 0, a batch of 32 normal images, as ../shared/probes/compile_vs_fp64.py)
in fp64 and fp32: counts the ReLU activations whose sign differs between the two forwards (values within fp32
rounding of zero take the other side of the kink), then reruns fp32 with fp64's ReLU masks forced. If the
fp32 gradients' distance from fp64 drops from ~1e-3 to ~1e-6, the kinks, not the reference's inputs, set it.

    python scripts/fp32_relu_kinks.py      (under a minute on 2 cores)
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

import resnet_lab.model as lab_model


def main() -> None:
    torch.manual_seed(0)
    base = lab_model.resnet18(batch_norm=True)
    x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
    relu, masks = F.relu, []

    def spy(t: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        masks.append(t.detach() > 0)
        return relu(t, *args, **kwargs)

    def grads(dtype: torch.dtype) -> dict[str, torch.Tensor]:
        model = copy.deepcopy(base).to(dtype)
        F.cross_entropy(model(x.to(dtype)), y).backward()
        return {n: p.grad.double() for n, p in model.named_parameters()}

    def worst(g: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> tuple[float, str]:
        return max((float((g[n] - ref[n]).norm() / ref[n].norm()), n) for n in ref)

    lab_model.F.relu = spy  # the model calls F.relu through its module's F
    try:
        g64 = grads(torch.float64)
        m64 = list(masks)
        masks.clear()
        g32 = grads(torch.float32)
        flips = [int((a != b).sum()) for a, b in zip(masks, m64, strict=False)]
        forced = iter(m64)
        lab_model.F.relu = lambda t, *a, **k: t * next(forced).to(t.dtype)
        g32_forced = grads(torch.float32)
    finally:
        lab_model.F.relu = relu
    total = sum(int(m.numel()) for m in m64)
    print(f"ReLU activations on the other side of the kink in fp32: {sum(flips)} of {total:,} (per ReLU: {flips})")
    print("fp32 gradients vs fp64, worst tensor: {:.3g} {}".format(*worst(g32, g64)))
    print("fp32 with fp64's ReLU masks forced:    {:.3g} {}".format(*worst(g32_forced, g64)))


if __name__ == "__main__":
    main()
