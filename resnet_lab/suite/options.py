"""The suite's parsed `--lab-*` options, the preset applied: one frozen record handed to every fixture.

`LabOptions.base_config` is the one `RunConfig` every training benchmark starts from; a
benchmark's configuration (a C8 variant's included) is a `dataclasses.replace` of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from ..argtypes import MAX_SEED
from ..data import SOURCES_HELP, SYNTHETIC, DataConfig, LoaderConfig
from ..engine.run import RunConfig
from ..engine.step import Numerics
from ..errors import LabError
from ..spec.presets import C3_DEFAULT_WORKERS, DEFAULT_SEEDS, PRESETS, extension_counts


@dataclass(frozen=True)
class LabOptions:
    """The suite's options after the preset is applied; explicit options win over the preset."""

    preset: str = "smoke"
    data: str = SYNTHETIC
    devices: tuple[str, ...] = ("cpu", "cuda")
    epochs: int = 2
    max_batches: int | None = 2
    eval_batches: int | None = 2
    workers: tuple[int, ...] | None = None  # explicit C3 counts; None = default sweep, extended while it improves
    profile_steps: int = 3
    c8_epochs: int = 2
    out_dir: str = "lab-output"
    numerics: Numerics = (
        Numerics()
    )  # fp32 math on CUDA: PyTorch's defaults (cuDNN convolutions in TF32) unless --lab-tf32 off
    seeds: tuple[int, ...] = (
        DEFAULT_SEEDS  # --lab-seeds; other than the default, training benchmarks get a `seed` param
    )
    seed: int = 0  # the seed of this benchmark's run (one of `seeds`; the `seed` fixture sets it)

    @property
    def seeded(self) -> bool:
        """Whether training benchmarks are parametrized by seed: any --lab-seeds but the default keeps names as they
        were."""
        return self.seeds != DEFAULT_SEEDS

    def c3_workers(self) -> tuple[int, ...]:
        """C3 worker counts parametrized at collection: the explicit list, or the default plus extension slots."""
        if self.workers is not None:
            return self.workers
        return C3_DEFAULT_WORKERS + extension_counts()

    def is_extension(self, workers: int) -> bool:
        """True for counts past the default list, run only while loading time still improves."""
        return self.workers is None and workers > C3_DEFAULT_WORKERS[-1]

    @property
    def base_config(self) -> RunConfig:
        """The lab's run at this preset: what every training benchmark replaces fields of."""
        # The seed sets the initial weights (RunConfig.seed) and the loader's shuffle and augmentation
        # (LoaderConfig.seed).
        return RunConfig(
            epochs=self.epochs,
            max_batches=self.max_batches,
            eval_batches=self.eval_batches,
            numerics=self.numerics,
            seed=self.seed,
            loader=LoaderConfig(seed=self.seed),
        )

    @property
    def data_config(self) -> DataConfig:
        return DataConfig(source=self.data)


def parse_devices(text: str | tuple[str, ...]) -> tuple[str, ...]:
    """'cpu,cuda' or an already parsed tuple (argtypes.device_list) -> ('cpu', 'cuda')."""
    parts = text.split(",") if isinstance(text, str) else text
    devices = tuple(d.strip().lower() for d in parts if d.strip())
    if not devices:
        raise LabError("--lab-device needs at least one device, e.g. cpu or cpu,cuda")
    for device in devices:
        kind = device.split(":")[0]
        if kind not in ("cpu", "cuda") or (kind == "cpu" and device != "cpu"):
            raise LabError(f"--lab-device: unknown device '{device}'; use cpu, cuda or cuda:N, comma-separated")
    return tuple(dict.fromkeys(devices))


def build_options(
    preset: str,
    data: str,
    devices: str | tuple[str, ...],
    epochs: int | None,
    batches: int | None,
    workers: tuple[int, ...] | None,
    out_dir: str,
    tf32: bool = True,
    eval_batches: int | None = None,
    seeds: tuple[int, ...] | None = None,
) -> LabOptions:
    """Apply the preset, then the explicit options (`None` = not given). `--lab-batches 0` and
    `--lab-eval-batches 0` mean no cap."""
    if preset not in PRESETS:
        raise LabError(f"--lab-preset: unknown preset '{preset}'; choose one of {', '.join(PRESETS)}")
    chosen = PRESETS[preset]
    options = LabOptions(
        preset=preset,
        data=data,
        devices=parse_devices(devices),
        epochs=chosen.epochs,
        max_batches=chosen.max_batches,
        eval_batches=chosen.eval_batches,
        profile_steps=chosen.profile_steps,
        c8_epochs=chosen.c8_epochs,
        workers=workers,
        out_dir=out_dir,
        numerics=Numerics(cudnn_tf32=tf32),
    )
    if data != SYNTHETIC and not os.path.exists(os.path.expanduser(data)):
        raise LabError(f"--lab-data: path '{data}' does not exist; pass {SOURCES_HELP}")
    if epochs is not None:
        options = replace(options, epochs=epochs, c8_epochs=epochs)
    if batches is not None:
        options = replace(options, max_batches=batches or None)
    if eval_batches is not None:
        options = replace(options, eval_batches=eval_batches or None)
    if seeds is not None:
        options = replace(options, seeds=check_seeds(seeds), seed=seeds[0] if seeds else 0)
    return options


def check_seeds(seeds: tuple[int, ...]) -> tuple[int, ...]:
    """--lab-seeds as given to build_options directly (the option's parser checks the text the same way)."""
    if not seeds:
        raise LabError("--lab-seeds needs at least one seed, e.g. 0 or 0,1,2")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise LabError(f"--lab-seeds: seed {seed!r} is out of range: seeds are integers 0..{MAX_SEED}")
    if len(set(seeds)) != len(seeds):
        raise LabError(f"--lab-seeds: a seed is given twice in {','.join(map(str, seeds))}: list each once")
    return tuple(seeds)
