"""The epoch record, declared once (no torch): the training loop's phases, every key of the record a training epoch
gives, its unit, and which keys are timings. The loop writes these keys; the suite's checks, `compare`, the report,
`estimate`, the plots, `train`'s lines and DDP's job record read them from here.

Wall time per phase is `{phase}_s`. CPU runs also record this process's CPU seconds per phase,
`{phase}_cpu_s` (every thread of the process: torch's intra-op threads, not DataLoader worker
processes), and `epoch_cpu_s` for the whole epoch: wall time that grows while CPU time does not is
waiting (a sleep, a lock, blocking I/O, a loader that cannot keep up), not computing. CUDA runs do not
record CPU time (a synchronize's busy wait would count as compute); records saved before these
keys existed lack them, and every reader treats them as optional.

A new phase is one `Phase` below plus its measurement (a `regions.region(name)` in engine/loop.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# An epoch record as its readers see it: JSON-shaped (the keys of EPOCH_KEYS below: numbers, a flag, a list),
# so each value's type follows from its key, not from the mapping's type.
EpochRecord = Mapping[str, Any]


@dataclass(frozen=True)
class Phase:
    name: str
    per_batch: bool  # every batch passes through it (so it takes time on a real clock), or once per epoch (may be 0)
    title: str  # what the report, the plots and `train`'s lines call it
    color: str  # its colour in every figure

    @property
    def key(self) -> str:
        return f"{self.name}_s"

    @property
    def cpu_key(self) -> str:
        return f"{self.name}_cpu_s"


# In the order an epoch runs them.
PHASE_LIST = (
    Phase("startup", per_batch=False, title="loader start-up (workers)", color="#937860"),
    Phase("load", per_batch=True, title="data loading", color="#4c72b0"),
    Phase("copy", per_batch=True, title="host→device copy", color="#dd8452"),
    Phase("train", per_batch=True, title="training (fwd+bwd+step)", color="#55a868"),  # forward, backward, step
    Phase("metrics", per_batch=True, title="metric bookkeeping", color="#c44e52"),  # running loss and top-1
    Phase("shutdown", per_batch=False, title="loader shutdown (workers)", color="#8172b3"),  # the iterator dropped
)


@dataclass(frozen=True)
class Key:
    name: str
    unit: str  # "s", "images/s", "images", "batches", "" (a number or flag), "fraction"
    timing: bool  # a wall or CPU time, judged noise-aware and machine-bound
    optional: bool = False  # absent from some records (CPU time: CPU runs since issue 23 only)


PHASES = tuple(phase.name for phase in PHASE_LIST)
PHASE_KEYS = tuple(phase.key for phase in PHASE_LIST)
BATCH_PHASE_KEYS = tuple(phase.key for phase in PHASE_LIST if phase.per_batch)
EPOCH_PHASE_KEYS = tuple(phase.key for phase in PHASE_LIST if not phase.per_batch)
CPU_PHASE_KEYS = tuple(phase.cpu_key for phase in PHASE_LIST)
EPOCH_S = "epoch_s"  # the whole epoch, wall time: the phases lie inside it
EPOCH_CPU_KEY = "epoch_cpu_s"
CPU_KEYS = (*CPU_PHASE_KEYS, EPOCH_CPU_KEY)
IMAGES_PER_S = "images_per_s"
QUALITY_KEYS = ("loss", "top1")  # of the epoch's training batches (top-1 over all images seen)
TIMED_KEYS = (*PHASE_KEYS, EPOCH_S)  # the wall times a summary averages over epochs

# Every key of a training epoch's record, in the order the loop writes it.
EPOCH_KEYS: tuple[Key, ...] = (
    Key("epoch", "", timing=False),
    Key("batches", "batches", timing=False),
    Key("images", "images", timing=False),
    *(Key(key, "s", timing=True) for key in PHASE_KEYS),
    *(Key(key, "s", timing=True, optional=True) for key in CPU_KEYS),
    Key("phases_synced", "", timing=False),  # the device was synchronized at every phase boundary
    Key(EPOCH_S, "s", timing=True),
    Key(IMAGES_PER_S, "images/s", timing=False),
    Key("loss", "", timing=False),
    Key("top1", "fraction", timing=False),
    Key("per_class_top1", "fraction", timing=False),
)
TIMING_KEYS = tuple(key.name for key in EPOCH_KEYS if key.timing)
# What a data-parallel job keeps of each rank's record (distributed/ddp.py): the slowest rank's phases decide.
RANK_KEYS = (*PHASE_KEYS, EPOCH_S, "images", *QUALITY_KEYS)


def cpu_key(wall_key: str) -> str:
    """The CPU-time key beside a wall-time key: "train_s" -> "train_cpu_s", "round_s" -> "round_cpu_s"."""
    if not wall_key.endswith("_s"):
        raise ValueError(f"{wall_key!r} is not a wall-time key (ends in _s)")
    return f"{wall_key[:-2]}_cpu_s"
