"""A lab run: model, optimizer and loaders built from one frozen config, epoch by epoch.

`RunConfig` is the one description of a run: the CLI builds it from its flags, the suite
derives every benchmark's (C8's variants included) with `dataclasses.replace` from one base.
The CLI loops `run_epoch()`; the benchmarks hand `run_epoch` to `benchmark.pedantic` so each
round is one epoch on the same model.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any, cast

import torch
from torch import nn

from ..data import LabDataset, LoaderConfig, make_test_loader, make_train_loader
from ..data.device_loader import DeviceLoader
from ..errors import LabError
from ..model import resnet18
from ..optim import OptimConfig, canonical_optimizer, make_optimizer
from .graphstep import GraphedTrainStep
from .hostalloc import retain_freed_memory
from .loop import evaluate, summarize, train_one_epoch
from .step import (
    Numerics,
    StepConfig,
    StepOps,
    configure_backends,
    resolve_device,
    set_seed,
)

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


@dataclass(frozen=True)
class RunConfig:
    """Everything one lab run depends on; defaults are LAB_SPEC's prescribed setup."""

    device: str = "cpu"
    epochs: int = 5
    optimizer: str = "sgd"
    batch_norm: bool = True
    max_batches: int | None = None  # per epoch; caps CPU-sized runs
    eval_batches: int | None = None  # test batches per evaluation; None = whole test set
    seed: int = 0
    step: StepConfig = StepConfig()
    compile_mode: str | None = None  # torch.compile mode (C8); None = eager
    device_loader: bool = False  # C8: device-resident loader instead of the lab's PIL DataLoader
    sync_phases: bool = True  # False: the fast loop, no per-batch sync (see train_one_epoch)
    flush_denormal: bool = False  # CPU: flush denormal floats to zero during training (see flush_denormals)
    graph_step: bool = False  # CUDA: the whole training step as one CUDA graph (see graphstep.py)
    retain_heap: bool = False  # malloc keeps freed memory; process-wide and irreversible (see hostalloc.py)
    cold_compile: bool = False  # compile with torch.compiler's caches off, so epoch 1 pays the whole build (C8)
    optim: OptimConfig = OptimConfig()
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    numerics: Numerics = Numerics()  # fp32 math on CUDA (TF32 or not), set by every run

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise LabError(f"epochs must be >= 1, got {self.epochs}")
        if self.max_batches is not None and self.max_batches < 1:
            raise LabError(f"max batches must be >= 1, got {self.max_batches}")
        if self.eval_batches is not None and self.eval_batches < 0:
            raise LabError(f"eval batches must be >= 0, got {self.eval_batches}")
        if self.compile_mode is not None and self.compile_mode not in COMPILE_MODES:
            raise LabError(f"unknown compile mode '{self.compile_mode}': choose one of {', '.join(COMPILE_MODES)}")
        canonical_optimizer(self.optimizer)
        if self.graph_step and not self.device.startswith("cuda"):
            raise LabError(
                f"graph_step captures the training step as a CUDA graph: it needs device 'cuda', got '{self.device}'"
            )
        if self.graph_step and self.compile_mode not in (None, "default"):
            raise LabError(
                "graph_step cannot be combined with compile mode "
                f"'{self.compile_mode}', which captures CUDA graphs of its own; "
                "use compile mode 'default' or none"
            )

    @property
    def workers(self) -> int:
        return self.loader.num_workers

    @property
    def evaluates(self) -> bool:
        """Whether `LabRun.evaluate` runs the test set (eval_batches 0 turns it off)."""
        return self.eval_batches != 0

    @property
    def changes_process(self) -> bool:
        """Whether the run changes process-wide state for good (malloc tuning, see hostalloc.py), so
        that whatever runs after it in the same process would be measured under it."""
        return self.retain_heap

    def with_workers(self, num_workers: int) -> RunConfig:
        return replace(self, loader=replace(self.loader, num_workers=num_workers))

    def as_record(self) -> dict[str, object]:
        record = asdict(self)
        record["optimizer"] = canonical_optimizer(self.optimizer)
        record["step"] = {
            "channels_last": self.step.channels_last,
            "amp_dtype": str(self.step.amp_dtype) if self.step.amp_dtype else None,
        }
        return record


@contextlib.contextmanager
def flush_denormals(enabled: bool) -> Iterator[None]:
    """Flush denormal floats to zero (FTZ/DAZ) for the duration, then restore the default.

    x86 arithmetic on denormals is slow and GPUs flush by default, so the fast
    CPU variant does too. Its effect on ResNet-18 is small, so it is an option of
    the C8 `best` variant, not of the lab's loop.
    """
    if not enabled:
        yield
        return
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


@contextlib.contextmanager
def compiler_caches(enabled: bool) -> Iterator[None]:
    """torch.compiler's caches (FX graph, AOT autograd, autotuning; in memory and on disk) on or off.

    Off, a compile costs what it costs on a fresh machine, whatever this process or an earlier
    run left in /tmp/torchinductor_*; on, a rerun may load the build in a fraction of the time,
    which would make C8's first epoch understate the compile cost.
    """
    if enabled:
        yield
        return
    patch = torch.compiler.config.patch  # type: ignore[attr-defined]  # added at run time (torch.utils._config_module)
    with warnings.catch_warnings(), patch(force_disable_caches=True):
        # Dynamo says once that it also turns profile-guided dynamic shapes off; that is intended here.
        warnings.filterwarnings("ignore", message=".*force disabled by torch.compiler.config.force_disable_caches")
        yield


def build_model(config: RunConfig, device: torch.device) -> torch.nn.Module:
    model = resnet18(batch_norm=config.batch_norm).to(device)
    if config.step.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def make_train_batches(config: RunConfig, train_set: LabDataset, device: torch.device) -> Iterable:
    """The run's training loader, the device-resident one or the lab's DataLoader, from the one `config.loader`:
    batch size, drop_last and the seed of shuffle and augmentation mean the same for both."""
    if config.device_loader:
        loader = config.loader
        return DeviceLoader(
            train_set.images,
            train_set.labels,
            loader.batch_size,
            device=device,
            seed=loader.seed,
            drop_last=loader.drop_last,
        )
    return make_train_loader(train_set, config.loader, device)


class LabRun:
    """One model + optimizer trained epoch by epoch; records accumulate in `records`."""

    def __init__(
        self,
        config: RunConfig,
        train_set: LabDataset | None = None,
        test_set: LabDataset | None = None,
        *,
        train_loader: Iterable | None = None,
        test_loader: Iterable | None = None,
        progress: bool = False,
        plant: Callable[[LabRun], None] | None = None,
    ) -> None:
        """`plant` is the equivalence check's test-only seam (perf/plants.py): it changes this run's
        model, optimizer, loader or `ops` after they are built and before compile and capture."""
        self.config = config
        self.device = resolve_device(config.device)
        set_seed(config.seed)
        configure_backends(self.device, config.numerics)
        self.host_alloc = retain_freed_memory() if config.retain_heap else {}
        self.model = build_model(config, self.device)
        self.optimizer = make_optimizer(config.optimizer, self.model.parameters(), config.optim)
        self.ops = StepOps()
        self.train_loader, self.test_loader = self._loaders(config, train_set, test_set, train_loader, test_loader)
        if plant is not None:
            plant(self)
        if config.compile_mode:
            # A fresh Dynamo state per run: code caches and recompile counts left by an earlier run
            # in this process (C8 runs several variants) must neither serve this model's graphs
            # nor push it past the recompile limit, where Dynamo falls back to eager.
            torch.compiler.reset()
        # Compile after the optimizer holds the real parameters; the compiled wrapper shares them.
        # dynamic=False: the epoch's last, smaller batch (50,000 % 128 = 80) gets its own static
        # graph instead of turning the batch dimension symbolic for every later step.
        # torch.compile of a Module returns an OptimizedModule (a Module); its stubs only promise a callable.
        self.step_model: nn.Module = (
            cast(nn.Module, torch.compile(self.model, mode=config.compile_mode, dynamic=False))
            if config.compile_mode
            else self.model
        )
        self.progress = progress
        self.records: list[dict[str, object]] = []
        self.graphed = (
            GraphedTrainStep(self.step_model, self.optimizer, self.device, config.step, ops=self.ops)
            if config.graph_step
            else None
        )

    def _loaders(
        self,
        config: RunConfig,
        train_set: LabDataset | None,
        test_set: LabDataset | None,
        train_loader: Iterable | None,
        test_loader: Iterable | None,
    ) -> tuple[Iterable, Iterable | None]:
        if train_loader is None:
            if train_set is None:
                raise LabError("LabRun needs a train_set or a train_loader")
            train_loader = make_train_batches(config, train_set, self.device)
        if test_loader is None and test_set is not None:
            test_loader = make_test_loader(test_set, config.loader, self.device)
        return train_loader, test_loader

    @contextlib.contextmanager
    def epoch_context(self) -> Iterator[None]:
        """What every training epoch of this run runs inside (Q3b's profiled steps too)."""
        with flush_denormals(self.config.flush_denormal), compiler_caches(not self.config.cold_compile):
            yield

    def run_epoch(self, on_batch_end: Callable[[int], None] | None = None) -> dict[str, object]:
        with self.epoch_context():
            record = self._train_epoch(on_batch_end)
        record["warmup"] = not self.records  # the lab counts epoch 1; readers may exclude it
        self.records.append(record)
        return record

    def _train_epoch(self, on_batch_end: Callable[[int], None] | None = None) -> dict[str, object]:
        return train_one_epoch(
            self.step_model,
            self.train_loader,
            self.optimizer,
            self.device,
            epoch=len(self.records) + 1,
            max_batches=self.config.max_batches,
            step=self.config.step,
            progress=self.progress,
            sync_phases=self.config.sync_phases,
            graphed=self.graphed,
            on_batch_end=on_batch_end,
            ops=self.ops,
        )

    def evaluate(self) -> dict[str, Any]:
        if self.test_loader is None or self.config.eval_batches == 0:
            return {}
        with compiler_caches(not self.config.cold_compile):
            return evaluate(
                self.step_model,
                self.test_loader,
                self.device,
                max_batches=self.config.eval_batches,
                step=self.config.step,
            )

    def summary(self) -> dict[str, object]:
        return summarize(self.records)
