"""C8's equivalence check: does a variant train what eager trains? Its speedup counts only if it does.

Modelled on the accuracy mode of PyTorch's compiler benchmarks (`torch._dynamo.utils.same`,
`benchmarks/dynamo/common.py`): a float64 reference of the same training, eager fp32's distance
from it as the yardstick of fp32 rounding, and the variant passes when its own distance is within
a multiple of that plus a tolerance stated per dtype. Unlike `same()` there is no cosine-similarity
fallback and no `allclose` escape: a cosine is blind to rescaling (a loss x1.05 or a doubled step
has cosine 1), and every tensor is held to its norm-wise relative error.

Shared between the paths is only the batch source: a few augmented uint8 images drawn once
(`check_batches`). Each path then runs its own epoch over them exactly as its benchmark does:
its loader's normalization (PIL ToTensor+Normalize in the DataLoader, or `normalize_batch` in the
copy step of the device-resident loader), its copy step, memory format, autocast, compiled model
or CUDA graph and optimizer step, from the same initial weights (`LabRun` seeds and builds them;
the check verifies they are the same). The epoch has full batches and a last partial one, so
accumulation across steps, a dropped partial batch and a per-shape compiled graph all show.
Compared per tensor: the epoch's loss, the last step's gradients, the updated parameters, the
optimizer state (SGD's momentum buffers) and BatchNorm's running statistics; the batch and image
counts and BatchNorm's step counters must be equal.

Why the tolerances are wide and the check's lr is lower: fp32 does not sit a smooth ~1e-7 from fp64
here. A few ReLU activations lie within rounding of zero and take the other side of the kink in fp32
(8 of 17.8M in one backward at batch 32, seed 0), and BatchNorm spreads each flip over its channel and
everything upstream: eager fp32's gradients sit ~1e-3 from fp64 after ONE backward, ~5e-6 with fp64's
ReLU masks forced (scripts/fp32_relu_kinks.py). Every SGD step amplifies the difference, so eager's
distance is one draw of a chaotic quantity and a legitimate variant's is another: over 10 seeds a
legitimate channels-last run sat up to 5.6x eager's distance. `CHECK_LR_FACTOR` damps the chaos; the
tolerances (`TOLERANCES`, set from the tolerance-free `needed` figures over 10 seeds) cover the rest,
and stay 8x or more below what the planted bugs need, bar one whose signal is below the noise (a
skipped weight decay: the optimizer's hyperparameters are compared exactly instead).
Margins over seeds: results/equivalence-margins/.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import LabDataset, LoaderConfig, make_test_loader
from ..data.device_loader import DeviceLoader
from ..data.transforms import test_transform
from ..engine.graphstep import WARMUP_STEPS
from ..engine.loop import train_one_epoch
from ..engine.run import LabRun, RunConfig, build_model
from ..engine.step import StepConfig, configure_backends, resolve_device, set_seed
from ..optim import make_optimizer
from .check_build import separate_build

CHECK_BATCH_SIZE = 16  # a sub-batch of the lab's 128: the step's path is the same at any batch size
CHECK_PARTIAL = 8  # the epoch's last, smaller batch (the lab's is 50,000 % 128 = 80)
CHECK_FULL_BATCHES = 2  # two full steps: gradients accumulated across steps show from the second
# The check trains at a tenth of the run's lr. At the lab's lr 0.1 and the check's batch 16 every step multiplies
# eager fp32's own distance from fp64 (ReLU kink flips, below) by ~100: the yardstick became chaos, and a legitimate
# variant's distance a draw of it (the smoke run failed channels-last at 1.6x its bound). One hyperparameter of
# the same code path; the margins over seeds are in results/equivalence-margins/.
CHECK_LR_FACTOR = 0.1
MULTIPLIER = 3.0  # dynamo's same(): 2 for fp32, 3 under autocast; 3 for both here, the tolerances do the rest

KINDS = ("loss", "grad", "param", "optimizer", "buffer")
# Norm-wise relative tolerance per dtype and kind: ||variant - fp64|| <= MULTIPLIER * yardstick + tolerance * ||fp64||.
# fp32: about twice the most any legitimate fp32 path needed over 10 seeds (results/equivalence-margins/, where
# `needed` is each kind's tolerance-free requirement); every planted bug but one needs 8x or more of these. A skipped
# weight decay (1e-5 of a parameter after the check's steps) is below fp32's kink noise: the optimizer's
# hyperparameters are an exact fact instead (`observe`). bfloat16: autocast's rounding, 2.5x what the emulated bf16
# paths of this CPU needed (one seed); not measured on a GPU's bf16 kernels.
TOLERANCES: dict[str, dict[str, float]] = {
    "float32": {"loss": 3e-3, "grad": 0.25, "param": 0.08, "optimizer": 0.15, "buffer": 0.015},
    "bfloat16": {"loss": 1e-2, "grad": 0.4, "param": 0.25, "optimizer": 0.35, "buffer": 0.1},
}
# How an optimizer steps, not what: a fused or foreach step is a legitimate fast path.
IMPLEMENTATION_KEYS = frozenset({"params", "foreach", "fused", "capturable", "differentiable"})
TOLERANCES["float16"] = TOLERANCES["bfloat16"]  # no C8 variant runs fp16; a wider mantissa than bf16's


def rule_record() -> dict[str, object]:
    return {
        "formula": "per tensor: ||variant - fp64|| <= multiplier * ||eager_fp32 - fp64|| "
        "+ tolerance[dtype][kind] * ||fp64||",
        "multiplier": MULTIPLIER,
        "lr_factor": CHECK_LR_FACTOR,
        "tolerances": TOLERANCES,
        "exact": ["batches", "images", "initial weights", "BatchNorm num_batches_tracked", "optimizer hyperparameters"],
        "cosine_fallback": False,
        "modelled_on": "torch._dynamo.utils.same (fp64 reference, eager's error times a multiplier)",
    }


@dataclass(frozen=True)
class CheckBatches:
    """The shared batch source: uint8 HWC images already augmented (crop, flip) once, and their labels."""

    images: np.ndarray
    labels: np.ndarray
    batch_size: int
    seed: int
    classes: tuple[str, ...]


def check_batches(
    train_set: LabDataset,
    seed: int,
    full_batches: int = CHECK_FULL_BATCHES,
    batch_size: int = CHECK_BATCH_SIZE,
    partial: int = CHECK_PARTIAL,
) -> CheckBatches:
    """`full_batches` batches and a partial one of the lab's augmentation (pad-4 crop, flip), drawn once for `seed`."""
    count = full_batches * batch_size + partial
    if count > len(train_set):
        raise ValueError(f"the equivalence check needs {count} training images, the set has {len(train_set)}")
    # The device loader's augmentation as a generator of draws: the shuffled epoch's first `count` images.
    loader = DeviceLoader(train_set.images, train_set.labels, count, train=True, seed=seed)
    x, y = next(iter(loader))
    return CheckBatches(
        x.permute(0, 2, 3, 1).contiguous().numpy(), y.numpy().copy(), batch_size, seed, train_set.classes
    )


def full_batches_for(config: RunConfig) -> int:
    # A whole-step graph warms up, captures, then replays: the check must reach a replay.
    return WARMUP_STEPS + 2 if config.graph_step else CHECK_FULL_BATCHES


def path_loader(batches: CheckBatches, config: RunConfig, device: torch.device) -> Iterable:
    """The batches through `config`'s own loader, in order: uint8 from the device-resident store (its copy
    step normalizes), or PIL images through the lab's ToTensor+Normalize in a DataLoader."""
    if config.device_loader:
        return DeviceLoader(batches.images, batches.labels, batches.batch_size, train=False, device=device)
    dataset = LabDataset(
        batches.images, batches.labels, batches.classes, "equivalence-check", transform=test_transform()
    )
    loader = LoaderConfig(
        batch_size=batches.batch_size, test_batch_size=batches.batch_size, num_workers=0, seed=batches.seed
    )
    return make_test_loader(dataset, loader, device)  # the test loader keeps the order


def check_config(config: RunConfig, seed: int) -> RunConfig:
    """The variant's run for the check: one epoch of the check's batches, every numerics setting its own."""
    return replace(
        config,
        epochs=1,
        max_batches=None,
        eval_batches=0,
        seed=seed,
        retain_heap=False,
        optim=replace(config.optim, lr=config.optim.lr * CHECK_LR_FACTOR),
    )


def eager_config(config: RunConfig) -> RunConfig:
    """The lab's faithful baseline on the same device, optimizer and numerics settings."""
    return replace(
        config,
        step=StepConfig(),
        compile_mode=None,
        device_loader=False,
        sync_phases=True,
        flush_denormal=False,
        graph_step=False,
        retain_heap=False,
        cold_compile=False,
    )


def references_key(config: RunConfig) -> tuple:
    """What the references depend on: configs equal in these share them."""
    return (config.device, config.optimizer, config.batch_norm, config.optim, config.numerics, full_batches_for(config))


@dataclass
class Observation:
    """What one path left after the check's epoch: CPU copies of its tensors by `kind/name`, and exact facts."""

    tensors: dict[str, torch.Tensor]
    exact: dict[str, object]
    first_steps_s: float = 0.0
    wall_s: float = 0.0


def _host_copy(t: torch.Tensor) -> torch.Tensor:
    # In its own dtype (an fp32 value is exact in fp32): half the bytes of float64 through an isolated run's pipe.
    return t.detach().to("cpu", memory_format=torch.contiguous_format).clone()


def initial_checksum(model: nn.Module) -> float:
    """Sum of the initial parameters in float64: equal for fp32 and fp64 copies of the same weights."""
    return float(sum(p.detach().to("cpu", torch.float64).sum() for p in model.parameters()))


def observe(model: nn.Module, optimizer: torch.optim.Optimizer, record: dict[str, object]) -> Observation:
    tensors: dict[str, torch.Tensor] = {"loss/epoch": torch.tensor(float(record["loss"]), dtype=torch.float64)}  # type: ignore[arg-type]  # an epoch record's loss is a float
    exact: dict[str, object] = {"batches": record["batches"], "images": record["images"]}
    for i, group in enumerate(optimizer.param_groups):
        for key, value in group.items():
            if key not in IMPLEMENTATION_KEYS:
                exact[f"optimizer/group{i}.{key}"] = float(value) if isinstance(value, torch.Tensor) else value
    for name, p in model.named_parameters():
        tensors[f"param/{name}"] = _host_copy(p)
        if p.grad is not None:
            tensors[f"grad/{name}"] = _host_copy(p.grad)
        for key, value in optimizer.state.get(p, {}).items():
            if isinstance(value, torch.Tensor) and value.shape == p.shape:
                tensors[f"optimizer/{name}.{key}"] = _host_copy(value)
    for name, b in model.named_buffers():
        if b.is_floating_point():
            tensors[f"buffer/{name}"] = _host_copy(b)
        else:
            exact[f"buffer/{name}"] = int(b.item()) if b.numel() == 1 else b.tolist()
    return Observation(tensors, exact)


def _synced(device: torch.device) -> float:
    if device.type == "cuda":  # cuda-only
        torch.cuda.synchronize(device)
    return time.perf_counter()


def run_path(config: RunConfig, batches: CheckBatches, plant: Callable[[LabRun], None] | None = None) -> Observation:
    """The variant's own epoch over the check's batches, as its benchmark trains (LabRun, its loader, its step)."""
    config = check_config(config, batches.seed)
    device = resolve_device(config.device)
    start = _synced(device)
    run = LabRun(config, train_loader=path_loader(batches, config, device), plant=plant)
    checksum = initial_checksum(run.model)
    build_steps = WARMUP_STEPS + 1 if config.graph_step else 1  # the steps that compile or capture
    built: list[float] = []

    def on_batch_end(done: int) -> None:
        if done == build_steps:
            built.append(_synced(device) - start)

    record = run.run_epoch(on_batch_end=on_batch_end)
    observation = observe(run.model, run.optimizer, record)
    observation.exact["initial_weights_sum"] = checksum
    observation.first_steps_s = built[0] if built else _synced(device) - start
    observation.wall_s = _synced(device) - start
    return observation


class _Float64Batches:
    """The lab's DataLoader batches cast to float64 for the reference model."""

    def __init__(self, loader: Iterable) -> None:
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]  # the loader given has a len()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return ((x.double(), y) for x, y in self.loader)


def fp64_path(config: RunConfig, batches: CheckBatches) -> Observation:
    """The reference: eager's epoch (PIL normalization, NCHW, no autocast) with the model and inputs in float64."""
    config = check_config(eager_config(config), batches.seed)
    device = resolve_device(config.device)
    start = _synced(device)
    set_seed(config.seed)  # as LabRun does before building the model: the same initial weights
    configure_backends(device, config.numerics)
    model = build_model(config, device)
    checksum = initial_checksum(model)
    model = model.double()
    optimizer = make_optimizer(config.optimizer, model.parameters(), config.optim)
    record = train_one_epoch(
        model, _Float64Batches(path_loader(batches, config, device)), optimizer, device, epoch=1, step=config.step
    )
    observation = observe(model, optimizer, record)
    observation.exact["initial_weights_sum"] = checksum
    observation.wall_s = _synced(device) - start
    return observation


@dataclass
class References:
    """fp64 and eager fp32 runs of the check's batches, computed once per session and key, shared by the variants."""

    fp64: Observation
    eager: Observation
    seconds: float


def compute_references(config: RunConfig, batches: CheckBatches) -> References:
    start = time.perf_counter()
    fp64 = fp64_path(config, batches)
    eager = run_path(eager_config(config), batches)
    return References(fp64, eager, time.perf_counter() - start)


@dataclass
class ReferenceCache:
    """The batch source and the references per seed and `references_key`, computed once in a session."""

    train_set: LabDataset
    _batches: dict[tuple[int, int], CheckBatches] = field(default_factory=dict)
    _references: dict[tuple, References] = field(default_factory=dict)

    def batches(self, config: RunConfig) -> CheckBatches:
        key = (config.seed, full_batches_for(config))
        if key not in self._batches:
            self._batches[key] = check_batches(self.train_set, config.seed, full_batches=key[1])
        return self._batches[key]

    def references(self, config: RunConfig) -> tuple[References, bool]:
        """The references for `config`, and whether they were computed by this call."""
        key = (config.seed, *references_key(config))
        fresh = key not in self._references
        if fresh:
            self._references[key] = compute_references(config, self.batches(config))
        return self._references[key], fresh


def amp_dtype_name(config: RunConfig) -> str:
    return str(config.step.amp_dtype).removeprefix("torch.") if config.step.amp_dtype else "float32"


def _norm(t: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(t))


def compare(variant: Observation, refs: References, dtype: str) -> dict[str, Any]:
    """The rule applied tensor by tensor; the record's `worst` names the tensor farthest past (or nearest to) its
    bound."""
    tolerances = TOLERANCES[dtype]
    mismatches = [
        f"{key}: {variant.exact.get(key)!r} vs eager {value!r}"
        for key, value in refs.eager.exact.items()
        if key != "initial_weights_sum" and variant.exact.get(key) != value
    ]
    if variant.exact.get("initial_weights_sum") != refs.fp64.exact["initial_weights_sum"]:
        mismatches.insert(0, "initial weights differ from the reference's")
    missing = sorted(set(refs.fp64.tensors) - set(variant.tensors))
    mismatches += [f"{name}: missing" for name in missing[:3]]
    per_kind: dict[str, dict[str, Any]] = {}
    for name, ref in refs.fp64.tensors.items():
        if name in missing:
            continue
        kind = name.split("/", 1)[0]
        ref = ref.double()
        scale = _norm(ref)
        err = _norm(variant.tensors[name].double() - ref)
        eager_err = _norm(refs.eager.tensors[name].double() - ref)
        bound = MULTIPLIER * eager_err + tolerances[kind] * scale
        ratio = err / bound if bound > 0 else (0.0 if err == 0 else math.inf)
        if not math.isfinite(err):
            ratio = math.inf
        # The tolerance this tensor alone would need: what the rule's margins are measured in (tolerance-free).
        needed = (
            max(0.0, err - MULTIPLIER * eager_err) / scale
            if scale
            else (0.0 if err <= MULTIPLIER * eager_err else math.inf)
        )
        entry = per_kind.setdefault(kind, {"ratio": -1.0, "needed_tolerance": 0.0})
        entry["needed_tolerance"] = max(entry["needed_tolerance"], needed if math.isfinite(err) else math.inf)
        if ratio > entry["ratio"]:
            entry.update(
                tensor=name,
                ratio=ratio,
                relative_error=err / scale if scale else err,
                eager_relative_error=eager_err / scale if scale else eager_err,
                tolerance=tolerances[kind],
            )
    worst = max(per_kind.values(), key=lambda e: e["ratio"])
    passed = not mismatches and all(e["ratio"] <= 1.0 for e in per_kind.values())
    return {
        "verdict": "pass" if passed else "fail",
        "dtype": dtype,
        "worst": worst,
        "kinds": per_kind,
        "mismatches": mismatches,
        "tensors_compared": len(refs.fp64.tensors) - len(missing),
        "rule": rule_record(),
    }


def failure_line(variant_name: str, record: dict[str, Any]) -> str:
    """One line: which variant, and the tensor (or fact) farthest from the reference."""
    if record["mismatches"]:
        return f"C8 variant '{variant_name}' does not train what eager trains: {record['mismatches'][0]}"
    w = record["worst"]
    return (
        f"C8 variant '{variant_name}' does not train what eager trains: "
        f"{w['tensor']} is {w['relative_error']:.3g} from fp64 "
        f"(eager fp32 {w['eager_relative_error']:.3g}, {record['dtype']} tolerance {w['tolerance']:.3g}): "
        f"{w['ratio']:.3g}x its bound"
    )


def check_record(
    variant: Observation,
    refs: References,
    config: RunConfig,
    batches: CheckBatches,
    references_fresh: bool,
    started: float,
) -> dict[str, Any]:
    record = compare(variant, refs, amp_dtype_name(config))
    record.update(
        # the check's first step(s), where a compiled variant builds and a graph captures
        build_s=variant.first_steps_s,
        variant_s=variant.wall_s,
        references_s=refs.seconds if references_fresh else 0.0,  # paid by the first variant that needed them
        check_s=time.perf_counter() - started,
        batch_size=batches.batch_size,
        images=len(batches.labels),
        seed=batches.seed,
    )
    return record


def observe_variant(
    config: RunConfig, batches: CheckBatches, plant: Callable[[LabRun], None] | None = None
) -> Observation:
    """The variant's path, its build kept apart from the timed run's (see `check_build.separate_build`)."""
    with separate_build(config):
        return run_path(config, batches, plant)


def check_variant(
    config: RunConfig,
    cache: ReferenceCache,
    plant: Callable[[LabRun], None] | None = None,
    observe_fn: Callable[..., Observation] | None = None,
) -> dict[str, Any]:
    """The check of one variant's `config` against the session's references. `observe_fn` runs the variant's
    path elsewhere (an isolated process); by default here."""
    started = time.perf_counter()
    batches = cache.batches(config)
    refs, fresh = cache.references(config)
    started_variant = time.perf_counter()
    variant = (observe_fn or observe_variant)(config, batches, plant)
    record = check_record(variant, refs, config, batches, fresh, started_variant)
    record["check_s"] = time.perf_counter() - started - (refs.seconds if fresh else 0.0)
    return record
