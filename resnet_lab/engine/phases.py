"""The training loop's phases and the per-epoch record keys they give, declared once (no torch).

Wall time per phase is `{phase}_s`. CPU runs also record this process's CPU seconds per phase,
`{phase}_cpu_s` (every thread of the process: torch's intra-op threads, not DataLoader worker
processes), and `epoch_cpu_s` for the whole epoch: wall time that grows while CPU time does not is
waiting (a sleep, a lock, blocking I/O, a loader that cannot keep up), not computing. CUDA runs do not
record CPU time (a synchronize's busy wait would count as compute); records saved before these
keys existed lack them, and every reader treats them as optional.
"""

from __future__ import annotations

PHASES = ("startup", "load", "copy", "train", "metrics", "shutdown")
PHASE_KEYS = tuple(f"{phase}_s" for phase in PHASES)
CPU_PHASE_KEYS = tuple(f"{phase}_cpu_s" for phase in PHASES)
EPOCH_CPU_KEY = "epoch_cpu_s"
CPU_KEYS = (*CPU_PHASE_KEYS, EPOCH_CPU_KEY)


def cpu_key(wall_key: str) -> str:
    """The CPU-time key beside a wall-time key: "train_s" -> "train_cpu_s", "round_s" -> "round_cpu_s"."""
    if not wall_key.endswith("_s"):
        raise ValueError(f"{wall_key!r} is not a wall-time key (ends in _s)")
    return f"{wall_key[:-2]}_cpu_s"
